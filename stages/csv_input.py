"""Reading and checking the user's CSV: every message that names a file, row, column or cell.

Only `prepare` (and the `predict` tool) read CSV files: later stages read the prepared split
(stages/prepared.py) and never import this module, so editing a message here reruns `prepare` alone.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import re
import sys
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from stages.errors import UserError
from stages.io import check_regular_file


@dataclass(frozen=True)
class Table:
    """Numeric columns of the CSV in file order: X is (rows, features), y is (rows,)."""

    features: tuple[str, ...]
    target: str
    X: np.ndarray
    y: np.ndarray


TEXT_SCAN_CHUNK = 1 << 20
# The csv module refuses fields over 131,072 characters; pandas reads fields, header names included, of any
# length, so every csv.reader here must too (a process-wide setting, made once)
csv.field_size_limit(sys.maxsize)


# Files people point at a CSV setting by mistake, by their first bytes, and what to do instead.
KNOWN_FORMATS = (
    (b"\x1f\x8b", "a gzip-compressed file", "decompress it (gunzip) and use the .csv inside"),
    (b"BZh", "a bzip2-compressed file", "decompress it (bunzip2) and use the .csv inside"),
    (b"\xfd7zXZ\x00", "an xz-compressed file", "decompress it (unxz) and use the .csv inside"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file", "decompress it (unzstd) and use the .csv inside"),
    (
        b"PK\x03\x04",
        "a zip archive (an Excel .xlsx workbook is one)",
        "extract the CSV, or save the sheet from Excel as 'CSV UTF-8'",
    ),
    (b"\xd0\xcf\x11\xe0", "an Excel .xls workbook", "save the sheet from Excel as 'CSV UTF-8'"),
    (b"PAR1", "a Parquet file", "write it out as CSV (pandas.read_parquet(...).to_csv(..., index=False))"),
    (b"\xff\xfe", "UTF-16 text", "save it as UTF-8 (in Excel: 'CSV UTF-8')"),
    (b"\xfe\xff", "UTF-16 text", "save it as UTF-8 (in Excel: 'CSV UTF-8')"),
)


def _refuse_known_formats(path: Path, start: bytes) -> None:
    """Only asked about files that are not UTF-8 text (a CSV may well begin with the letters PAR1)."""
    for magic, what, fix in KNOWN_FORMATS:
        if start.startswith(magic):
            raise UserError(f"{path}: this is {what}, not a CSV text file; {fix}")


def _check_is_text(path: Path, named_by: str) -> tuple[int, bytes] | None:
    """Refuse missing files, folders, empty files and anything that is not UTF-8 text, before parsing.
    `named_by`: where the path came from, for the fix the message suggests.

    Reads the file once in chunks (an ASCII chunk without NUL bytes, the usual case, is passed at memory
    speed), so the byte and line it reports are exact whatever the file size.
    """
    check_regular_file(path, f"point {named_by} at an existing CSV")
    handle = path.open("rb")
    offset, carry = 0, b""  # offset of the first byte of `carry`
    tiny: tuple[int, bytes] | None = None
    with handle:
        start = handle.peek(8)[:8]  # the first bytes, to name a binary format
        while chunk := handle.read(TEXT_SCAN_CHUNK):
            data = carry + chunk
            if tiny is None:
                tiny = _tiny_number(handle, data, offset)
            bad = data.find(b"\0")
            if bad < 0 and data.isascii():
                carry = b""
                offset += len(data)
                continue
            try:
                data[: bad if bad >= 0 else len(data)].decode("utf-8")
                carry = b""
            except UnicodeDecodeError as err:
                if err.reason == "unexpected end of data" and err.start >= len(data) - 3 and bad < 0:
                    carry = data[err.start :]  # a character split across two chunks
                    data = data[: err.start]
                else:
                    bad = err.start
            if bad >= 0:
                _refuse_known_formats(path, start)  # binary: say what it is, when its first bytes tell
                what = "a NUL byte" if data[bad] == 0 else f"byte 0x{data[bad]:02x}, not UTF-8 text"
                # A stray byte in text is usually another encoding (Windows-1252, Latin-1): say how to convert.
                fix = "" if data[bad] == 0 else " (save it as UTF-8; in Excel: 'CSV UTF-8')"
                raise UserError(
                    f"{path}: line {_line_at(path, offset + bad)}, byte offset {offset + bad}: {what}; "
                    f"this is not a UTF-8 text CSV file{fix}"
                )
            offset += len(data)
    if carry:
        raise UserError(
            f"{path}: line {_line_at(path, offset)}, byte offset {offset}: the file ends inside a UTF-8 character"
        )
    if offset == 0:
        raise UserError(f"{path}: the file is empty; it needs a header row like x,y and data rows")
    return tiny


# A number nearer 0 than float64's smallest (4.9e-324), such as 1e-400 or 0.000...1 with 400 zeros, reads as 0:
# refused as a number too large is. Only a number with a three-digit negative exponent or 300 zeros after its
# point can be. Each mark has a literal start that the search skips to at memory speed (a character class,
# [eE], would try every byte: 20x slower); the regex runs only where the literal is in the chunk.
TINY_MARKS = (
    (b"e", re.compile(rb"e-0*[1-9][0-9]{2}")),
    (b"E", re.compile(rb"E-0*[1-9][0-9]{2}")),
    (b"0" * 300, re.compile(rb"\.0{300}")),
)
NUMBER_AT = re.compile(rb"[-+]?[0-9]*\.?[0-9]*(?:[eE][-+]?[0-9]+)?")


def _tiny_number(handle, data: bytes, offset: int) -> tuple[int, bytes] | None:
    """(byte offset, text) of the first number in `data` (at `offset` of the file) that is not 0 but reads as
    0. A number across the chunk's end is read whole from the file (`handle`)."""
    candidates = (found for literal, pattern in TINY_MARKS if literal in data for found in pattern.finditer(data))
    for found in candidates:
        begin = found.start()
        while begin > 0 and data[begin - 1 : begin] in b"0123456789.+-":
            begin -= 1
        if found.end() + 4096 > len(data):  # the number may go on in the next chunk
            data = data + handle.peek(4096)[:4096]
        text = NUMBER_AT.match(data, begin).group()
        try:
            value = float(text)
        except ValueError:
            continue
        if value == 0 and re.search(rb"[1-9]", re.split(rb"[eE]", text)[0]):
            return offset + begin, text
    return None


