"""Reading a CSV file of rows (the manifest itself, or `rows: file.csv` in a YAML one).

The file is read one physical line at a time, and each line is checked before the `csv`
module sees it, so input nobody should send gets a clean refusal naming the file and line:
bytes that are not UTF-8, a NUL byte (a binary file, or UTF-16), a line longer than
`MAX_LINE_BYTES` (nothing longer is held in memory). A field longer than `FIELD_LIMIT` (quoted
over many lines), a quote left open, and JSON nested too deep in a cell are refused too.
Records then become rows: empty cells are unset, JSON cells of object fields are decoded,
blank lines are skipped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from batchgen.errors import ManifestUnreadable
from batchgen.manifest.params import OBJECT_FIELDS
from batchgen.manifest.rawrow import RawRow

FIELD_LIMIT = 16 * 1024 * 1024
MAX_LINE_BYTES = FIELD_LIMIT + 64 * 1024
BOM = b"\xef\xbb\xbf"


def _open(path: Path, where: int = 0) -> IO[bytes]:
    at = f" (named on line {where} of the manifest)" if where else ""
    if path.exists() and not path.is_file():
        raise ManifestUnreadable(f"cannot read {path}{at}: not a regular file")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ManifestUnreadable(f"cannot read {path}{at}: {exc.strerror}") from None


def _lines(stream: IO[bytes], path: Path) -> Iterator[str]:
    """The file's lines as text (line endings kept, as `csv` wants), each checked."""
    number = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise ManifestUnreadable(
                f"{path}, line {number}: longer than {MAX_LINE_BYTES // 1024 // 1024} MB"
            )
        try:
            text = (raw.removeprefix(BOM) if number == 1 else raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ManifestUnreadable(
                f"{path}, line {number}: not UTF-8 text (byte {exc.start + 1}: {exc.reason})"
            ) from None
        if "\x00" in text:
            column = text.index("\x00") + 1
            raise ManifestUnreadable(
                f"{path}, line {number}: a NUL byte at character {column} (binary, or UTF-16?)"
            )
        yield text


def _reader(stream: IO[bytes], path: Path) -> Any:
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))
    return csv.reader(_lines(stream, path), strict=True)


def read_csv_header(path: Path, where: int = 0) -> tuple[str, ...]:
    """The column names of a CSV file (its first record)."""
    with _open(path, where) as stream:
        reader = _reader(stream, path)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise ManifestUnreadable(
                f"{path}, line {reader.line_num}: not readable as CSV: {exc}"
            ) from None
    if not header:
        raise ManifestUnreadable(f"{path}: the CSV file has no header line")
    if len(header) == 1 and (separator := _other_separator(header[0])):
        raise ManifestUnreadable(
            f"{path}, line 1: one column named {header[0]!r}: the columns are separated by "
            f"{separator}; batchgen reads comma-separated files (save it as CSV with commas)"
        )
    return tuple(name.strip() for name in header)


def _other_separator(name: str) -> str | None:
    for separator, said in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        if separator in name:
            return said
    return None


def read_csv_rows(path: Path) -> Iterator[RawRow]:
    """The records of a CSV file as rows (see the module docstring)."""
    with _open(path) as stream:
        reader = _reader(stream, path)
        try:
            columns = [name.strip() for name in next(reader, [])]
            start, number = reader.line_num + 1, 0
            for cells in reader:
                line, start = start, reader.line_num + 1
                if any(cell.strip() for cell in cells):
                    number += 1
                    yield _row(columns, cells, number, line, path.parent)
        except csv.Error as exc:
            where = f"{path}, line {reader.line_num}"
            raise ManifestUnreadable(f"{where}: not readable as CSV: {exc}") from None


def _row(columns: list[str], cells: list[str], number: int, line: int, base: Path) -> RawRow:
    values: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    if len(cells) > len(columns):
        errors.append(("row", f"{len(cells)} cells but {len(columns)} columns"))
    for name, cell in zip(columns, cells, strict=False):
        if name and cell.strip():
            values[name], error = _cell(name, cell.strip())
            if error:
                errors.append((name, error))
    return RawRow(number, line, values, base, str(number), tuple(errors))


def _cell(name: str, text: str) -> tuple[Any, str | None]:
    if name not in OBJECT_FIELDS and name != "matrix":
        return text, None
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return text, f"a JSON value in this cell ({exc.msg})"
    except RecursionError:
        return text, "a JSON value in this cell (nested too deep)"
