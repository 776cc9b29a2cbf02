from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import tracemalloc
import zipfile

import numpy as np
import pytest

from stages.csv_input import read_header, read_table
from stages.errors import UserError


def write(tmp_path, text: str | bytes, name: str = "t.csv"):
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, newline="")
    else:
        path.write_bytes(text)
    return path


def test_reads_several_features_in_file_order(tmp_path):
    path = write(tmp_path, "a,b,label,c\n1,2,x,0.5\n3,4,y,1e3\n5,6,z,-7\n")
    table = read_table(path, ("c", "a"), "b")
    np.testing.assert_array_equal(table.X, [[0.5, 1], [1000, 3], [-7, 5]])
    np.testing.assert_array_equal(table.y, [2, 4, 6])
    assert table.X.dtype == np.float64


@pytest.mark.parametrize(
    "content",
    [
        b"\xef\xbb\xbfx,y\n1,2\n3,4\n",  # UTF-8 byte-order mark
        b'"x","y"\r\n1,2\r\n3,4\r\n',  # quoted header, Windows line ends
        b"x, y\n1, 2\n3, 4\n",  # spaces after commas
    ],
)
def test_bom_quotes_crlf_and_spaces_just_work(tmp_path, content):
    table = read_table(write(tmp_path, content), ("x",), "y")
    np.testing.assert_array_equal(table.y, [2, 4])


def test_values_round_trip_exactly(tmp_path):
    values = [0.1, 1 / 3, 2.718281828459045, 1e-300, 123456789.123456789]
    text = "x,y\n" + "".join(f"{v!r},{-v!r}\n" for v in values)
    table = read_table(write(tmp_path, text), ("x",), "y")
    assert table.X[:, 0].tolist() == values
    assert table.y.tolist() == [-v for v in values]


@pytest.mark.parametrize(
    "content",
    [
        "x,y,\r\n1,3,\r\n2,5,\r\n",  # a spreadsheet's export: every line ends with a comma
        "x,y,,\n1,3,,\n2,5,,\n",  # two unnamed empty columns
        "a,x,a,y,a\n0,1,0,3,z\n0,2,0,5,z\n",  # a column the stage does not read, three times
        ",x,y\n0,1,3\n1,2,5\n",  # pandas' to_csv with its index: the first column has no name
        "PAR1,x,y\n0,1,3\n1,2,5\n",  # text that begins like a Parquet file's magic bytes is still text
    ],
)
def test_unused_columns_may_be_unnamed_or_repeated(tmp_path, content):
    table = read_table(write(tmp_path, content), ("x",), "y")
    assert table.X[:, 0].tolist() == [1.0, 2.0] and table.y.tolist() == [3.0, 5.0]


def test_a_column_of_only_true_and_false_reads_as_1_and_0(tmp_path):
    # pandas' own reading of a boolean column; mixed with numbers, 'true' is refused (see above)
    table = read_table(write(tmp_path, "x,y\n1,true\n2,false\n3,True\n"), ("x",), "y")
    assert table.y.tolist() == [1.0, 0.0, 1.0]


def test_columns_not_read_are_not_held_in_memory(tmp_path):
    # 20 MB of text in a column nobody asked for: only x and y are parsed (pandas' usecols, after a scan
    # shows no row has too many fields), so the peak stays far below the size of that column.
    note = "n" * 10_000
    path = write(tmp_path, "x,note,y\n" + "".join(f"{i},{note},{2 * i}\n" for i in range(2000)))
    tracemalloc.start()
    try:
        table = read_table(path, ("x",), "y")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert table.y.tolist() == [2.0 * i for i in range(2000)]
    assert peak < 5_000_000, f"peak {peak} bytes while reading 2 numeric columns of 2000 rows"


@pytest.mark.parametrize(
    "content, columns",
    [
        ("x,y,z\n1,2,3\n4,5,6,7\n", "line 3 has 4 fields but the header has 3"),  # no quotes: the scan finds it
        ('x,y,z\n1,2,"a"\n4,5,6,7\n', "line 3 has 4 fields but the header has 3"),  # quotes: every column parsed
    ],
)
def test_a_too_long_row_is_refused_even_when_other_columns_are_not_read(tmp_path, content, columns):
    with pytest.raises(UserError, match=columns):
        read_table(write(tmp_path, content), ("x",), "y")