def _line_at(path: Path, offset: int) -> int:
    """The line (from 1) holding byte `offset` of the file: 1 + the line feeds before it."""
    lines = 1
    with path.open("rb") as handle:
        while offset > 0 and (chunk := handle.read(min(TEXT_SCAN_CHUNK, offset))):
            lines += chunk.count(b"\n")
            offset -= len(chunk)
    return lines


def _read_header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle, skipinitialspace=True), [])
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: the header is not UTF-8 text ({err.reason}); save the file as UTF-8") from None
    except csv.Error as err:
        raise UserError(f"{path}: line 1 (the header) cannot be read as CSV: {err}") from None
    if not any(name.strip() for name in header):
        raise UserError(f"{path}: the first line is blank; it must be a header row like x,y")
    return header


def _check_columns(path: Path, header: list[str], wanted: list[str]) -> None:
    # Only the columns read must be unique: other columns may repeat or have no name at all (a
    # spreadsheet's export often ends every line with commas); pandas names those 'Unnamed: 2', 'a.1'.
    repeated = sorted({name for name in wanted if header.count(name) > 1})
    if repeated:
        names = ", ".join(map(repr, repeated))
        raise UserError(f"{path}: header names column {names} more than once; rename the duplicates")
    for name in wanted:
        if name not in header:
            raise UserError(f"{path}: column {name!r} not found; {column_hint(name, header)}")


LISTED_COLUMNS = 20  # a message lists at most this many of the header's columns


