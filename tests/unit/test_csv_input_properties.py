"""Property-based tests of the CSV reader: valid tables load exactly; junk only ever raises UserError."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages import csv_input
from stages.csv_input import LARGEST_VALUE, SMALLEST_SPREAD, read_table
from stages.errors import UserError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

names = st.text(alphabet=st.sampled_from("abcxyz_ ABC0123é"), min_size=1, max_size=8).map(str.strip).filter(bool)
# Integers past 2**64 too: both the typed fast path and the inferring fallback must round them correctly.
# Magnitudes beyond LARGEST_VALUE are refused (their squares overflow): test_csv_input.py names that cell.
# Tiny floats stay in: a column whose values differ by less than SMALLEST_SPREAD must be refused.
finite = (
    st.floats(min_value=-LARGEST_VALUE, max_value=LARGEST_VALUE)
    | st.integers(-(10**25), 10**25)
    | st.floats(min_value=-1e-160, max_value=1e-160)
)


@st.composite
def tables(draw):
    columns = draw(st.lists(names, min_size=2, max_size=5, unique=True))
    n_rows = draw(st.integers(1, 20))
    rows = [[draw(finite) for _ in columns] for _ in range(n_rows)]
    return columns, rows


@SETTINGS
@given(tables(), st.sampled_from(["\n", "\r\n"]), st.booleans(), st.booleans(), st.integers(2, 5))
def test_valid_tables_load_exactly(tmp_path, table, line_end, bom, quote_all, n_read):
    columns, rows = table
    n_read = min(n_read, len(columns))  # the columns after these are not read (pandas' usecols, when safe)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator=line_end, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    writer.writerows([[repr(v) if isinstance(v, float) else str(v) for v in row] for row in rows])
    path = tmp_path / "t.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.getvalue().encode("utf-8"))

    expected = np.array(rows, dtype=np.float64)[:, :n_read]
    spreads = expected.max(axis=0) - expected.min(axis=0)
    if ((spreads > 0) & (spreads < SMALLEST_SPREAD)).any():  # differences that would vanish when squared
        with pytest.raises(UserError, match="only varies from"):
            read_table(path, tuple(columns[1:n_read]), columns[0])
        return
    loaded = read_table(path, tuple(columns[1:n_read]), columns[0])
    assert loaded.y.tolist() == expected[:, 0].tolist()
    assert loaded.X.tolist() == expected[:, 1:].tolist()


csv_ish = st.text(alphabet=st.sampled_from('xy,0123456789.e-+"\n\r \t;nainf\x00é'), max_size=80).map(str.encode)


@settings(SETTINGS, max_examples=400)
@given(
    st.sampled_from([b"", b"x,y\n", b"x,y\n1,2\n", b'"x","y"\r\n', b"x,y,z\n1,2,3\n"]),
    st.binary(max_size=200) | csv_ish,
)
def test_junk_never_raises_anything_but_user_error(tmp_path, prefix, junk):
    path = tmp_path / "junk.csv"
    path.write_bytes(prefix + junk)
    try:
        table = read_table(path, ("x",), "y")
    except UserError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
    else:
        assert np.isfinite(table.X).all() and np.isfinite(table.y).all() and len(table.y) > 0


@SETTINGS
@given(st.text(alphabet=st.sampled_from("0123456789,\n\r"), max_size=60), st.integers(1, 4), st.integers(1, 9))
def test_the_field_count_scan_agrees_with_splitting_the_lines(tmp_path, monkeypatch, text, n_fields, chunk):
    # Chunks of a few bytes put line ends, commas and runs of lines across chunk boundaries.
    monkeypatch.setattr(csv_input, "TEXT_SCAN_CHUNK", chunk)
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode())
    expected = all(line.count(",") < n_fields for line in re.split("[\r\n]", text))
    assert csv_input._no_line_has_extra_fields(path, n_fields) is expected
    path.write_bytes(b'"' + text.encode())
    assert csv_input._no_line_has_extra_fields(path, n_fields) is False  # quotes: commas may be inside them


# Lines between the data rows: blank for pandas (nothing, spaces, tabs) or rows of other whitespace.
whitespace_lines = st.text(
    alphabet=st.sampled_from([" ", "\t", "\xa0", "\x0c", "\x0b", "\u2003", "\u3000"]), max_size=3
)


@SETTINGS
@given(
    st.lists(st.one_of(st.sampled_from(["plain", "quoted", "spaced"]), whitespace_lines), min_size=1, max_size=14),
    st.sampled_from(["\n", "\r\n"]),
)
def test_the_row_locator_finds_the_line_pandas_reads_each_row_from(tmp_path, lines, line_end):
    import pandas as pd

    written = []
    for i, kind in enumerate(lines):
        written.append({"plain": f"{i},{i}", "quoted": f'"{i}",{i}', "spaced": f"  {i}, {i}"}.get(kind, kind))
    path = tmp_path / "rows.csv"
    path.write_text(line_end.join(["x,y", *written]) + line_end, encoding="utf-8", newline="")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    physical = ["x,y", *written]  # line n of the file is physical[n - 1]
    for row in range(1, len(frame) + 1):
        line, fields = csv_input._locate_row(path, row)
        from_file = next(csv.reader([physical[line - 1]], skipinitialspace=True), [""])
        assert from_file[0].strip(" \t") == fields[0].strip(" \t") == frame.iloc[row - 1, 0].strip(" \t"), row
    assert csv_input._locate_row(path, len(frame) + 1) == (0, [])
