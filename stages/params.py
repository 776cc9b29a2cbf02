"""The schema of params.yaml: one place that reads, checks and types every parameter the stages use."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from stages.errors import UserError
from stages.io import check_regular_file

PARAMS_FILE = "params.yaml"
MODEL_KINDS = ("linear", "mlp")
SOLVERS = ("adam", "lbfgs", "exact")
DTYPES = ("float32", "float64")
DEVICES = ("auto", "cpu", "cuda")
ACTIVATIONS = ("tanh", "relu", "sigmoid")
# An MLP's initial weights: auto = glorot for tanh and sigmoid, he for relu (as scikit-learn and Keras choose
# by activation); torch = nn.Linear's own default, which the seed programs used (stages/models.py).
INITS = ("auto", "glorot", "he", "torch")
BACKENDS = ("auto", "gloo", "nccl")
MODEL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# A model's name is in its file names (models/<name>.summary.txt, and a temporary file beside it): well
# under the 255 bytes a file name may have.
MODEL_NAME_MAX = 100


COLUMN_TYPES = ("numeric", "categorical", "boolean", "date")  # data.columns (stages/columns.py infers them)
MISSING_POLICIES = ("impute", "error")
ALL_FEATURES = "all"


class ParamsError(Exception):
    """A problem with one parameter, named by its dotted key; parse_params adds the file's name."""


# --- value checkers: each returns the typed value or raises ParamsError naming the dotted key -------


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


# YAML 1.1 spellings that YAML 1.2, which DVC and the stages read, takes as text: what to write instead.
YAML11_BOOLEANS = {"on", "off", "yes", "no", "y", "n"}
SEXAGESIMAL = re.compile(r"[-+]?[0-9]+(:[0-5]?[0-9])+(\.[0-9]*)?")


def _yaml11_hint(value: Any, instead: str) -> str:
    """For a text value that YAML 1.1 would have read as a number or a boolean: how to write it."""
    text = value.strip() if isinstance(value, str) else None
    if text is not None and SEXAGESIMAL.fullmatch(text):
        base_60 = 0.0
        for part in text.lstrip("+-").split(":"):
            base_60 = base_60 * 60 + float(part)
        sign = -1 if text.startswith("-") else 1
        return f"; YAML 1.1 read {value} as {sign * base_60:g} (base 60), YAML 1.2 (DVC's) as text: write {instead}"
    if text is not None and text.lower() in YAML11_BOOLEANS:
        return f"; YAML 1.1 read {value} as a boolean, YAML 1.2 (DVC's) as text: write {instead}"
    return ""