def _normal_form(text: str) -> str:
    """The Unicode normalization `text` is written in: an accented letter is one code point (NFC, what most
    editors type) or a letter and a combining accent (NFD, what macOS's file names hold)."""
    return next((form for form in ("NFC", "NFD") if unicodedata.is_normalized(form, text)), "mixed forms")


def normalization_hint(name: str, header: list[str]) -> str | None:
    """What to say when the header has `name` in another Unicode normalization (it looks the same), else None."""
    nfc = unicodedata.normalize("NFC", name)
    twins = [column for column in header if unicodedata.normalize("NFC", column) == nfc]
    if not twins:
        return None
    return (
        f"the file's column {twins[0]!r} looks the same but is other Unicode code points (Unicode "
        f"{_normal_form(twins[0])} in the file, {_normal_form(name)} here); copy the name from the file's "
        "header, or save the file with its header in NFC"
    )


def column_hint(name: str, header: list[str]) -> str:
    """What to say about a column name that is not in the header: the likely intended column, the
    columns there are (the first LISTED_COLUMNS), or the delimiter the file seems to use."""
    if header and header[0].lower().startswith("sep="):
        return f"the first line, {','.join(header)!r}, is Excel's separator hint, not the header: delete that line"
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t")):
        return (
            f"the header is a single column, {header[0]!r}, so the file looks like it uses ';' or tabs "
            "instead of commas"
        )
    twin = normalization_hint(name, header)
    if twin:
        return twin
    same = [column for column in header if column.strip().casefold() == name.strip().casefold()]
    close = same or difflib.get_close_matches(name, header, n=1, cutoff=0.6)
    guess = f"did you mean {close[0]!r}? " if close else ""
    shown = ", ".join(map(repr, header[:LISTED_COLUMNS]))
    more = f" and {len(header) - LISTED_COLUMNS} more" if len(header) > LISTED_COLUMNS else ""
    return f"{guess}the columns are {shown}{more}"


def is_blank_record(fields: list[str]) -> bool:
    """Whether a record from csv.reader(..., skipinitialspace=True) is a line pandas skips rather than
    counts as a row: an empty line, or one of only spaces and tabs. Other whitespace (a no-break space, a
    form feed) makes a row. (A line holding just a quoted empty field reads the same and counts as blank
    here; pandas would call it a row of empty cells.)"""
    return len(fields) <= 1 and not "".join(fields).strip(" \t")


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each record under the header, as the csv module splits them (a quoted field
    may span lines); fields of any length."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        next(reader, None)
        first = reader.line_num + 1
        for fields in reader:
            yield first, fields
            first = reader.line_num + 1


def _locate_row(path: Path, row: int) -> tuple[int, list[str]]:
    """(first line, fields) of data row `row` (1-based), as pandas counts rows: blank lines skipped;
    (0, []) past the end. Only called on the error path, so the second pass costs nothing in a good run."""
    seen = 0
    for line, fields in _records(path):
        if not is_blank_record(fields):
            seen += 1
            if seen == row:
                return line, fields
    return 0, []


