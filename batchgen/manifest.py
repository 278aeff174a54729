"""Reading a manifest: a YAML or CSV file becomes a header and a stream of raw rows.

A YAML manifest is read twice, both times as a stream of parser events (libyaml's
`CSafeLoader` when available): once at open for its header (every key but the rows, which are
skipped; a syntax error anywhere surfaces here), then row by row when the rows are iterated,
so memory does not grow with the number of rows. Each row keeps the line its mapping starts on.
A CSV file (the manifest itself, or `rows: file.csv` in the YAML) is read one record at a time.

Glob rows (`images: "frames/*.png"`, at the top level or in a row) become one row per matching
file, sorted by path, with the file's stem as row id (prefixed by the row's `id` if it has one).
"""

from __future__ import annotations

import csv
import glob
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from batchgen.errors import Problem, UsageError
from batchgen.params import OBJECT_FIELDS, STRING_FIELDS, error_messages

MANIFEST_ROW = "(manifest)"
RESERVED = frozenset({"id", "repeat", "matrix", "images"})
HEADER_KEYS = ("name", "defaults", "matrix", "repeat", "images", "rows")
EXTENSION_PREFIX = "x-"  # top-level keys ignored by batchgen: a place for YAML anchors
MAX_REPEAT = 10_000
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = "1-100 letters, digits, '.', '_' or '-', starting with a letter or digit, without '__'"
CSV_FIELD_LIMIT = 16 * 1024 * 1024
STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MatrixAxis = list[Any] | dict[str, Any]
Matrix = dict[str, MatrixAxis]


def name_problem(value: str) -> str | None:
    """Why `value` cannot be a row id or run name, or None if it can."""
    if SAFE_NAME.fullmatch(value) and "__" not in value:
        return None
    return f"{value!r} is not usable as a file name: use {NAME_RULE}"


def safe_stem(stem: str) -> str:
    """A file stem made usable as a row id."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", stem)
    cleaned = re.sub(r"_{2,}", "_", cleaned).lstrip("._-")[:100]
    return cleaned or "image"


class ManifestHeader(BaseModel):
    """Everything in a YAML manifest except its rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, description="Run name; default: the file's stem.")
    defaults: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields every row gets unless it sets them (null in a row clears one).",
    )
    matrix: dict[str, Any] = Field(
        default_factory=dict,
        description="Cartesian product applied to every row: field -> list of values, or "
        "label -> value. A row that sets the field itself keeps its own value.",
    )
    repeat: Annotated[int, Field(ge=1, le=MAX_REPEAT)] = Field(
        1, description="Samples per row (the sample index is part of the job id)."
    )
    images: str | list[str] | None = Field(
        None, description="Glob(s), relative to the manifest: one row per matching file."
    )
    rows: str | None = Field(None, description="A CSV file of rows, relative to the manifest.")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        problem = value and name_problem(value)
        if problem:
            raise ValueError(problem)
        return value


@dataclass(frozen=True, slots=True)
class RawRow:
    """One row as written: its values, where it is, and what could not be read."""

    number: int
    line: int
    values: dict[str, Any]
    base: Path
    default_id: str
    errors: tuple[tuple[str, str], ...] = ()


@dataclass
class ManifestSource:
    """An opened manifest: its header (with the line of each key) and a way to stream rows."""

    path: Path
    name: str
    header: ManifestHeader
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    columns: tuple[str, ...] = ()
    row_list: bool = False
    globs: dict[tuple[Path, str], None] = field(default_factory=dict)  # (base, pattern) met

    @property
    def files(self) -> list[Path]:
        """The files the rows are read from (the manifest, and its rows CSV if any)."""
        if self.header.rows is None:
            return [self.path]
        return [self.path, self.path.parent / self.header.rows]

    def rows(self) -> Iterator[RawRow]:
        """Every row in manifest order: top-level globs first, then the rows."""
        for pattern in _patterns(self.header.images):
            seed = RawRow(0, self.lines.get("images", 0), {"images": pattern}, self.path.parent, "")
            yield from self._expand(seed)
        for row in self._listed():
            yield from self._expand(row)

    def _expand(self, row: RawRow) -> Iterator[RawRow]:
        pattern = row.values.get("images")
        if isinstance(pattern, str):
            self.globs[(row.base, pattern)] = None
        return expand_glob(row)

    def _listed(self) -> Iterator[RawRow]:
        if self.path.suffix.lower() == ".csv":
            yield from read_csv_rows(self.path)
        elif self.header.rows is not None:
            yield from read_csv_rows(self.path.parent / self.header.rows)
        elif self.row_list:
            yield from read_yaml_rows(self.path)


