"""Reading a manifest: a YAML or CSV file becomes a header and a stream of raw rows.

The YAML reader (`yaml_reader`) and the CSV reader (`csv_reader`) stream the rows; this module
holds the header, the run name and the globs.

The run's name is `name:`, else the file's stem; either must be a usable folder name
(`NAME_RULE`), checked when the manifest is opened, before anything is written: a file called
`...csv` must not make a run folder outside `--output`.

Glob rows (`images: "frames/*.png"`, at the top level or in a row) become one row per matching
file, sorted by path, with the file's stem as row id (prefixed by the row's `id` if it has one).
A glob that matches nothing is a problem naming the pattern and the folder it was looked in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from batchgen.errors import ManifestUnreadable, Problem
from batchgen.manifest.csv_reader import read_csv_header, read_csv_rows
from batchgen.manifest.params import error_messages
from batchgen.manifest.rawrow import MANIFEST_ROW, RawRow
from batchgen.manifest.yaml_reader import read_yaml_header, read_yaml_rows

__all__ = [
    "EXTENSION_PREFIX",
    "MANIFEST_ROW",
    "MAX_REPEAT",
    "NAME_RULE",
    "RESERVED",
    "ManifestHeader",
    "ManifestSource",
    "Matrix",
    "RawRow",
    "glob_files",
    "name_problem",
    "open_manifest",
    "safe_stem",
]

RESERVED = frozenset({"id", "repeat", "matrix", "images"})
HEADER_KEYS = ("name", "defaults", "matrix", "repeat", "images", "rows")
EXTENSION_PREFIX = "x-"  # top-level keys ignored by batchgen: a place for YAML anchors
MAX_REPEAT = 10_000
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = "1-100 letters, digits, '.', '_' or '-', starting with a letter or digit, without '__'"

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
            line = self.lines.get("images", 0)
            seed = RawRow(0, line, {"images": pattern}, self.path.parent, MANIFEST_ROW)
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
    """Read a manifest's header. Raises ManifestUnreadable for a file that cannot be read or parsed
    (the message names the file and line), or whose run name is not a usable folder name; a
    header that breaks a rule becomes Problems."""
    if not path.is_file():
        reason = "not a regular file" if path.exists() else "manifest not found"
        raise ManifestUnreadable(f"{reason}: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json", ".csv"):
        raise ManifestUnreadable(f"{path}: a manifest is a .yaml, .yml or .csv file")
    if suffix == ".csv":
        source = ManifestSource(path, path.stem, ManifestHeader(), columns=read_csv_header(path))
    else:
        source = _yaml_source(path)
    _check_run_name(source)
    return source


def _check_run_name(source: ManifestSource) -> None:
    """The run folder is OUTPUT/<name>: a name taken from the file's stem is held to the rule
    of `name:` (a manifest called `...csv` has the stem `..`)."""
    problem = name_problem(source.name)
    if problem is None:
        return
    csv = source.path.suffix.lower() == ".csv"
    how = "rename the file" if csv else "set `name:` in the manifest, or rename the file"
    raise ManifestUnreadable(
        f"{source.path}: the run name comes from the file name, and {problem}; {how}"
    )


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
    header, found = _header(raw)
    problems += [_header_problem(lines, where, message) for where, message in found]
    source = ManifestSource(path, header.name or path.stem, header, lines, problems, (), row_list)
    if header.rows is not None:
        source.columns = read_csv_header(path.parent / header.rows, lines.get("rows", 0))
    return source


def _header(raw: dict[str, Any]) -> tuple[ManifestHeader, list[tuple[str, str]]]:
    """The header without its broken keys, and their problems (every other key is kept)."""
    try:
        return ManifestHeader.model_validate(raw), []
    except ValidationError as exc:
        found = error_messages(exc)
    broken = {where.split(".")[0] for where, _ in found}
    try:
        return ManifestHeader.model_validate(
            {k: v for k, v in raw.items() if k not in broken}
        ), found
    except ValidationError:
        return ManifestHeader(), found


def _header_problem(lines: dict[str, int], where: str, message: str) -> Problem:
    return Problem(MANIFEST_ROW, lines.get(where.split(".")[0], 0), where, message)


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
        problem = f"no file matches {pattern!r} (looked in {row.base.resolve()})"
        yield replace(row, errors=(*row.errors, ("images", problem)))
        return
    prefix = row.values.get("id")
    rest = {k: v for k, v in row.values.items() if k not in ("images", "id")}
    for match in files:
        stem = safe_stem(Path(match).stem)
        row_id = f"{prefix}-{stem}" if prefix not in (None, "") else stem
        values = {**rest, "image": Path(match).as_posix()}
        yield RawRow(row.number, row.line, values, row.base, row_id, row.errors)


def glob_files(base: Path, pattern: str) -> list[str]:
    """The files `pattern` matches under `base` (or from its root, if absolute), sorted, as
    `glob.glob(recursive=True)` writes them. Hidden files and folders match only a pattern that
    names one with a leading dot, as with `glob.glob`; unlike it, `**` does not follow links to
    folders, so a link loop cannot make the search endless."""
    anchor = Path(pattern).anchor
    root, relative = (Path(anchor), pattern[len(anchor) :]) if anchor else (base, pattern)
    matches = []
    for path in root.glob(relative):
        name = path.relative_to(root)
        if path.is_file() and not _hidden(name.parts, Path(relative).parts):
            matches.append((path if anchor else name).as_posix())
    return sorted(matches)


def _hidden(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    dotted = [part for part in parts if part.startswith(".") and part not in (".", "..")]
    wanted = any(part.startswith(".") and part not in (".", "..") for part in pattern)
    return bool(dotted) and not wanted


def _glob_problem(row: RawRow, pattern: Any) -> str | None:
    if not isinstance(pattern, str) or not pattern.strip():
        return "a glob pattern, such as frames/*.png"
    if "image" in row.values:
        return "set image (one file) or images (a glob), not both"
    return None