def _unclosed_quote_line(path: Path) -> int | None:
    """The line where a quoted field opens that the file never closes, if one does."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, skipinitialspace=True, strict=True)
        start = 1  # the first line of the record being read
        try:
            for _ in reader:
                start = reader.line_num + 1
        except csv.Error as err:
            if "unexpected end of data" in str(err):
                return start
    return None


def _row_at(row: int, line: int) -> str:
    return f"row {row} (line {line})" if line else f"row {row}"


def row_where(path: Path, row: int) -> str:
    return _row_at(row, _locate_row(path, row)[0])


def _cell_as_written(path: Path, row: int, position: int, fallback: str) -> tuple[str, str]:
    """(where, the cell's text in the file) for data row `row`, column `position` of the header."""
    line, fields = _locate_row(path, row)
    return _row_at(row, line), fields[position].strip() if position < len(fields) else fallback


# Scaling and least squares square the values (sums of squares over up to ~10^8 rows must stay finite):
# anything larger is refused with the cell named, rather than failing later as an overflow.
LARGEST_VALUE = 1e150
SMALLEST_SPREAD = 1e-150  # and a column whose values differ by less would look constant once squared


def cell_hint(cell: str, name: str) -> str:
    """How to fix a cell that is not a number, when its spelling says what it is meant to be."""
    text = cell.strip()
    if text == name.strip():  # the header again further down: files joined with `cat`, each with its header
        return "; it repeats the header: remove that line"
    if text.lower() in ("true", "false", "yes", "no"):
        return "; write yes/no values as 1 and 0"
    if re.fullmatch(r"[-+]?\d[\d,]*(\.\d+)?", text):  # 1,234.5 or a decimal comma, 2,5
        return "; numbers need '.' as the decimal mark and no thousands separators, e.g. 1234.5"
    if re.fullmatch(r"[-+]?\d+(\.\d+)?\s*%", text):
        return "; write percentages as plain numbers, e.g. 5 or 0.05"
    if re.fullmatch(r"[-+]?[$€£¥]\s*[-+]?\d[\d,]*(\.\d+)?", text):
        return "; remove the currency symbol"
    return ""


def _numeric_column(path: Path, frame, name: str, header: list[str]) -> np.ndarray:
    import pandas as pd

    column = frame[name]
    if column.dtype.kind not in "iuf":
        as_number = pd.to_numeric(column, errors="coerce")
        empty = column.isna() | (column.astype(str).str.strip() == "")
        bad = as_number.isna() & ~empty
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            cell = column.iloc[row - 1]
            raise UserError(
                f"{path}: {row_where(path, row)}, column {name!r}: {cell!r} is not a number{cell_hint(str(cell), name)}"
            )
        column = as_number.where(~empty)
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    missing = np.isnan(values)
    if missing.any():
        row = int(np.flatnonzero(missing)[0]) + 1
        line, fields = _locate_row(path, row)
        if 0 < len(fields) < len(header):
            _refuse_short_row(path, row, line, fields, len(header))
        raise UserError(
            f"{path}: {row_where(path, row)}, column {name!r}: the cell is empty; fill it in or drop the row"
        )
    out_of_range = np.abs(values) > LARGEST_VALUE  # infinities included
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range)[0]) + 1
        where, cell = _cell_as_written(path, row, header.index(name), f"{values[row - 1]:g}")
        if cell.lower().lstrip("+-") in ("inf", "infinity"):
            raise UserError(f"{path}: {where}, column {name!r}: {cell!r} is not a finite number")
        raise UserError(
            f"{path}: {where}, column {name!r}: {cell!r} is too large to compute with (beyond "
            f"±{LARGEST_VALUE:g} its square overflows); rescale the column, e.g. divide it by a power of ten"
        )
    return values


def read_table(path: str | Path, features: tuple[str, ...], target: str) -> Table:
    """Read the feature and target columns of a CSV as float64, or raise UserError naming the bad cell.

    Rows are numbered from 1 for the first data row under the header; blank lines are skipped.
    """
    names = [*features, target]
    values = read_columns(path, names)
    for name, column in zip(names, values.T, strict=True):
        check_spread(path, name, float(column.min()), float(column.max()))
    return Table(features=tuple(features), target=target, X=values[:, :-1], y=values[:, -1])


def check_spread(path: str | Path, name: str, low: float, high: float) -> None:
    """Refuse a column whose values differ, but by so little that the differences vanish when squared."""
    if 0 < high - low < SMALLEST_SPREAD:
        raise UserError(
            f"{path}: column {name!r} only varies from {low:g} to {high:g}: differences below "
            f"{SMALLEST_SPREAD:g} vanish when squared; rescale the column, e.g. multiply it by a power of ten"
        )


