"""Tables as people have them: text categories, yes/no, dates, missing cells, identifiers, through the real
stages, and `predict` on raw rows."""

import json

import numpy as np

from stages.prepared import read_split
from tests.helpers import ROOT, default_params, run_module, write_params

LINEAR = {"kind": "linear", "solver": "exact"}


def penguins(workdir, **data):
    (workdir / "data" / "penguins.csv").write_bytes((ROOT / "data" / "penguins.csv").read_bytes())
    params = default_params(path="data/penguins.csv", target="body_mass_g", features="all", test_size=0.2, **data)
    params["models"] = {"linear": LINEAR}
    write_params(workdir, params)


def test_penguins_with_features_all_are_typed_imputed_and_encoded_and_the_log_says_how(workdir):
    penguins(workdir, standardize=True)
    result = run_module(workdir, "prepare")
    assert result.returncode == 0, result.stderr
    log = result.stdout.splitlines()
    assert "prepare: column 'species': categorical, 0 missing, 3 categories kept (Adelie, Chinstrap, Gentoo)" in log
    assert "prepare: column 'sex': categorical, 9 missing, 3 categories kept ((missing), female, male)" in log
    assert "prepare: 2 row(s) with no 'body_mass_g' (the target) left out of training and metrics" in log
    meta = json.loads((workdir / "data" / "prepared" / "meta.json").read_text())
    assert meta["n_target_missing"] == 2 and meta["n_train"] + meta["n_test"] == 342
    # numbers first (with their missing indicators), then a one-hot block per text column, kept as codes
    assert meta["features"][:3] == ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]
    assert meta["features"][4:7] == ["species=Adelie", "species=Chinstrap", "species=Gentoo"]
    assert meta["one_hot_widths"] == [3, 3, 3] and meta["features"][-3:] == ["sex=(missing)", "sex=female", "sex=male"]
    split = read_split(workdir / "data" / "prepared")
    X = np.asarray(split.X_train)
    assert X.shape == (meta["n_train"], len(meta["features"])) and np.isfinite(X).all()
    species = X[:, -9:-6]
    assert (species.sum(axis=1) == 1).all()  # one-hot: one category per row
    assert meta["scaling"]["x_mean"][-9:] == [0.0] * 9 and meta["scaling"]["x_std"][-9:] == [1.0] * 9  # unscaled

    assert run_module(workdir, "train", "linear").returncode == 0
    card = json.loads((workdir / "models" / "linear.json").read_text())
    assert set(card["coefficients"]) >= {"species=Gentoo", "sex=male", "flipper_length_mm"}
    assert card["transform"] == meta["transform"]


def test_predict_takes_raw_rows_with_missing_cells_and_unseen_categories(workdir):
    penguins(workdir)
    assert run_module(workdir, "prepare").returncode == 0
    assert run_module(workdir, "train", "linear").returncode == 0
    raw = (ROOT / "data" / "penguins.csv").read_text()
    header = raw.splitlines()[0].replace(",body_mass_g", "")
    rows = ["Emperor,Ross Sea,50,20,230,female,2009", "Adelie,NA,,19,,,2008", "Gentoo,Biscoe,47,15,215,male,2008"]
    (workdir / "new.csv").write_text(header + "\n" + "\n".join(rows) + "\n")  # no target column at all
    result = run_module(workdir, "predict", "models/linear.pt", "new.csv", "-o", "out.csv")
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "predict: warning: 2 row(s) of new.csv hold a category the training rows never had; they count as infrequent\n"
    )
    predictions = [float(line.rsplit(",", 1)[1]) for line in (workdir / "out.csv").read_text().splitlines()[1:]]
    assert len(predictions) == 3 and all(np.isfinite(predictions))
    assert 2500 < predictions[1] < 6500 and predictions[2] > predictions[1]  # a Gentoo outweighs an Adelie


def test_missing_error_keeps_the_first_missing_cell_an_error(workdir):
    penguins(workdir, missing="error")
    result = run_module(workdir, "prepare")
    assert result.returncode == 2
    assert result.stderr == (
        "error: data/penguins.csv: row 4 (line 5), column 'body_mass_g': 'NA' marks a missing cell; fill it in or "
        "drop the row, or set data.missing: impute\n"
    )


