"""prepare's two readers, which feed one writer (SplitWriter): the numeric stream (pyarrow's float parser,
for tables of plain numbers) against the typed path (every cell read as text, typed, encoded): the same
split arrays byte for byte; and pyarrow's numbers against pandas' (the checked reader that names cells)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.csv_input import FastParseRefused, read_columns, stream_columns
from stages.errors import UserError
from stages.params import DataParams
from stages.prepare import stream_split
from stages.prepared import SPLIT_ARRAYS, NpyAppender, held_out_in_group, seeded_split
from stages.typed_split import prepare_typed

FILES = tuple(f"{name}.npy" for name in SPLIT_ARRAYS)


def written(folder: Path) -> tuple[dict, dict]:
    """The split arrays' bytes, and meta.json without what only the typed path writes."""
    meta = json.loads((folder / "meta.json").read_text())
    for key in ("transform", "n_target_missing"):
        meta.pop(key, None)
    return {name: (folder / name).read_bytes() for name in FILES}, meta


numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: f"{v:.{abs(hash(v)) % 17 + 1}g}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(numbers, numbers, numbers), min_size=1, max_size=40),
    test_size=st.sampled_from([0.0, 0.2, 0.5, 0.9]),
    standardize=st.booleans(),
    seed=st.integers(0, 3),
)
def test_the_typed_path_writes_the_split_the_numeric_stream_writes(
    tmp_path_factory, rows, test_size, standardize, seed
):
    tmp = tmp_path_factory.mktemp("t")
    csv = tmp / "t.csv"
    csv.write_text("a,skip,b,y\n" + "".join(f"{a},w,{b},{y}\n" for a, b, y in rows))
    data = DataParams(
        path=str(csv), features=("b", "a"), target="y", test_size=test_size, split_seed=seed, standardize=standardize
    )
    outcomes = []
    header = ["a", "skip", "b", "y"]
    runs = {
        "stream": lambda out: stream_split(data, out),
        "typed": lambda out: prepare_typed(data, header, ["b", "a"], out),
    }
    for name, run in runs.items():
        (tmp / name).mkdir()
        try:
            run(tmp / name)
        except (UserError, FastParseRefused) as err:
            outcomes.append(type(err).__name__)
            continue
        outcomes.append(written(tmp / name))
    assert outcomes[0] == outcomes[1] or outcomes == ["FastParseRefused", "UserError"]


CELLS = [
    "1", "1.5", " 2", "2 ", "+3", "-0", "1e5", ".5", "5.", "0x10", "1_000", "inf", "-Infinity", "nan", "1d5", '"4"',
    '" 4"', "1e-320", "0.1000000000000000055511151231257827", "123456789012345678901234567890", "\u0661", '"1,5"',
    "", "NA", "true", "1.7976931348623157e308", "2e150", "00012", "9007199254740993", "\u00a0", "a b",
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cells=st.lists(st.tuples(st.sampled_from(CELLS), st.sampled_from(CELLS)), min_size=1, max_size=6),
    ending=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    blank=st.sampled_from(["", "\n", "  \n", "\t\n"]),
)
def test_pyarrow_reads_a_cell_as_pandas_does_or_hands_the_file_to_pandas(tmp_path_factory, cells, ending, bom, blank):
    csv = tmp_path_factory.mktemp("t") / "t.csv"
    lines = ["x,y", *(f"{x},{y}" for x, y in cells)]
    lines.insert(2, blank.rstrip("\n")) if blank else None
    csv.write_text(("\ufeff" if bom else "") + ending.join(lines) + ending, encoding="utf-8")
    try:
        fast = np.concatenate([block for block, _, _ in stream_columns(csv, ["x", "y"])])
    except FastParseRefused:
        return  # the checked path reads it, and names what is wrong
    slow = read_columns(csv, ["x", "y"])  # raises if pandas refuses what pyarrow took
    assert fast.shape == slow.shape and fast.tobytes() == slow.tobytes()


def test_the_split_groups_add_up_to_the_whole_tables_count_and_one_group_is_a_plain_permutation():
    for n_rows, fraction, group_rows in [(2500, 0.3, 1000), (2000, 0.25, 1000), (7, 0.5, 2), (1, 0.2, 1)]:
        kept, held = seeded_split(n_rows, fraction, 11, group_rows)
        assert len(held) == math.ceil(fraction * n_rows) and len(kept) + len(held) == n_rows
        assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(n_rows))
    # a table of at most one group: the seeded permutation's first ceil(f n) rows, as before groups
    order = np.random.default_rng(7).permutation(442)
    kept, held = seeded_split(442, 0.2, 7)
    assert np.array_equal(held, np.sort(order[:89])) and np.array_equal(kept, np.sort(order[89:]))
    # each group draws its own rows: group 1 is not group 0's pattern shifted
    assert not np.array_equal(held_out_in_group(0, 1000, 0.3, 11, 1000), held_out_in_group(1, 1000, 0.3, 11, 1000))


@pytest.mark.parametrize("shape", [(10, 1), (0, 3), (5,), (0,), (12345, 8), (3, 1234)])
def test_an_npy_written_block_by_block_is_what_np_save_writes(tmp_path, shape):
    values = np.random.default_rng(1).standard_normal(shape)
    np.save(tmp_path / "saved.npy", values)
    appender = NpyAppender(tmp_path / "appended.npy", shape[1] if len(shape) > 1 else None)
    for start in range(0, len(values), 1000):
        appender.append(values[start : start + 1000])
    appender.close()
    assert (tmp_path / "appended.npy").read_bytes() == (tmp_path / "saved.npy").read_bytes()