def _integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = _yaml11_hint(value, "the number itself")
            raise ParamsError(f"{key} must be an integer, got {_describe(value)}{hint}")
        if minimum is not None and value < minimum:
            raise ParamsError(f"{key} must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ParamsError(f"{key} must be <= {maximum}, got {value}")
        return value

    return check


def _number(check_range: Callable[[float], bool], allowed: str) -> Callable[[str, Any], float]:
    def check(key: str, value: Any) -> float:
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            # A number in quotes ('1e-3') means that number: DVC records the text, the stage its value.
            try:
                number = float(value)
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            hint = _yaml11_hint(value, "the number itself")
            raise ParamsError(f"{key} must be a finite number, got {_describe(value)}{hint}")
        if not check_range(number):
            raise ParamsError(f"{key} must be {allowed}, got {value}")
        return number

    return check


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParamsError(f"{key} must be true or false, got {_describe(value)}{_yaml11_hint(value, 'true or false')}")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if value not in options:
            raise ParamsError(f"{key} must be one of {', '.join(options)}; got {value!r}")
        return value

    return check


def _text(key: str, value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # YAML reads an unquoted 1 as a number: a column named 1 has to be written '1'
        raise ParamsError(f"{key} must be a string, got the number {value!r}; put it in quotes: '{value}'")
    if not isinstance(value, str) or not value.strip():
        raise ParamsError(f"{key} must be a non-empty string, got {_describe(value)}")
    return value


def _features(key: str, value: Any) -> tuple[str, ...] | str:
    if value == ALL_FEATURES:
        return ALL_FEATURES
    if not isinstance(value, list) or not value:
        raise ParamsError(
            f"{key} must be a non-empty list of column names, e.g. [x], or all (every column but the target and "
            f"data.drop), got {_describe(value)}"
        )
    return _column_list(key, value)


def _column_list(key: str, value: Any, empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or (not value and not empty):
        raise ParamsError(f"{key} must be a non-empty list of column names, e.g. [x], got {_describe(value)}")
    names = tuple(_text(f"{key}[{i}]", item) for i, item in enumerate(value))
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ParamsError(f"{key} lists {', '.join(map(repr, repeated))} more than once")
    return names


def _hidden_sizes(key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ParamsError(f"{key} must be a non-empty list of layer sizes, e.g. [10], got {_describe(value)}")
    return tuple(_integer(minimum=1)(f"{key}[{i}]", size) for i, size in enumerate(value))


SEED_MAX = 2**63 - 1  # torch's generators take a signed 64-bit seed
_positive = _number(lambda v: v > 0, "> 0")
_fraction = _number(lambda v: 0.0 <= v < 1.0, "in [0, 1)")


def _column_types(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ParamsError(f"{key} must be a mapping of column names to types, e.g. {{zip: categorical}}, got "
                          f"{_describe(value)}")  # fmt: skip
    return {_text(f"{key} key", name): _choice(COLUMN_TYPES)(f"{key}.{name}", kind) for name, kind in value.items()}


def _endpoint(key: str, value: Any) -> str:
    text = _text(key, value)
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ParamsError(f"{key} must be host:port of node 0, e.g. 127.0.0.1:29400, got {text!r}")
    return text


def param(check: Callable[[str, Any], Any], default: Any = MISSING, *, factory: Any = MISSING,
          kinds: tuple[str, ...] = MODEL_KINDS, required: bool = False):  # fmt: skip
    """A parameter, declared once: its dataclass field, default (none: the key is required), and `check`,
    which types a value read from params.yaml or raises ParamsError naming its dotted key. For a model's
    fields, `kinds` are the kinds that take it and `required` says the file must set it (unless the
    linear model's solver is exact, which has no learning rate or epochs)."""
    metadata = {"check": check, "kinds": kinds, "required": required}
    return field(default=default, default_factory=factory, metadata=metadata)


def _declared(cls, kind: str | None) -> list:
    """The fields of a params dataclass declared with param() (those of one model kind), in their order."""
    return [f for f in fields(cls) if "check" in f.metadata and (kind is None or kind in f.metadata["kinds"])]


def checks(cls, kind: str | None = None) -> dict[str, Callable[[str, Any], Any]]:
    """Each parameter of a params dataclass (of one model kind) and its check, in the order they are declared."""
    return {f.name: f.metadata["check"] for f in _declared(cls, kind)}


def required(cls, kind: str | None = None) -> tuple[str, ...]:
    """The parameters the file must set: those without a default, or marked required (for a model kind)."""
    return tuple(f.name for f in _declared(cls, kind)
                 if f.metadata["required"] or (f.default is MISSING and f.default_factory is MISSING))  # fmt: skip


def _build(cls, section: Mapping[str, Any], prefix: str):
    """cls from a section of the file: unknown keys refused first (a typo is also a missing key), then
    missing ones, then each value checked."""
    known = checks(cls)
    _reject_unknown(section, known, prefix)
    _require(section, required(cls), prefix)
    return cls(**_checked(section, known, prefix))


@dataclass(frozen=True)
class DataParams:
    path: str = param(_text)
    features: tuple[str, ...] | str = param(_features)  # column names, or "all": every column but target and drop
    target: str = param(_text)
    test_size: float = param(_fraction, 0.0)
    split_seed: int = param(_integer(minimum=0, maximum=SEED_MAX), 0)
    standardize: bool = param(_boolean, False)
    drop: tuple[str, ...] = param(lambda key, value: _column_list(key, value, empty=True), ())  # with features: all
    columns: dict[str, str] = param(_column_types, factory=dict)  # column name -> a COLUMN_TYPE, over the inferred
    missing: str = param(_choice(MISSING_POLICIES), "impute")  # impute: medians (+ indicators), a category of its own
    min_frequency: int = param(_integer(minimum=1), 5)  # categories in fewer training rows: one infrequent feature


@dataclass(frozen=True)
class Distributed:
    """train.distributed: worker processes started through torchrun (torch.distributed.run)."""

    nproc_per_node: int = param(_integer(minimum=1, maximum=1024), 1)  # workers here; 1 (and nnodes 1): no workers
    nnodes: int = param(_integer(minimum=1, maximum=1024), 1)  # machines taking part
    rdzv_endpoint: str = param(_endpoint, "127.0.0.1:29400")  # host:port of node 0, reachable from every node
    backend: str = param(_choice(BACKENDS), "auto")  # gloo on the CPU, nccl on CUDA
    join_timeout: int = param(_integer(minimum=1, maximum=86400), 300)  # seconds node 0 waits for the others

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


def _distributed(key: str, value: Any) -> Distributed:
    if not isinstance(value, Mapping):
        raise ParamsError(f"{key} must be a mapping, e.g. {{nproc_per_node: 2}}, got {_describe(value)}")
    return _build(Distributed, value, f"{key}.")


@dataclass(frozen=True)
class TrainParams:
    seed: int = param(_integer(minimum=0, maximum=SEED_MAX), 0)
    log_every: int = param(_integer(minimum=1), 100)
    dtype: str = param(_choice(DTYPES), "float32")
    # cpu unless asked: a GPU gives different bits, and a dvc.lock must reproduce on every machine
    device: str = param(_choice(DEVICES), "cpu")
    distributed: Distributed = param(_distributed, Distributed())


@dataclass(frozen=True)
class EarlyStopping:
    """Hold out `validation_fraction` of the training rows; stop after `patience` epochs in which their loss
    did not fall below its best, and keep the weights of the best epoch."""

    validation_fraction: float = param(_number(lambda v: 0.0 < v < 1.0, "in (0, 1)"))
    patience: int = param(_integer(minimum=1))


def _early_stopping(key: str, value: Any) -> EarlyStopping:
    if not isinstance(value, Mapping):
        raise ParamsError(
            f"{key} must be a mapping, e.g. {{validation_fraction: 0.2, patience: 50}}, got {_describe(value)}"
        )
    return _build(EarlyStopping, value, f"{key}.")


@dataclass(frozen=True)
class ModelSpec:
    """One entry under `models:`; fields that do not apply to the kind keep their defaults."""

    name: str
    kind: str = param(_choice(MODEL_KINDS))
    lr: float = param(_positive, 0.0, required=True)  # unused by solver: exact
    epochs: int = param(_integer(minimum=1), 0, required=True)  # unused by solver: exact
    weight_decay: float = param(_number(lambda v: v >= 0, ">= 0"), 0.0)  # decoupled, as torch.optim.AdamW: Adam only
    early_stopping: EarlyStopping | None = param(_early_stopping, None)
    solver: str = param(_choice(SOLVERS), "adam", kinds=("linear",))
    hidden: tuple[int, ...] = param(_hidden_sizes, (), kinds=("mlp",), required=True)
    activation: str = param(_choice(ACTIVATIONS), "tanh", kinds=("mlp",))
    init: str = param(_choice(INITS), "auto", kinds=("mlp",))  # an MLP's initial weights: auto | glorot | he | torch
    batch_size: int = param(_integer(minimum=0), 0, kinds=("mlp",))

    @property
    def method(self) -> str:
        """How the model is fitted: adam, lbfgs or exact (an MLP is always trained by Adam)."""
        return self.solver if self.kind == "linear" else "adam"

    def layer_widths(self, n_features: int) -> list[int]:
        """Inputs, each hidden layer, and the one output: the model's widths from first to last."""
        return [n_features, *self.hidden, 1] if self.kind == "mlp" else [n_features, 1]


@dataclass(frozen=True)
class Params:
    data: DataParams
    train: TrainParams
    models: dict[str, ModelSpec]
    source: str = PARAMS_FILE  # the file these came from, for messages
    export: tuple[str, ...] = ()  # models that export@<model> writes as ONNX (docs/serving.md)

    def model(self, name: str) -> ModelSpec:
        """The spec of one model, or a UserError listing the models there are."""
        if name not in self.models:
            raise UserError(f"{self.source}: no model {name!r} under models; known: {', '.join(self.models)}")
        return self.models[name]


# What to write when a top-level section is missing or empty. dvc.yaml names each section as a parameter
# of the stages that read it, so DVC refuses to run them without it: `train` is needed even when every
# key in it keeps its default.
SECTION_HINTS = {
    "data": "e.g. data: {path: data/seed.csv, features: [x], target: y}",
    "train": "write train: {} to keep every default (dvc.yaml tracks it for each training stage)",
    "models": "e.g. models: {linear: {kind: linear, lr: 0.07, epochs: 1000}}",
}


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if value is None:
        raise ParamsError(f"{key} is {'empty' if key in raw else 'missing'}; {SECTION_HINTS[key]}")
    if not isinstance(value, Mapping):
        raise ParamsError(f"{key} must be a mapping of settings, got {_describe(value)}")
    return value


def _reject_unknown(section: Mapping[str, Any], known: Mapping[str, Any] | tuple[str, ...], prefix: str) -> None:
    for key in section:
        if key not in known:
            close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
            hint = f"; did you mean {prefix}{close[0]}?" if close else f"; known keys: {', '.join(known)}"
            raise ParamsError(f"unknown key {prefix}{key}{hint}")


def _require(section: Mapping[str, Any], keys: tuple[str, ...], prefix: str) -> None:
    for key in keys:
        if key not in section:
            raise ParamsError(f"{prefix}{key} is missing; add it")


def _checked(
    section: Mapping[str, Any], fields: Mapping[str, Callable[[str, Any], Any]], prefix: str
) -> dict[str, Any]:
    _reject_unknown(section, fields, prefix)
    return {key: fields[key](f"{prefix}{key}", value) for key, value in section.items()}


def _model_spec(name: Any, raw: Any) -> ModelSpec:
    if not isinstance(name, str) or not MODEL_NAME.match(name):
        raise ParamsError(
            f"model name {name!r} under models must start with a letter and use only "
            "letters, digits, _ and - (it names files and DVC stages)"
        )
    if len(name) > MODEL_NAME_MAX:
        raise ParamsError(
            f"model name {name[:20]}... under models is {len(name)} characters long; use at most "
            f"{MODEL_NAME_MAX} (it names files)"
        )
    prefix = f"models.{name}."
    if not isinstance(raw, Mapping):
        raise ParamsError(f"models.{name} must be a mapping of settings, got {_describe(raw)}")
    _require(raw, ("kind",), prefix)
    kind = _choice(MODEL_KINDS)(f"{prefix}kind", raw["kind"])
    values = _checked(raw, checks(ModelSpec, kind), prefix)  # unknown keys first: a typo is also a missing key
    # The exact solver has no learning rate or epochs; they may stay in the file (for switching back).
    _require(raw, () if values.get("solver") == "exact" else required(ModelSpec, kind), prefix)
    solver = values.get("solver", "adam")
    if values.get("weight_decay") and solver != "adam":
        raise ParamsError(f"{prefix}weight_decay is Adam's (decoupled, as in AdamW); solver {solver} has none: "
                          "use solver: adam, or remove weight_decay")  # fmt: skip
    if values.get("early_stopping") and solver == "exact":
        raise ParamsError(f"{prefix}early_stopping needs epochs to stop; solver exact has none: remove it")
    return ModelSpec(name=name, **values)


def _check_distributed(train: TrainParams, models: Mapping[str, ModelSpec]) -> None:
    """What train.distributed cannot share out, refused before any worker starts."""
    workers = train.distributed.world_size
    if workers == 1:
        return
    for name, spec in models.items():
        if spec.kind == "mlp" and spec.batch_size and spec.batch_size % workers:
            raise ParamsError(
                f"models.{name}.batch_size {spec.batch_size} must be a multiple of the {workers} workers of "
                "train.distributed (nproc_per_node x nnodes): each takes an equal part of every batch"
            )


def parse_params(raw: Any, source: str | Path = PARAMS_FILE) -> Params:
    """Check a loaded params.yaml against the schema and return it typed; errors name `source`."""
    try:
        return _parse(raw, str(source))
    except ParamsError as err:
        raise UserError(f"{source}: {err}") from None


def _parse(raw: Any, source: str) -> Params:
    if not isinstance(raw, Mapping):
        raise ParamsError(f"the file must hold a mapping with data, train and models, got {_describe(raw)}")
    _reject_unknown(raw, ("data", "train", "models", "export"), "")
    data = _build(DataParams, _section(raw, "data"), "data.")
    if data.features != ALL_FEATURES and data.target in data.features:
        raise ParamsError(f"data.target {data.target!r} is also listed in data.features; remove it from one")
    if data.target in data.drop:
        raise ParamsError(f"data.drop lists the target {data.target!r}; remove it from data.drop")
    if data.features != ALL_FEATURES and data.drop:
        both = [name for name in data.drop if name in data.features]
        if both:
            raise ParamsError(f"data.drop and data.features both list {', '.join(map(repr, both))}; remove it from one")
    if data.columns.get(data.target, "numeric") != "numeric":
        raise ParamsError(f"data.columns makes the target {data.target!r} {data.columns[data.target]}; the target "
                          "must be numeric: remove it from data.columns")  # fmt: skip
    train = _build(TrainParams, _section(raw, "train"), "train.")
    models_raw = _section(raw, "models")
    if not models_raw:
        raise ParamsError(
            "models is empty; add at least one model, e.g. linear: {kind: linear, lr: 0.07, epochs: 1000}"
        )
    models = {name: _model_spec(name, spec) for name, spec in models_raw.items()}
    _check_distributed(train, models)
    return Params(data=data, train=train, models=models, source=source, export=_export(raw.get("export"), models))


def _export(value: Any, models: Mapping[str, ModelSpec]) -> tuple[str, ...]:
    """export: the models to write as ONNX, a list of names under models (absent or []: none)."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ParamsError(f"export must be a list of model names, e.g. export: [mlp], got {_describe(value)}")
    for name in value:
        if name not in models:
            raise ParamsError(f"export names {name!r}, which is not a model under models; known: "
                              f"{', '.join(models)}")  # fmt: skip
    if len(set(value)) < len(value):
        raise ParamsError(f"export lists a model twice: {value}; list each once")
    return tuple(value)


INT_TAG = "tag:yaml.org,2002:int"
LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")


def _yaml_problem(path: Path, err: Exception) -> UserError:
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(err, "problem", None) or "invalid YAML"
    duplicate = re.match(r'found duplicate key "(.*?)"', problem)
    if duplicate:
        return UserError(f"{path}: line {mark.line + 1}: key {duplicate.group(1)!r} appears twice in the same "
                         "mapping (DVC refuses the file too); keep one")  # fmt: skip
    return UserError(f"{path}: invalid YAML{where}: {problem}")


# A params file whose anchors and aliases (`&a`, `*a`) stand for more values than this is refused before it is
# loaded: 2 KB of nested aliases can stand for 10^9 values, which any walk over them (DVC's own included) takes
# hours over. The largest real params files hold a few hundred values.
MOST_VALUES = 100_000


def _expanded_size(node, sizes: dict[int, int]) -> int:
    """How many values `node` stands for with every alias written out; each node is counted once (`sizes`)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = 1  # a node that contains itself (`&a [*a]`) counts once
    size = 1
    if isinstance(node.value, list):
        for item in node.value:
            size += (
                sum(_expanded_size(part, sizes) for part in item)
                if isinstance(item, tuple)
                else _expanded_size(item, sizes)
            )
    sizes[id(node)] = size
    return size


def _refuse_alias_bomb(node, path: Path) -> None:
    size = _expanded_size(node, {})
    if size > MOST_VALUES:
        raise UserError(
            f"{path}: its anchors and aliases (&name, *name) stand for {size:,} values, more than {MOST_VALUES:,}; "
            "write the values out, or drop the aliases (dvc itself may hang on such a file)"
        )


def _refuse_ambiguous_numbers(node, path: Path, key: str = "", seen: set[int] | None = None) -> None:
    """Integers written with a leading zero (`epochs: 010`): YAML 1.2, which DVC and the stages read, makes
    that 10; YAML 1.1 (PyYAML, many editors' tools) makes it octal 8. Refused, so nobody is surprised. Each
    node is looked at once, however many aliases name it."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if node.tag == INT_TAG and node.style is None and LEADING_ZERO.fullmatch(node.value):
        raise UserError(
            f"{path}: line {node.start_mark.line + 1}: {key or 'value'}: {node.value} has a leading zero, which "
            f"YAML 1.2 (DVC's) reads as decimal and YAML 1.1 as octal; write it without the zero"
        )
    if isinstance(node.value, list):
        for item in node.value:
            if isinstance(item, tuple):
                key_node, value_node = item
                name = f"{key}.{key_node.value}" if key else str(key_node.value)
                _refuse_ambiguous_numbers(value_node, path, name, seen)
            else:
                _refuse_ambiguous_numbers(item, path, key, seen)


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read params.yaml the way DVC reads it, so that every value a stage uses is the one `dvc.lock` and
    `dvc params diff` record: ruamel.yaml's safe loader, YAML 1.2 (`on`, `yes`, `1:30` are text, `1e-3` is a
    number), duplicate keys refused. Then validate it before any work is done."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = Path(path)
    check_regular_file(path, "run the stage from the project root, or name the file with --params")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    yaml = YAML(typ="safe")
    try:
        node = yaml.compose(text)
        if node is not None:
            _refuse_alias_bomb(node, path)
            _refuse_ambiguous_numbers(node, path)
        raw = yaml.load(text)
    except YAMLError as err:
        raise _yaml_problem(path, err) from None
    return parse_params(raw, path)


def main(argv: list[str] | None = None) -> None:
    """`python -m stages.params [FILE]`: check a params file the way the stages read it. `make repro` runs it
    before dvc, which reads params.yaml too and has no bound on what its aliases stand for."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m stages.params", description=main.__doc__)
    parser.add_argument("file", nargs="?", default=PARAMS_FILE, help=f"parameters file (default: {PARAMS_FILE})")
    load_params(parser.parse_args(argv).file)


if __name__ == "__main__":
    import sys

    from stages.errors import run_stage

    sys.exit(run_stage(main))
