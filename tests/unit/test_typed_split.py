"""prepare's typed path (stages/typed_split.py): the same split whatever the blocks the CSV is read in,
columns read again where the scan could not keep them, a file pyarrow refuses read through pandas."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import stages.typed_split as typed_split
from stages import columns
from stages.params import DataParams
from stages.prepared import Encoded, read_split
from stages.typed_split import prepare_typed

HEADER = ["late", "when", "flag", "colour", "x", "y"]


def table(n_rows: int = 400) -> str:
    """late: numbers for 300 rows, then words (text met after many blocks of numbers); when: dates;
    flag: yes/no; colour: categories with missing cells; x: numbers with missing cells; y: the target."""
    rng = np.random.default_rng(3)
    lines = [",".join(HEADER)]
    for i in range(n_rows):
        late = f"{rng.integers(0, 9)}" if i < 300 else rng.choice(["low", "high", "mid"])
        when = f"20{rng.integers(10, 24)}-0{rng.integers(1, 9)}-1{rng.integers(0, 9)}"
        flag = rng.choice(["yes", "no", "Yes", "N"])
        colour = rng.choice(["red", "green", "blue", "", "NA"])
        x = "" if i % 11 == 0 else f"{rng.normal():.4f}"
        y = "" if i % 37 == 5 else f"{rng.normal(10, 2):.4f}"
        lines.append(",".join([late, when, flag, colour, x, y]))
    return "\n".join(lines) + "\n"


def prepared(csv: Path, out: Path, **data) -> tuple[dict, dict, tuple]:
    params = DataParams(path=str(csv), features=tuple(HEADER[:-1]), target="y", test_size=0.25, **data)
    out.mkdir()
    counts = prepare_typed(params, HEADER, list(HEADER[:-1]), out)
    files = {name.name: name.read_bytes() for name in sorted(out.iterdir())}
    return files, json.loads((out / "meta.json").read_text()), counts


def test_the_split_is_the_same_whatever_blocks_the_csv_is_read_in(tmp_path, monkeypatch):
    csv = tmp_path / "t.csv"
    csv.write_text(table())
    whole, meta, counts = prepared(csv, tmp_path / "one", standardize=True)
    monkeypatch.setattr(typed_split, "SCAN_BLOCK_BYTES", 512)  # ~20 rows a block: 'late' turns to text late
    blocks, _, _ = prepared(csv, tmp_path / "many", standardize=True)
    assert blocks == whole
    kinds = {column["name"]: column["type"] for column in meta["transform"]["columns"]}
    assert kinds == {"late": "categorical", "when": "date", "flag": "boolean", "colour": "categorical", "x": "numeric"}
    late = meta["transform"]["columns"][0]
    assert late["categories"][:3] == ["0", "1", "2"] and {"high", "low", "mid"} <= set(late["categories"])
    assert counts[0] == 400 - meta["n_target_missing"] and meta["n_target_missing"] == 11
    assert (tmp_path / "many/columns.tmp").exists() is False


def test_the_encoded_split_is_what_the_transform_makes_of_the_raw_cells(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text(table())
    _, meta, _ = prepared(csv, tmp_path / "out")
    transform = columns.Transform.from_dict(meta["transform"])
    from stages.csv_input import read_cells

    cells = read_cells(csv, HEADER, HEADER)
    kept = ~columns.missing_mask(cells["y"])
    X, unseen = transform.encode({name: cells[name][kept] for name in HEADER[:-1]}, str(csv))
    split = read_split(tmp_path / "out")  # the one-hot blocks kept as codes, expanded here
    assert isinstance(split.X_train, Encoded) and split.X_train.widths == (12, 4)
    everything = np.concatenate([np.asarray(split.X_train), np.asarray(split.X_test)])
    assert unseen == 0 and sorted(map(tuple, X)) == sorted(map(tuple, everything))
    assert split.features == tuple(transform.features()) and split.features[-16:][0] == "late=0"


def test_a_column_of_more_values_than_a_vocabulary_holds_is_left_out_but_dates_are_read_again(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(columns, "MAX_CATEGORIES", 5)
    csv = tmp_path / "t.csv"
    csv.write_text(table())
    _, meta, _ = prepared(csv, tmp_path / "out")
    kinds = {column["name"]: column["type"] for column in meta["transform"]["columns"]}
    assert kinds == {"when": "date", "flag": "boolean", "colour": "categorical", "x": "numeric"}
    assert "column 'late': categorical, 0 missing; more than 5 distinct values" in capsys.readouterr().out


def test_a_type_set_in_data_columns_reads_the_column_again(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text(table())
    _, meta, _ = prepared(csv, tmp_path / "out", columns={"x": "categorical", "flag": "categorical"})
    found = {column["name"]: column for column in meta["transform"]["columns"]}
    assert found["x"]["type"] == found["flag"]["type"] == "categorical"
    assert found["flag"]["categories"] == ["N", "Yes", "no", "yes"]  # as written: no longer read as yes/no
    assert found["x"]["categories"] == ["(missing)"] and len(found["x"]["rare"]) > 200


def test_a_file_pyarrow_refuses_but_pandas_reads_gives_the_same_split(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text(table())
    clean, _, _ = prepared(csv, tmp_path / "clean")
    lines = table().splitlines(keepends=True)
    (tmp_path / "spaced.csv").write_text("".join([*lines[:50], "   \n", *lines[50:]]))  # pandas skips it
    spaced, _, _ = prepared(tmp_path / "spaced.csv", tmp_path / "spaced")
    assert spaced == clean


@pytest.mark.parametrize("cells", [["1", "2", "x"] * 10, ["yes", "no", "maybe"] * 10])
def test_the_scan_finds_each_type_as_infer_type_does(tmp_path, cells):
    csv = tmp_path / "t.csv"
    csv.write_text("c,y\n" + "".join(f"{cell},{i}\n" for i, cell in enumerate(cells)))
    data = DataParams(path=str(csv), features=("c",), target="y")
    (tmp_path / "out").mkdir()
    prepare_typed(data, ["c", "y"], ["c"], tmp_path / "out")
    meta = json.loads((tmp_path / "out/meta.json").read_text())
    expected, _ = columns.infer_type(np.array(cells), columns.missing_mask(np.array(cells)))
    assert meta["transform"]["columns"][0]["type"] == expected