def read_header(path: str | Path, named_by: str = "data.path in params.yaml") -> list[str]:
    """The column names of a CSV, after checking it is a non-empty UTF-8 text file without a number too small
    to read (_tiny_number)."""
    path = Path(path)
    tiny = _check_is_text(path, named_by)
    header = _read_header(path)
    if tiny is not None:
        _refuse_tiny_number(path, header, *tiny)
    return header


def _refuse_tiny_number(path: Path, header: list[str], offset: int, text: bytes) -> None:
    with path.open("rb") as handle:
        handle.seek(max(0, offset - TEXT_SCAN_CHUNK))
        before = handle.read(offset - handle.tell())
        line = before[before.rfind(b"\n") + 1 :] + handle.readline()
    fields = next(csv.reader([line.decode("utf-8", "replace")], skipinitialspace=True), [])
    cell = text.decode()
    position = next((j for j, field in enumerate(fields) if field.strip() == cell), None)
    column = f", column {header[position]!r}" if position is not None and position < len(header) else ""
    raise UserError(
        f"{path}: line {_line_at(path, offset)}{column}: {cell!r} reads as 0: it is nearer 0 than float64's "
        "smallest number (4.9e-324); rescale the column, e.g. multiply it by a "
        "power of ten"
    )


def check_header(path: str | Path, wanted: list[str]) -> list[str]:
    """read_header, then check the wanted columns are there, once each; the header."""
    header = read_header(path)
    _check_columns(Path(path), header, wanted)
    return header


def _read_frame(path: Path, wanted: list[str], header: list[str], as_text: bool = False):
    """The wanted columns parsed by pandas (float64 where every cell is a number, else as pandas infers; with
    `as_text`, every cell as the str it is), or a UserError for a file pandas cannot read as CSV."""
    import pandas as pd

    _check_columns(path, header, wanted)
    # Only the wanted columns are parsed when the file has others (a wide table costs no more memory than
    # its wanted columns), but pandas then drops the extra fields of a too-long row without a word: that
    # needs a scan showing no row is too long. Otherwise every column is parsed, and pandas names the row.
    skip_others = len(header) > len(wanted) and _no_line_has_extra_fields(path, len(header))

    def parse(dtype: dict | None):
        # Only empty cells are missing values; text such as NA or nan is reported as not a number (as text:
        # nothing is missing here, stages/columns.py judges the cells)
        with _progress_reader(path) as source:
            return pd.read_csv(
                source,
                encoding="utf-8-sig",
                skipinitialspace=True,
                keep_default_na=False,
                na_values=[""],
                na_filter=not as_text,
                dtype=str if as_text else dtype,
                usecols=wanted if skip_others else None,
            )

    try:
        try:
            # Fast path: the wanted columns parsed straight to float64 (a third faster than letting
            # pandas infer each column's type). A cell that is not a number fails it; the file is then
            # parsed again without types, so _numeric_column can name that cell.
            frame = parse(None if as_text else dict.fromkeys(wanted, np.float64))
        except ValueError as err:
            if as_text or isinstance(err, (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError)):
                raise
            frame = parse(None)
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason}); save the file as UTF-8") from None
    except pd.errors.ParserError as err:
        raise UserError(f"{path}: {_parser_problem(path, str(err))}") from None
    except (pd.errors.EmptyDataError, ValueError, csv.Error) as err:
        raise UserError(f"{path}: cannot be read as CSV ({str(err).strip() or type(err).__name__})") from None
    if len(frame) == 0:
        raise UserError(f"{path}: the file has a header but no data rows")
    if not skip_others and (
        len(frame.columns) != len(header) or any(frame.columns[header.index(name)] != name for name in wanted)
    ):
        raise UserError(f"{path}: the header could not be read consistently; check its quotes and separators")
    return frame