def test_a_quoted_comma_in_a_column_not_read_is_no_extra_field(tmp_path):
    table = read_table(write(tmp_path, 'x,name,y\n1,"Smith, J",3\n2,"Doe, A",5\n'), ("x",), "y")
    assert table.X[:, 0].tolist() == [1.0, 2.0] and table.y.tolist() == [3.0, 5.0]


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("", "the file is empty"),
        ("x,y\n", "has a header but no data rows"),
        ("x,z\n1,2\n", "column 'y' not found; the columns are 'x', 'z'"),
        ("x ,y\n1,2\n", "column 'x' not found; did you mean 'x '? the columns are 'x ', 'y'"),
        ("X,y\n1,2\n", "column 'x' not found; did you mean 'X'? the columns are 'X', 'y'"),
        ("x,yy\n1,2\n", "column 'y' not found; did you mean 'yy'? the columns are 'x', 'yy'"),
        (
            "x," + ",".join(f"c{i}" for i in range(30)) + "\n" + "1," * 30 + "1\n",
            "column 'y' not found; the columns are 'x', " + ", ".join(f"'c{i}'" for i in range(19)) + " and 11 more",
        ),
        ("x;y\n1;2\n", "looks like it uses ';' or tabs"),
        (
            "sep=,\nx,y\n1,2\n",
            "column 'x' not found; the first line, 'sep=,', is Excel's separator hint, not the "
            "header: delete that line",
        ),
        ("sep=;\nx;y\n1;2\n", "the first line, 'sep=;', is Excel's separator hint"),
        ("x,y,x\n1,2,3\n", "header names column 'x' more than once"),
        ("x,y\n1,2\n3,abc\n", "row 2 (line 3), column 'y': 'abc' is not a number"),
        (
            "x,y\n1,2\nx,y\n3,4\n",
            "row 2 (line 3), column 'x': 'x' is not a number; it repeats the header: remove that line",
        ),
        ("x,y\n1,5\n2,true\n", "row 2 (line 3), column 'y': 'true' is not a number; write yes/no values as 1 and 0"),
        ("x,y\n1,5\n2,no\n", "row 2 (line 3), column 'y': 'no' is not a number; write yes/no values as 1 and 0"),
        (
            'x,y\n1,"1,234.5"\n',
            "column 'y': '1,234.5' is not a number; numbers need '.' as the decimal mark and no "
            "thousands separators, e.g. 1234.5",
        ),
        ('x,y\n1,"2,5"\n', "column 'y': '2,5' is not a number; numbers need '.' as the decimal mark"),
        ("x,y\n1,5%\n", "column 'y': '5%' is not a number; write percentages as plain numbers, e.g. 5 or 0.05"),
        ("x,y\n1,$12.50\n", "column 'y': '$12.50' is not a number; remove the currency symbol"),
        ("x,y\n1,twelve\n", "column 'y': 'twelve' is not a number"),
        ("x,y\n1,2\n,4\n", "row 2 (line 3), column 'x': the cell is empty"),
        ("x,y\n1,inf\n", "row 1 (line 2), column 'y': 'inf' is not a finite number"),
        ("x,y\n1,-Infinity\n", "row 1 (line 2), column 'y': '-Infinity' is not a finite number"),
        (
            "x,y\n1,2\n1.7e308,3\n",
            "row 2 (line 3), column 'x': '1.7e308' is too large to compute with (beyond "
            "±1e+150 its square overflows); rescale the column, e.g. divide it by a power of ten",
        ),
        ("x,y\n1,-2e150\n", "row 1 (line 2), column 'y': '-2e150' is too large to compute with"),
        ("x,y\n1,2\n1e309,3\n", "row 2 (line 3), column 'x': '1e309' is too large to compute with"),  # not 'inf'
        ("x,y\n1,2\n\xa0\n3,4\n", "row 2 (line 3) holds only whitespace (U+00A0) that is not a space or tab"),
        ("x,y\n1,2\n\t\x0c \n3,x\n", "row 2 (line 3) holds only whitespace (U+0009, U+000C, U+0020) that is not"),
        ('x,y\n1,2\n3,"4\n5,6\n', 'line 3: a quote (") opens a field that the file never closes, so everything'),
        ("x,y,z\n1,2," + "a" * 200_000 + "\n3,oops,c\n", "row 2 (line 3), column 'y': 'oops' is not a number"),
        (
            "x,y\n1e-200,1\n3e-200,2\n",
            "column 'x' only varies from 1e-200 to 3e-200: differences below 1e-150 "
            "vanish when squared; rescale the column, e.g. multiply it by a power of ten",
        ),
        ("x,y\n\n1,2\n\n3,1e999\n", "row 2 (line 5), column 'y': '1e999' is too large to compute with"),
        ("x,y\n1,2\n3\n", "row 2 (line 3) has 1 field(s) but the header has 2"),
        ("x,y\n1,NA\n", "row 1 (line 2), column 'y': 'NA' is not a number"),
        ("x,y\n1,2\n3,4,5\n", "line 3 has 3 fields but the header has 2"),
    ],
)
def test_bad_csv_names_the_culprit(tmp_path, content, fragment):
    path = write(tmp_path, content)
    with pytest.raises(UserError) as err:
        read_table(path, ("x",), "y")
    assert fragment in str(err.value)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda text: gzip.compress(text), "this is a gzip-compressed file, not a CSV text file; decompress it"),
        (lambda text: bz2.compress(text), "this is a bzip2-compressed file, not a CSV text file"),
        (lambda text: lzma.compress(text), "this is an xz-compressed file, not a CSV text file"),
        (lambda text: _zipped(text), "this is a zip archive (an Excel .xlsx workbook is one), not a CSV text file"),
        (lambda text: text.decode().encode("utf-16"), "this is UTF-16 text, not a CSV text file; save it as UTF-8"),
    ],
)
def test_compressed_archived_or_utf16_files_are_named_for_what_they_are(tmp_path, make, fragment):
    path = write(tmp_path, make(b"x,y\n1,2\n3,4\n"))
    with pytest.raises(UserError, match=re.escape(f"{path}: {fragment}")):
        read_table(path, ("x",), "y")