def _patterns(images: str | list[str] | None) -> list[str]:
    if images is None:
        return []
    return [images] if isinstance(images, str) else list(images)


def open_manifest(path: Path) -> ManifestSource:
    """Read a manifest's header. Raises UsageError for a file that cannot be read or parsed
    (the message names the file and line); a header that breaks a rule becomes Problems."""
    if not path.is_file():
        raise UsageError(f"manifest not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        columns = read_csv_header(path)
        return ManifestSource(path, path.stem, ManifestHeader(), columns=columns)
    if suffix not in (".yaml", ".yml", ".json"):
        raise UsageError(f"{path}: a manifest is a .yaml, .yml or .csv file")
    return _yaml_source(path)


def _yaml_source(path: Path) -> ManifestSource:
    raw, lines, row_list = read_yaml_header(path)
    problems = [
        _header_problem(lines, key, f"unknown key; a manifest has {', '.join(HEADER_KEYS)}")
        for key in raw
        if key not in HEADER_KEYS and not key.startswith(EXTENSION_PREFIX)
    ]
    raw = {key: value for key, value in raw.items() if key in HEADER_KEYS}
    if "rows" in raw and not isinstance(raw["rows"], str):
        problems.append(_header_problem(lines, "rows", "a list of rows or the path of a CSV file"))
        raw.pop("rows")
    try:
        header = ManifestHeader.model_validate(raw)
    except ValidationError as exc:
        problems += [_header_problem(lines, f, m) for f, m in error_messages(exc)]
        header = ManifestHeader()
    source = ManifestSource(path, header.name or path.stem, header, lines, problems, (), row_list)
    if header.rows is not None:
        source.columns = read_csv_header(path.parent / header.rows, lines.get("rows", 0))
    return source


def _header_problem(lines: dict[str, int], where: str, message: str) -> Problem:
    return Problem(MANIFEST_ROW, lines.get(where.split(".")[0], 0), where, message)


# --- YAML -------------------------------------------------------------------------------------


class _Events:
    """A YAML file's parser events, composed into nodes one value at a time."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.loader = _Loader(stream)
        self.anchors: dict[str, Node] = {}

    def next_is(self, kind: type[Event]) -> bool:
        return bool(self.loader.check_event(kind))

    def take(self) -> Any:
        return self.loader.get_event()

    def compose(self) -> Node:
        """The next complete value as a node; anchors are remembered for later aliases."""
        event = self.take()
        if isinstance(event, AliasEvent):
            if event.anchor not in self.anchors:
                mark: Any = event.start_mark
                raise yaml.MarkedYAMLError(None, None, "unknown alias", mark)
            return self.anchors[event.anchor]
        node = self._node(event)
        if event.anchor:
            self.anchors[event.anchor] = node
        return node

    def _node(self, event: Any) -> Node:
        start: Any = event.start_mark
        if isinstance(event, ScalarEvent):
            tag = self._tag(ScalarNode, event, event.value)
            end: Any = event.end_mark
            return ScalarNode(tag, event.value, start, end, event.style)
        if isinstance(event, SequenceStartEvent):
            tag = self._tag(SequenceNode, event, None)
            items: list[Node] = []
            while not self.next_is(SequenceEndEvent):
                items.append(self.compose())
            return SequenceNode(tag, items, start, self.take().end_mark)
        if isinstance(event, MappingStartEvent):
            tag = self._tag(MappingNode, event, None)
            pairs: list[tuple[Node, Node]] = []
            while not self.next_is(MappingEndEvent):
                pairs.append((self.compose(), self.compose()))
            return MappingNode(tag, pairs, start, self.take().end_mark)
        raise yaml.MarkedYAMLError(None, None, "unexpected YAML structure", start)

    def _tag(self, kind: type[Node], event: Any, value: str | None) -> str:
        if event.tag not in (None, "!"):
            return str(event.tag)
        return str(self.loader.resolve(kind, value, event.implicit))

    def skip(self) -> None:
        """Consume the next value without building it."""
        depth = 0
        while True:
            event = self.take()
            if isinstance(event, SequenceStartEvent | MappingStartEvent):
                depth += 1
            elif isinstance(event, SequenceEndEvent | MappingEndEvent):
                depth -= 1
            if depth == 0:
                return

    def construct(self, node: Node) -> Any:
        return self.loader.construct_document(node)

    def open_document(self, path: Path) -> None:
        """Consume the stream's start up to the top-level mapping's first key."""
        self.take()
        if self.next_is(StreamEndEvent):
            raise UsageError(f"{path}: the file is empty")
        self.take()
        if not self.next_is(MappingStartEvent):
            raise UsageError(f"{path}: a manifest is a mapping with `rows:` (and `defaults:`...)")
        self.take()

    def close_document(self, path: Path) -> None:
        self.take()
        if not self.next_is(DocumentEndEvent):
            raise UsageError(f"{path}: unexpected content after the manifest")
        self.take()
        if not self.next_is(StreamEndEvent):
            raise UsageError(f"{path}: a manifest is one YAML document, not several")


def _force_strings(node: Node) -> Node:
    """Fields that are text stay text: `id: 010` is "010" and `prompt: no` is "no"."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            is_text = key.value in STRING_FIELDS or key.value == "id"
            if is_text and isinstance(value, ScalarNode) and value.tag != NULL_TAG:
                value.tag = STR_TAG
    return node


def _duplicate_keys(node: Node) -> list[str]:
    if not isinstance(node, MappingNode):
        return []
    seen: set[str] = set()
    twice = []
    for key, _ in node.value:
        if isinstance(key, ScalarNode) and key.value in seen:
            twice.append(str(key.value))
        seen.add(key.value)
    return twice


class _YamlErrors:
    """Turns YAML parser errors into a UsageError naming the file and line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            where = f"{self.path}, line {exc.problem_mark.line + 1}"
            raise UsageError(f"{where}: {exc.problem or exc.context}") from None
        if isinstance(exc, yaml.YAMLError | UnicodeDecodeError):
            raise UsageError(f"{self.path}: not readable as YAML: {exc}") from None
        if isinstance(exc, OSError):
            raise UsageError(f"cannot read {self.path}: {exc.strerror}") from None


def read_yaml_header(path: Path) -> tuple[dict[str, Any], dict[str, int], bool]:
    """(every top-level key but a list of rows, the line of each key, whether rows is a list).
    Parses the whole file, so syntax errors anywhere raise UsageError here."""
    header: dict[str, Any] = {}
    lines: dict[str, int] = {}
    row_list = False
    with _YamlErrors(path), open(path, "rb") as stream:
        events = _Events(stream)
        events.open_document(path)
        while not events.next_is(MappingEndEvent):
            key_node = events.compose()
            key = str(events.construct(key_node))
            if key in lines:
                raise UsageError(f"{path}, line {key_node.start_mark.line + 1}: {key!r} twice")
            lines[key] = key_node.start_mark.line + 1
            if key == "rows" and events.next_is(SequenceStartEvent):
                events.skip()
                row_list = True
                continue
            node = events.compose()
            if key == "name" and isinstance(node, ScalarNode) and node.tag != NULL_TAG:
                node.tag = STR_TAG
            header[key] = events.construct(_force_strings(node) if key == "defaults" else node)
        events.close_document(path)
    return header, lines, row_list


def read_yaml_rows(path: Path) -> Iterator[RawRow]:
    """The rows of a YAML manifest's `rows:` list, one at a time."""
    with _YamlErrors(path), open(path, "rb") as stream:
        events = _Events(stream)
        events.open_document(path)
        while not events.next_is(MappingEndEvent):
            key = str(events.construct(events.compose()))
            if key == "rows" and events.next_is(SequenceStartEvent):
                yield from _row_stream(events, path.parent)
            else:
                events.compose()


def _row_stream(events: _Events, base: Path) -> Iterator[RawRow]:
    events.take()
    number = 0
    while not events.next_is(SequenceEndEvent):
        number += 1
        node = events.compose()
        yield _yaml_row(events, node, number, base)
    events.take()


def _yaml_row(events: _Events, node: Node, number: int, base: Path) -> RawRow:
    line = node.start_mark.line + 1
    errors = tuple((key, "set twice in this row") for key in _duplicate_keys(node))
    if not isinstance(node, MappingNode):
        return RawRow(number, line, {}, base, str(number), (("row", "a row is a mapping"),))
    try:
        values = events.construct(_force_strings(node))
    except yaml.YAMLError as exc:
        return RawRow(number, line, {}, base, str(number), (("row", f"unreadable: {exc}"),))
    values = {str(key): value for key, value in values.items()}
    return RawRow(number, line, values, base, str(number), errors)


# --- CSV --------------------------------------------------------------------------------------


def _csv_open(path: Path, where: int = 0) -> IO[str]:
    try:
        return open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        at = f" (named on line {where} of the manifest)" if where else ""
        raise UsageError(f"cannot read {path}{at}: {exc.strerror}") from None


def read_csv_header(path: Path, where: int = 0) -> tuple[str, ...]:
    """The column names of a CSV file (its first record)."""
    with _csv_open(path, where) as stream:
        try:
            header = next(csv.reader(stream), None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}, line 1: not readable as CSV: {exc}") from None
    if not header:
        raise UsageError(f"{path}: the CSV file has no header line")
    return tuple(name.strip() for name in header)


def read_csv_rows(path: Path) -> Iterator[RawRow]:
    """The records of a CSV file as rows; empty cells are unset, JSON cells of object fields
    are decoded, blank lines are skipped."""
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    with _csv_open(path) as stream:
        reader = csv.reader(stream)
        try:
            columns = [name.strip() for name in next(reader, [])]
            start, number = reader.line_num + 1, 0
            for cells in reader:
                line, start = start, reader.line_num + 1
                if any(cell.strip() for cell in cells):
                    number += 1
                    yield _csv_row(columns, cells, number, line, path.parent)
        except (csv.Error, UnicodeDecodeError) as exc:
            where = f"{path}, line {reader.line_num}"
            raise UsageError(f"{where}: not readable as CSV: {exc}") from None


def _csv_row(columns: list[str], cells: list[str], number: int, line: int, base: Path) -> RawRow:
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


# --- globs ------------------------------------------------------------------------------------


def expand_glob(row: RawRow) -> Iterator[RawRow]:
    """The row itself, or one row per file its `images` glob matches."""
    pattern = row.values.get("images")
    if pattern is None:
        yield row
        return
    problem = _glob_problem(row, pattern)
    if problem:
        yield replace(row, errors=(*row.errors, ("images", problem)))
        return
    files = glob_files(row.base, pattern)
    if not files:
        yield replace(row, errors=(*row.errors, ("images", f"no file matches {pattern!r}")))
        return
    prefix = row.values.get("id")
    rest = {k: v for k, v in row.values.items() if k not in ("images", "id")}
    for match in files:
        stem = safe_stem(Path(match).stem)
        row_id = f"{prefix}-{stem}" if prefix not in (None, "") else stem
        values = {**rest, "image": Path(match).as_posix()}
        yield RawRow(row.number, row.line, values, row.base, row_id, row.errors)


def glob_files(base: Path, pattern: str) -> list[str]:
    """The files `pattern` matches under `base`, sorted."""
    matches = sorted(glob.glob(pattern, root_dir=base, recursive=True))
    return [m for m in matches if (base / m).is_file()]


def _glob_problem(row: RawRow, pattern: Any) -> str | None:
    if not isinstance(pattern, str) or not pattern.strip():
        return "a glob pattern, such as frames/*.png"
    if "image" in row.values:
        return "set image (one file) or images (a glob), not both"
    return None
