"""export@<model>: the ONNX graph onnxruntime serves gives predict's predictions from the raw columns."""

from __future__ import annotations

import csv

import numpy as np
import onnxruntime

from tests.helpers import ROOT, default_params, run_module, write_params

MISSING = {"", "NA"}


def onnx_inputs(session, path) -> dict[str, np.ndarray]:
    """The graph's inputs from a CSV's raw cells: numbers as float32 (NaN where missing), text as it is."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    feeds = {}
    for spec in session.get_inputs():
        cells = [row[spec.name] for row in rows]
        if spec.type == "tensor(string)":
            feeds[spec.name] = np.array(cells, dtype=object).reshape(-1, 1)
        else:
            feeds[spec.name] = np.array([np.nan if c in MISSING else float(c) for c in cells], np.float32).reshape(
                -1, 1
            )
    return feeds


def exported(
    workdir, models: dict, csv_name: str, feeds=onnx_inputs, **data
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Run the pipeline up to export for `models` on `csv_name`; {model: (predict's, onnxruntime's)} on it,
    the graph's inputs made by feeds(session, csv path)."""
    params = default_params(**data)
    params["models"], params["export"] = models, list(models)
    write_params(workdir, params)
    for stage in (["prepare"], *(["train", m] for m in models), *(["export", m] for m in models)):
        result = run_module(workdir, *stage)
        assert result.returncode == 0, result.stderr
    out = {}
    for model in models:
        result = run_module(workdir, "predict", f"models/{model}.pt", csv_name, "-o", "out.csv", "--quiet")
        assert result.returncode == 0, result.stderr
        with (workdir / "out.csv").open(newline="") as handle:
            theirs = np.array([float(row["prediction"]) for row in csv.DictReader(handle)])
        session = onnxruntime.InferenceSession(str(workdir / "models" / f"{model}.onnx"))
        ours = session.run(["prediction"], feeds(session, workdir / csv_name))[0]
        assert ours.shape == (len(theirs), 1)
        out[model] = (theirs, ours[:, 0].astype(np.float64))
    return out


MLP = {"kind": "mlp", "hidden": [8], "activation": "tanh", "lr": 0.01, "epochs": 30, "batch_size": 32}
MODELS = {"linear": {"kind": "linear", "solver": "exact"}, "mlp": MLP}


def test_onnxruntime_gives_predicts_predictions_on_the_seed_data_and_two_exports_the_same_bytes(workdir):
    for name, (theirs, ours) in exported(workdir, MODELS, "data/seed.csv").items():
        assert np.allclose(ours, theirs, rtol=1e-5, atol=1e-6), name
    first = {m: (workdir / "models" / f"{m}.onnx").read_bytes() for m in MODELS}
    for model in MODELS:
        assert run_module(workdir, "export", model).returncode == 0
    assert first == {m: (workdir / "models" / f"{m}.onnx").read_bytes() for m in MODELS}


def test_onnxruntime_gives_predicts_predictions_on_raw_penguins_with_gaps_and_an_unseen_category(workdir):
    raw = (ROOT / "data" / "penguins.csv").read_text().splitlines()
    (workdir / "data" / "penguins.csv").write_text("\n".join(raw) + "\n")
    new = [raw[0], *raw[1:40], "Emperor,Ross Sea,50,20,230,female,2009,5000", "Adelie,NA,,19,,,2008,NA"]
    (workdir / "new.csv").write_text("\n".join(new) + "\n")
    found = exported(workdir, MODELS, "new.csv", path="data/penguins.csv", target="body_mass_g", features="all",
                     test_size=0.2, standardize=True)  # fmt: skip
    for name, (theirs, ours) in found.items():
        assert np.isfinite(ours).all() and len(ours) == 41
        assert np.allclose(ours, theirs, rtol=1e-5, atol=1e-6), (name, np.abs(ours - theirs).max())
    table = (workdir / "models" / "mlp.serving.md").read_text()
    assert "| `species` | string [N, 1] |" in table and "| `bill_length_mm` | float32 [N, 1] |" in table