def _zipped(text: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("t.csv", text)
    return buffer.getvalue()


def test_missing_file_says_which_param_to_fix(tmp_path):
    with pytest.raises(UserError, match="file not found; point data.path"):
        read_table(tmp_path / "nope.csv", ("x",), "y")


def test_binary_file_is_reported_as_not_text(tmp_path):
    with pytest.raises(UserError, match="line 2, byte offset 6: a NUL byte; this is not a UTF-8 text CSV file"):
        read_table(write(tmp_path, b"x,y\n1,\x00\n"), ("x",), "y")
    with pytest.raises(UserError, match="line 3, byte offset 10: byte 0xff, not UTF-8 text"):
        read_table(write(tmp_path, b"x,y\n1,2\n3,\xff\xfe\n"), ("x",), "y")


def test_utf8_split_across_scan_chunks_is_text_and_a_late_bad_byte_is_located(tmp_path, monkeypatch):
    import stages.csv_input

    monkeypatch.setattr(stages.csv_input, "TEXT_SCAN_CHUNK", 5)
    table = read_table(write(tmp_path, "x,y\n1,2\n3,4\n".replace("x", "\u00e9x").encode()), ("\u00e9x",), "y")
    assert table.y.tolist() == [2, 4]
    with pytest.raises(UserError, match="line 4, byte offset 14: byte 0xff"):
        read_table(write(tmp_path, b"x,y\n1,2\n3,4\n5,\xff\n"), ("x",), "y")


def test_a_number_that_reads_as_zero_is_refused_in_either_spelling_and_a_subnormal_is_kept(tmp_path):
    path = tmp_path / "t.csv"
    for cell in ("1e-400", "-2.5E-0999", "0." + "0" * 400 + "1"):
        path.write_text(f"x,y\n1,2\n3,{cell}\n")
        with pytest.raises(
            UserError, match=rf"^{re.escape(str(path))}: line 3, column 'y': '{re.escape(cell)}' reads as 0"
        ):
            read_header(path)
    for cell in ("2.2250738585e-313", "0." + "0" * 310 + "1", "0e-400", "1e-300"):  # subnormal, zero, normal
        path.write_text(f"x,y\n1,2\n3,{cell}\n")
        assert read_header(path) == ["x", "y"]