def test_booleans_dates_identifiers_rare_and_single_values_under_features_all(workdir):
    rng = np.random.default_rng(0)
    lines = ["id,member,joined,name,region,spend"]
    for i in range(60):
        member = ["yes", "no"][i % 2]
        day = f"2024-01-{1 + i % 28:02d}"
        lines.append(f"{1000 + i},{member},{day},person{i},North,{10 + 5 * (i % 2) + rng.normal():.3f}")
    (workdir / "data" / "t.csv").write_text("\n".join(lines) + "\n")
    params = default_params(path="data/t.csv", target="spend", features="all", standardize=True)
    params["models"] = {"linear": LINEAR}
    write_params(workdir, params)
    result = run_module(workdir, "prepare")
    assert result.returncode == 0, result.stderr
    assert "prepare: column 'id': a different whole number in every row, an identifier" in result.stdout
    assert "prepare: column 'name': categorical, 0 missing; every value is rare" in result.stdout
    assert (
        "prepare: column 'region': categorical, 0 missing; one value ('North') in every training row: it carries "
        "no information and is left out; add it to data.drop to say so"
    ) in result.stdout.splitlines()
    meta = json.loads((workdir / "data" / "prepared" / "meta.json").read_text())
    assert meta["features"] == ["member", "joined (days)", "joined (year)", "joined (month)", "joined (weekday)"]
    X = np.load(workdir / "data" / "prepared" / "X_train.npy")
    assert X[0].tolist() == [1.0, 19723.0, 2024.0, 1.0, 0.0]  # yes; 2024-01-01, a Monday
    # every row in January 2024: the year and month parts are constant, scaled to 0 rather than refused
    assert meta["scaling"]["x_std"][2:4] == [1.0, 1.0] and meta["scaling"]["x_mean"][2:4] == [2024.0, 1.0]


def test_a_table_of_numbers_with_features_all_streams_and_still_leaves_out_an_identifier(workdir):
    rng = np.random.default_rng(1)
    ids = rng.permutation(5000)[:200] + 10_000  # distinct, shuffled record ids
    x = rng.integers(0, 5, 200)  # whole numbers too, but repeated: a feature
    rows = "".join(f"{i},{a},{2.0 * a + 1:.1f}\n" for i, a in zip(ids, x, strict=True))
    (workdir / "data" / "t.csv").write_text("record,x,y\n" + rows)
    params = default_params(path="data/t.csv", target="y", features="all", test_size=0.25)
    params["models"] = {"linear": LINEAR}
    write_params(workdir, params)
    result = run_module(workdir, "prepare")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("prepare: column 'record': a different whole number in every row")
    meta = json.loads((workdir / "data" / "prepared" / "meta.json").read_text())
    assert meta["features"] == ["x"] and "transform" not in meta  # plain numbers: the streaming path's meta
    assert meta["n_train"] == 150 and meta["n_test"] == 50
    assert "prepare: data/t.csv: 200 rows, 1 feature(s) -> 150 train / 50 test rows" in result.stdout


def test_a_model_file_whose_features_come_in_another_order_predicts_the_same(workdir):
    """Model files of 2026-12-03 list a table's features in column order (one-hot blocks among the numbers);
    predict puts the encoded columns in the order the file names."""
    import torch

    penguins(workdir)
    assert run_module(workdir, "prepare").returncode == 0
    assert run_module(workdir, "train", "linear").returncode == 0
    saved = torch.load(workdir / "models" / "linear.pt", weights_only=True)
    order = np.random.default_rng(0).permutation(len(saved["features"]))
    saved["features"] = [saved["features"][j] for j in order]
    saved["state_dict"]["weight"] = saved["state_dict"]["weight"][torch.from_numpy(order)]
    torch.save(saved, workdir / "models" / "shuffled.pt")
    raw = (ROOT / "data" / "penguins.csv").read_text().splitlines()
    (workdir / "new.csv").write_text("\n".join(raw[:40]) + "\n")
    for name in ("linear", "shuffled"):
        result = run_module(workdir, "predict", f"models/{name}.pt", "new.csv", "-o", f"{name}.csv")
        assert result.returncode == 0, result.stderr
    column = [[float(line.rsplit(",", 1)[1]) for line in (workdir / f"{name}.csv").read_text().splitlines()[1:]]
              for name in ("linear", "shuffled")]  # fmt: skip
    assert np.allclose(column[0], column[1], rtol=1e-12) and len(column[0]) == 39