def read_columns(path: str | Path, wanted: list[str], header: list[str] | None = None) -> np.ndarray:
    """The named columns of a CSV as a float64 (rows, columns) array, checked cell by cell. `header`:
    what read_header returned for this file, when the caller has it (it spares a second scan)."""
    path = Path(path)
    header = read_header(path) if header is None else header
    frame = _read_frame(path, wanted, header)
    # Column-major, so that filling it column by column is a contiguous copy (20x faster than strided
    # writes at 10^7 rows); the table and this array, no third copy.
    values = np.empty((len(frame), len(wanted)), dtype=np.float64, order="F")
    for j, name in enumerate(wanted):
        values[:, j] = _numeric_column(path, frame, name, header)
    return values


def read_cells(path: str | Path, wanted: list[str], header: list[str] | None = None) -> dict[str, np.ndarray]:
    """The named columns of a CSV as arrays of str, each cell stripped of surrounding spaces, for columns
    that are not all numbers (stages/columns.py types them). A row with fewer fields than the header (which
    pandas would fill with empty cells) is refused, naming it."""
    path = Path(path)
    header = read_header(path) if header is None else header
    frame = _read_frame(path, wanted, header, as_text=True)
    short = _first_short_record(path, len(header))
    if short is not None:
        _refuse_short_row(path, *short, len(header))
    return {name: np.char.strip(frame[name].to_numpy(dtype=str)) for name in wanted}


def _refuse_short_row(path: Path, row: int, line: int, fields: list[str], n_header: int) -> None:
    """The message for a data row with fewer fields than the header (pandas fills it with empty cells)."""
    if len(fields) == 1 and not fields[0].strip():  # a no-break space, a form feed: pandas makes it a row
        codes = ", ".join(f"U+{ord(char):04X}" for char in sorted(set(fields[0])))
        raise UserError(
            f"{path}: row {row} (line {line}) holds only whitespace ({codes}) that is not a space or tab, "
            "so it is not skipped as a blank line; delete the line"
        )
    raise UserError(
        f"{path}: row {row} (line {line}) has {len(fields)} field(s) but the header has {n_header}; "
        "every row needs one field per header column"
    )


def _first_short_record(path: Path, n_fields: int) -> tuple[int, int, list[str]] | None:
    """(row, line, fields) of the first data row with fewer than n_fields fields, as pandas counts rows."""
    row = 0
    for line, fields in _records(path):
        if is_blank_record(fields):
            continue
        row += 1
        if len(fields) < n_fields:
            return row, line, fields
    return None


class FastParseRefused(Exception):
    """pyarrow's reader met something only the checked pandas path can judge and name (an empty cell, a
    word, a row with another number of fields, a blank line of spaces, a value out of range): read the
    file again with read_columns, which gives the message, or the right values where pandas reads the file
    differently."""


STREAM_BLOCK_BYTES = 1 << 20  # pyarrow parses blocks of this size in parallel, a few ahead (larger: no faster)


def _stream_batches(path: str | Path, wanted: list[str], text: bool, block_bytes: int = STREAM_BLOCK_BYTES):
    """pyarrow's multi-threaded streaming reader over the wanted columns (only those converted), batch by
    batch in file order: as float64 with only empty cells null, or with `text` as strings, a quoted field
    holding line breaks, with a cell spelled exactly as one of stages/columns.py's MISSING_CELLS null.
    Raises FastParseRefused at anything the reader refuses (a cell that is no number, a row with another
    number of fields, a line of whitespace)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from stages.columns import MISSING_CELLS

    try:
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=block_bytes, use_threads=True),
            parse_options=pa_csv.ParseOptions(newlines_in_values=text),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(wanted, pa.string() if text else pa.float64()),
                include_columns=wanted,
                null_values=sorted(MISSING_CELLS) if text else [""],
                strings_can_be_null=text,
                quoted_strings_can_be_null=True,
            ),
        )
        with reader:
            for batch in reader:
                if batch.schema.names != wanted:
                    raise FastParseRefused(f"columns {batch.schema.names}")
                yield batch
    except (pa.ArrowException, OSError) as err:
        raise FastParseRefused(str(err)) from None


def stream_columns(path: str | Path, wanted: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The wanted columns of a CSV as float64 column-major (rows, columns) blocks, in file order, each with
    its columns' minima and maxima (_stream_batches), so memory does not grow with the file. Raises
    FastParseRefused at the first block with a cell that is not a plain finite number within
    ±LARGEST_VALUE, and at anything the reader itself refuses. Call check_header first (it checks the file
    is UTF-8 text with those columns)."""
    for batch in _stream_batches(path, wanted, text=False):
        block = np.empty((batch.num_rows, len(wanted)), dtype=np.float64, order="F")
        for j, column in enumerate(batch.columns):
            if column.null_count:
                raise FastParseRefused("an empty cell")
            block[:, j] = column.to_numpy()
        low, high = block.min(axis=0, initial=np.inf), block.max(axis=0, initial=-np.inf)
        if not (-LARGEST_VALUE <= low).all() or not (high <= LARGEST_VALUE).all():  # NaN fails it too
            raise FastParseRefused("a value out of range")
        yield block, low, high