def test_a_model_file_the_exporter_cannot_read_is_one_line(workdir):
    import torch

    exported(workdir, {"mlp": MODELS["mlp"]}, "data/seed.csv")
    path = workdir / "models" / "mlp.pt"
    good = torch.load(path, weights_only=True)
    later = "run `dvc repro train@mlp` with this version of the pipeline"
    for change, message in (
        (lambda saved: saved.update(format=2), "format 2, 1 expected"),
        (lambda saved: saved["architecture"].update(activation="gelu"),
         "a model of kind 'mlp' (activation 'gelu') is not one this exporter writes"),
    ):  # fmt: skip
        saved = torch.load(path, weights_only=True) if path.exists() else good
        change(saved)
        torch.save(saved, path)
        result = run_module(workdir, "export", "mlp")
        assert (
            result.returncode == 2
            and result.stderr == f"error: models/mlp.pt: cannot be exported ({message}); {later}\n"
        )
        torch.save(good, path)
    path.write_bytes(b"PK\x03\x04 not a zip")
    broken = run_module(workdir, "export", "mlp")
    assert broken.returncode == 2 and broken.stderr == (
        "error: models/mlp.pt: not a model file written by this pipeline (BadZipFile)\n"
    )


def test_dates_and_yes_no_columns_go_in_as_numbers_and_the_graph_finds_year_month_and_weekday(workdir):
    import datetime as dt

    rng = np.random.default_rng(3)
    days = rng.integers(-30_000, 30_000, 300)  # 1887 to 2052: leap days, centuries, before 1970
    dates = [dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) for d in days]
    lines = ["when,member,y"]
    for i, (day, date) in enumerate(zip(days, dates, strict=True)):
        when = "" if i % 17 == 0 else (f"{date.isoformat()}T06:00:00Z" if i % 5 == 0 else date.isoformat())
        member = ["yes", "no", "NA"][i % 3]
        y = 0.001 * day + (date.month - 6) ** 2 * 0.3 + 2 * date.weekday() + 5 * (member == "yes") + rng.normal()
        lines.append(f"{when},{member},{float(y)!r}")
    (workdir / "data" / "t.csv").write_text("\n".join(lines) + "\n")
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    when = [row.split(",")[0] for row in lines[1:]]

    def feeds(session, path):  # a date as days since 1970-01-01 (UTC), yes/no as 1/0, NaN where missing
        return {
            "when": np.array([np.nan if not w else (dt.datetime.fromisoformat(w.replace("Z", "+00:00")).replace(
                tzinfo=dt.UTC) - epoch).total_seconds() / 86400 for w in when], np.float32).reshape(-1, 1),
            "member": np.array([{"yes": 1.0, "no": 0.0}.get(row.split(",")[1], np.nan) for row in lines[1:]],
                               np.float32).reshape(-1, 1),
        }  # fmt: skip

    found = exported(workdir, {"linear": MODELS["linear"]}, "data/t.csv", feeds, path="data/t.csv", target="y",
                     features="all", standardize=True)  # fmt: skip
    theirs, ours = found["linear"]
    assert np.allclose(ours, theirs, rtol=1e-5, atol=1e-6), np.abs(ours - theirs).max()


def test_the_serving_example_in_the_docs_runs_as_written_and_prints_predicts_numbers(workdir):
    import re
    import subprocess
    import sys

    (workdir / "data" / "penguins.csv").write_text((ROOT / "data" / "penguins.csv").read_text())
    exported(workdir, {"linear": MODELS["linear"]}, "data/penguins.csv", path="data/penguins.csv",
             target="body_mass_g", features="all")  # fmt: skip
    doc = (ROOT / "docs" / "serving.md").read_text()
    code = re.search(r"## From Python\n\n```python\n(.*?)```", doc, flags=re.DOTALL).group(1)
    assert len(code.strip().splitlines()) <= 10
    printed = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, check=True)
    ours = [float(v) for v in re.findall(r"[-\d.]+(?:e[-+]\d+)?", printed.stdout)]
    header = "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,sex,year"
    rows = ["Adelie,Torgersen,39.1,18.7,181,male,2007", "Gentoo,Biscoe,NA,15.0,220,,2009"]
    (workdir / "two.csv").write_text("\n".join([header, *rows]) + "\n")
    assert run_module(workdir, "predict", "models/linear.pt", "two.csv", "-o", "two_out.csv", "-q").returncode == 0
    theirs = [float(line.rsplit(",", 1)[1]) for line in (workdir / "two_out.csv").read_text().splitlines()[1:]]
    assert len(ours) == 2 and np.allclose(ours, theirs, rtol=1e-5)
    assert f"[[{ours[0]:.8f}]" in doc  # the numbers the doc shows are these
