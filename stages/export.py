"""Stage `export@<model>`: the model and everything done to the raw columns before it (imputation with missing
indicators, dates as numbers, categories one-hot with the infrequent group, scaling) as one ONNX graph,
models/<model>.onnx, that onnxruntime serves from Python, C++, Java, C# or JavaScript; and its inputs
table, models/<model>.serving.md. Runs for the models listed in params.yaml's `export` (docs/serving.md).

The graph is written with onnx's helper API from the numbers in the model file (read without torch:
stages/model_file.py), plain ai.onnx operators for the arithmetic and ai.onnx.ml's LabelEncoder for the text
columns (string -> position in the one-hot block, in one lookup): no exporter traces anything, so the same
model file gives the same bytes, and the stage needs neither torch nor onnxscript.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from stages import paths
from stages.columns import MISSING, MISSING_CELLS, ColumnTransform
from stages.errors import UserError, run_stage
from stages.io import write_bytes, write_text
from stages.model_file import read_model_file
from stages.params import load_params

OPSET, ML_OPSET = 17, 3
PRODUCER = "regression-pipeline stages.export"
ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}
MODEL_FORMAT = 1  # stages/models.py's MODEL_FORMAT: the model files this exporter reads


class _Graph:
    """Nodes and constants of the graph being built, each under a name made from a counter (deterministic)."""

    def __init__(self) -> None:
        from onnx import helper

        self.helper, self.nodes, self.constants, self.count = helper, [], [], 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, value, dtype=np.float64) -> str:
        from onnx import numpy_helper

        name = self.name("const")
        self.constants.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, kind: str, *inputs: str, domain: str = "", **attributes) -> str:
        out = self.name(kind.lower())
        self.nodes.append(self.helper.make_node(kind, list(inputs), [out], name=out, domain=domain, **attributes))
        return out

    def floor_div(self, a: str, divisor: float) -> str:
        return self.op("Floor", self.op("Div", a, self.constant(divisor)))


def _double(graph: _Graph, raw: str) -> str:
    return graph.op("Cast", raw, to=11)  # TensorProto.DOUBLE


def _date_parts(graph: _Graph, days: str) -> str:
    """(N, 4) days, year, month, weekday (Monday = 0) of days since 1970-01-01, as stages/columns.py's
    as_dates gives them: the civil calendar from the day number (Howard Hinnant's days_from_civil, inverted),
    in float64, where every step is exact."""
    day = graph.op("Floor", days)
    z = graph.op("Add", day, graph.constant(719468.0))
    era = graph.floor_div(z, 146097.0)
    doe = graph.op("Sub", z, graph.op("Mul", era, graph.constant(146097.0)))
    # yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365: the year of the 400-year era
    yoe = graph.op("Add", graph.op("Sub", doe, graph.floor_div(doe, 1460.0)), graph.floor_div(doe, 36524.0))
    yoe = graph.floor_div(graph.op("Sub", yoe, graph.floor_div(doe, 146096.0)), 365.0)
    # doy = doe - (365 yoe + yoe // 4 - yoe // 100): the day of the year that starts on March 1
    start = graph.op("Add", graph.op("Mul", yoe, graph.constant(365.0)), graph.floor_div(yoe, 4.0))
    doy = graph.op("Sub", doe, graph.op("Sub", start, graph.floor_div(yoe, 100.0)))
    mp = graph.floor_div(graph.op("Add", graph.op("Mul", doy, graph.constant(5.0)), graph.constant(2.0)), 153.0)
    late = graph.op("Cast", graph.op("GreaterOrEqual", mp, graph.constant(10.0)), to=11)
    month = graph.op("Sub", graph.op("Add", mp, graph.constant(3.0)), graph.op("Mul", late, graph.constant(12.0)))
    early = graph.op("Cast", graph.op("LessOrEqual", month, graph.constant(2.0)), to=11)
    year = graph.op("Add", graph.op("Add", yoe, graph.op("Mul", era, graph.constant(400.0))), early)
    shifted = graph.op("Add", day, graph.constant(3.0))  # 1970-01-01 was a Thursday
    weekday = graph.op("Sub", shifted, graph.op("Mul", graph.floor_div(shifted, 7.0), graph.constant(7.0)))
    return graph.op("Concat", days, year, month, weekday, axis=1)


def _numbers(graph: _Graph, raw: str, column: ColumnTransform) -> str:
    """A numeric, boolean or date column's features: missing cells (NaN) get the training medians, then the
    missing indicator where the training rows had one."""
    values = _double(graph, raw)
    missing = graph.op("IsNaN", values)
    parts = _date_parts(graph, values) if column.type == "date" else values
    filled = graph.op("Where", missing, graph.constant([column.medians]), parts)
    if not column.indicator:
        return filled
    return graph.op("Concat", filled, graph.op("Cast", missing, to=11), axis=1)


def _one_hot(graph: _Graph, raw: str, column: ColumnTransform) -> str:
    """A text column's one-hot block: each cell's position in it by one lookup (a kept category's; a missing
    spelling's, (missing)'s; anything else, a rare or unseen category, the infrequent group's, or past the
    block's end when there is none: all zeros), then OneHot."""
    width = len(column.features())
    slot = {category: j for j, category in enumerate(column.categories)}
    other = len(column.categories) if column.infrequent else width
    keys = list(column.categories)
    if MISSING in slot:
        keys += sorted(MISSING_CELLS - set(keys))
    values = [slot.get(key, slot.get(MISSING, other)) for key in keys]
    positions = graph.op("LabelEncoder", raw, domain="ai.onnx.ml", keys_strings=keys, values_int64s=values,
                         default_int64=other)  # fmt: skip
    flat = graph.op("Squeeze", positions, graph.constant([1], np.int64))
    # onnxruntime's OneHot makes float32 (no float64 kernel); 0 and 1 are exact in it
    one_hot = graph.op("OneHot", flat, graph.constant(width, np.int64), graph.constant([0.0, 1.0], np.float32), axis=-1)
    return _double(graph, one_hot)


def _network(graph: _Graph, X: str, saved: dict) -> str:
    """The model on its scaled features (the model's dtype): y = X w + b, or the MLP's layers."""
    arch, state = saved["architecture"], saved["state_dict"]
    dtype = np.float64 if arch.get("dtype") == "float64" else np.float32
    if arch["kind"] == "linear":
        weight = graph.constant(state["weight"].reshape(-1, 1), dtype)
        return graph.op("Add", graph.op("MatMul", X, weight), graph.constant(state["bias"], dtype))
    layers = sorted({key.rsplit(".", 1)[0] for key in state}, key=lambda key: int(key.split(".")[1]))
    for k, layer in enumerate(layers):
        X = graph.op("Gemm", X, graph.constant(state[f"{layer}.weight"], dtype),
                     graph.constant(state[f"{layer}.bias"], dtype), transB=1)  # fmt: skip
        if k < len(layers) - 1:
            X = graph.op(ACTIVATIONS[arch["activation"]], X)
    return X


def raw_inputs(saved: dict) -> list[tuple[str, str, ColumnTransform | None]]:
    """(input name, kind, the column's transform or None) for each column of the CSV the model reads."""
    if saved.get("transform") is None:
        return [(name, "numeric", None) for name in saved["features"]]
    columns = [ColumnTransform.from_dict(column) for column in saved["transform"]["columns"]]
    return [(column.name, column.type, column) for column in columns]


def build_graph(saved: dict):
    """The ONNX model (onnx.ModelProto) of a saved model file: raw columns in, `prediction` out."""
    from onnx import TensorProto, helper

    arch = saved["architecture"]
    if saved.get("format") != MODEL_FORMAT:
        raise ValueError(f"format {saved.get('format')!r}, {MODEL_FORMAT} expected")
    kind, activation = arch.get("kind"), arch.get("activation")
    if kind not in ("linear", "mlp") or (kind == "mlp" and activation not in ACTIVATIONS):
        raise ValueError(f"a model of kind {kind!r} (activation {activation!r}) is not one this exporter writes")
    graph, inputs, blocks, names = _Graph(), [], [], []
    for name, kind, column in raw_inputs(saved):
        text = kind == "categorical"
        inputs.append(helper.make_tensor_value_info(name, TensorProto.STRING if text else TensorProto.FLOAT, ["N", 1]))
        if column is None:
            blocks.append(_double(graph, name))
            names.append(name)
            continue
        blocks.append(_one_hot(graph, name, column) if text else _numbers(graph, name, column))
        names += column.features()
    order = [names.index(feature) for feature in saved["features"]]  # the model's order of the features
    X = graph.op("Gather", graph.op("Concat", *blocks, axis=1), graph.constant(order, np.int64), axis=1)
    scaling = saved.get("scaling")
    if scaling:
        X = graph.op("Div", graph.op("Sub", X, graph.constant(scaling["x_mean"])), graph.constant(scaling["x_std"]))
    float64 = arch.get("dtype") == "float64"
    out = _double(graph, _network(graph, graph.op("Cast", X, to=11 if float64 else 1), saved))
    if scaling:
        out = graph.op("Add", graph.op("Mul", out, graph.constant(scaling["y_std"])), graph.constant(scaling["y_mean"]))
    graph.nodes.append(helper.make_node("Cast", [out], ["prediction"], name="prediction", to=11 if float64 else 1))
    output = helper.make_tensor_value_info("prediction", TensorProto.DOUBLE if float64 else TensorProto.FLOAT, ["N", 1])
    body = helper.make_graph(graph.nodes, f"{saved['name']}: raw columns -> {saved['target']}", inputs, [output],
                             graph.constants)  # fmt: skip
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
    model = helper.make_model(body, producer_name=PRODUCER, producer_version=str(MODEL_FORMAT), opset_imports=opsets)
    model.ir_version = 8  # what onnxruntime 1.14 and later read
    return model


def serving_table(saved: dict, onnx_path: str) -> str:
    """models/<model>.serving.md: the graph's inputs and output, and what it does with missing cells and
    categories it never saw."""
    rows = ["| input | type, shape | what to give |", "|---|---|---|"]
    for name, kind, column in raw_inputs(saved):
        if kind == "categorical":
            known = ", ".join(f"`{c}`" for c in column.categories[:8]) + (", ..." if len(column.categories) > 8 else "")
            rows.append(f"| `{name}` | string [N, 1] | the text as in the CSV ({known}); empty or NA: missing |")
        elif kind == "date":
            rows.append(
                f"| `{name}` | float32 [N, 1] | days since 1970-01-01 (UTC; a fraction for a time); NaN: missing |"
            )
        elif kind == "boolean":
            rows.append(f"| `{name}` | float32 [N, 1] | 1 for yes/true, 0 for no/false; NaN: missing |")
        elif column is None:  # a table of plain numbers: the model never saw a missing cell
            rows.append(f"| `{name}` | float32 [N, 1] | the number (no missing cells: the training rows had none) |")
        else:
            rows.append(f"| `{name}` | float32 [N, 1] | the number; NaN: missing |")
    dtype = "float64" if saved["architecture"].get("dtype") == "float64" else "float32"
    rows.append(f"| output `prediction` | {dtype} [N, 1] | {saved['target']}, in its own units |")
    return (f"# Serving {onnx_path}\n\nModel `{saved['name']}` ({saved['architecture']['kind']}), target "
            f"`{saved['target']}`. See docs/serving.md for an onnxruntime example.\n\n" + "\n".join(rows) + "\n\n"
            "A missing cell gets what it got in training: the training median (and its missing indicator), or the "
            "category `(missing)`. A category the training rows never had, or had too rarely, counts as "
            "`(infrequent)`, or as none of the categories where the training rows had no rare ones.\n")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.export", description=__doc__)
    parser.add_argument("model", help="name of the model under `models:` in params.yaml")
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    args = parser.parse_args(argv)

    load_params(args.params).model(args.model)  # validate params.yaml, and that the model is in it
    source = paths.model_file(args.model)
    saved = read_model_file(source)
    try:
        model = build_graph(saved)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        detail = f"no {err.args[0]!r}" if isinstance(err, KeyError) else str(err)
        raise UserError(f"{source}: cannot be exported ({detail}); run `dvc repro train@{args.model}` with this "
                        "version of the pipeline") from None  # fmt: skip
    target = paths.onnx_file(args.model)
    write_bytes(target, model.SerializeToString())
    write_text(paths.serving_file(args.model), serving_table(saved, str(target)))
    print(f"export@{args.model}: wrote {target} ({len(model.graph.input)} input(s), {len(model.graph.node)} nodes) "
          f"and {paths.serving_file(args.model)}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(run_stage(main))