def stream_text_columns(path: str | Path, wanted: list[str], block_bytes: int = STREAM_BLOCK_BYTES) -> Iterator[list]:
    """The wanted columns of a CSV as pyarrow string arrays (missing cells null), block by block in file
    order (_stream_batches). Raises FastParseRefused at anything the reader refuses: read_cells names it,
    or reads what pandas reads."""
    for batch in _stream_batches(path, wanted, text=True, block_bytes=block_bytes):
        yield list(batch.columns)


def cell_as_written(path: str | Path, row: int, name: str, header: list[str]) -> tuple[str, str]:
    """(where, the cell's text, stripped) of data row `row` (1-based), column `name`: for a message."""
    return _cell_as_written(Path(path), row, header.index(name), "")


def _no_line_has_extra_fields(path: Path, n_fields: int) -> bool:
    """Whether no line of the file has more than n_fields comma-separated fields, judged from the bytes:
    False at once for a file with quote characters (a comma inside quotes separates nothing). CR and LF
    both end a line here, which can only split lines, never join them. About 1 GB/s."""
    carry = 0  # commas on the line that runs on from the previous chunk
    with path.open("rb") as handle:
        while chunk := handle.read(TEXT_SCAN_CHUNK):
            if b'"' in chunk:
                return False
            data = np.frombuffer(chunk, dtype=np.uint8)
            ends = np.flatnonzero((data == ord("\n")) | (data == ord("\r")))
            commas = np.flatnonzero(data == ord(","))
            if len(ends):
                before = np.searchsorted(commas, ends)  # commas ahead of each line end in this chunk
                per_line = np.diff(before, prepend=0)
                per_line[0] += carry
                if per_line.max() >= n_fields:
                    return False
                carry = len(commas) - int(before[-1])
            else:
                carry += len(commas)
            if carry >= n_fields:
                return False
    return True


@contextlib.contextmanager
def _progress_reader(path: Path) -> Iterator[IO[bytes]]:
    """The file opened for reading, counting bytes on a progress bar when stderr is a terminal."""
    with path.open("rb") as handle:
        if not sys.stderr.isatty():
            yield handle
            return
        from tqdm import tqdm

        size = path.stat().st_size
        with tqdm.wrapattr(handle, "read", total=size, desc=f"reading {path}", unit="B", unit_scale=True) as wrapped:
            yield wrapped


def _parser_problem(path: Path, message: str) -> str:
    """Rephrase pandas' tokenizer error (`Expected 2 fields in line 3, saw 3`, `EOF inside string`) for people."""
    if "EOF inside string" in message:
        line = _unclosed_quote_line(path)
        return (
            f'line {line}: a quote (") opens a field that the file never closes, so everything after it reads as '
            "one field; close the quote or remove it"
        )
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if found:
        expected, line, saw = found.groups()
        return (
            f"line {line} has {saw} fields but the header has {expected}; "
            "every row needs one field per header column (quote fields that contain commas)"
        )
    return f"cannot be read as CSV ({message.strip()}); every row needs one field per header column"
