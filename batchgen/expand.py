"""Expansion: a raw row becomes its variants, with defaults, matrix and repeat applied. Pure.

The rules of the manifest language:

- A row's keys are job fields (`params.JOB_FIELDS`), control keys (id, repeat, matrix,
  images), or the user's own columns, carried as metadata. A key that looks like a misspelt
  field (`promt`, `Prompt`, `model`) is refused; name it `meta.<key>` to keep it as metadata.
- `defaults`: fields (and metadata) every row gets unless it sets them. In YAML a row's `null`
  clears a default; in CSV an empty cell means "not set", so the default applies.
- `matrix`: field -> list of values, or field -> {label: value}. A row becomes one variant per
  element of the cartesian product of its axes. The top-level matrix applies to every row; a
  row's own `matrix:` adds axes (replacing a top-level axis of the same field); a row that sets
  a field itself (even to null) is not expanded over that field's top-level axis. A field set
  both in a row and in that row's own matrix is an error.
- Variant names: `<id>__<field>-<label>_<field>-<label>`. A value's label is the value itself
  when every value of its axis is a short token (letters, digits, '.', '-'), otherwise its
  1-based position; a {label: value} axis uses its labels.
- `repeat: N` (top level or per row): N samples of each variant, sample 0..N-1; the row id
  gets `__s<i>` when N > 1. The sample index is part of the job id, so raising N keeps the
  samples already made.
- Row ids: `id`, else the row's 1-based position in its file, else (glob rows) the file stem.
  See `manifest.NAME_RULE`; `__` is reserved for variant names.
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from batchgen.errors import Problem
from batchgen.jobs import canonical_json
from batchgen.manifest import (
    MANIFEST_ROW,
    MAX_REPEAT,
    RESERVED,
    ManifestHeader,
    RawRow,
    name_problem,
)
from batchgen.params import JOB_FIELDS, check_params

META_PREFIX = "meta."
MAX_VARIANTS = 1000
MAX_ROW_ID = 200
LABEL = re.compile(r"[A-Za-z0-9.-]{1,24}")
KNOWN_KEYS = tuple(sorted(JOB_FIELDS | RESERVED))
ALIASES = {
    "model": "model_name",
    "cfg": "cfg_scale",
    "negative": "negative_prompt",
    "image_url": "image",
    "end_image": "image_tail",
    "tail_image": "image_tail",
    "last_frame": "image_tail",
    "first_frame": "image",
}

NOT_SENT = {  # provider fields a user may write that batchgen does not send
    "external_task_id": "batchgen sets external_task_id itself, from the job id",
    "sound": "not supported by batchgen (newer-model audio option)",
    "voice_list": "not supported by batchgen (newer-model audio option)",
    "element_list": "not supported by batchgen (newer-model option)",
    "multi_shot": "not supported by batchgen (newer-model option)",
    "aspect_ratio": "text2video only; image2video follows the image",
}

Messages = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Axis:
    """One matrix axis: a field and its (label, value) options."""

    field: str
    options: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Variant:
    """One matrix combination of one row: a request to check, then sent `repeat` times."""

    row_id: str
    source_row: str
    line: int
    base: Path
    fields: dict[str, Any]
    labels: dict[str, str]
    metadata: dict[str, Any]
    repeat: int = 1

    def sample_id(self, sample: int) -> str:
        return f"{self.row_id}__s{sample}" if self.repeat > 1 else self.row_id


@dataclass(frozen=True, slots=True)
class ExpandedRow:
    """A row's id, its problems (then no variants), or its variants."""

    source_row: str
    line: int
    problems: list[Problem] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)


@lru_cache(maxsize=4096)
def misspelt(key: str) -> str | None:
    """The field `key` was probably meant to be, or None for a genuine user column."""
    if key in ALIASES:
        return ALIASES[key]
    normal = key.strip().lower().replace(" ", "_").replace("-", "_")
    if normal in KNOWN_KEYS:
        return normal
    close = difflib.get_close_matches(normal, KNOWN_KEYS, n=1, cutoff=0.8)
    return close[0] if close else None


def key_problem(key: str) -> str | None:
    """Why `key` cannot be a user column, or None if it can."""
    if key in NOT_SENT:
        return f"{NOT_SENT[key]} (name it '{META_PREFIX}{key}' to keep it as metadata)"
    guess = misspelt(key)
    if guess is None:
        return None
    return f"unknown field; did you mean {guess!r}? (name it '{META_PREFIX}{key}' to keep it)"


def split_values(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Messages]:
    """(job fields, metadata, problems) of a row's or the defaults' values; control keys are
    left out."""
    fields: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    problems: Messages = []
    for key, value in values.items():
        if key in JOB_FIELDS:
            fields[key] = value
        elif key.startswith(META_PREFIX):
            metadata[key.removeprefix(META_PREFIX)] = plain(value)
        elif key not in RESERVED:
            problem = key_problem(key)
            if problem:
                problems.append((key, problem))
            metadata[key] = plain(value)
    return fields, metadata, problems


def plain(value: Any) -> Any:
    """`value` as JSON can hold it (dates become ISO text)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def build_axis(name: str, spec: Any) -> tuple[Axis | None, Messages]:
    """The axis of `matrix.<name>`, with every problem of its values."""
    where = f"matrix.{name}"
    if name not in JOB_FIELDS:
        return None, [(where, "not a job field (axes are fields such as mode, duration, prompt)")]
    if isinstance(spec, Mapping):
        options = [(str(label), value) for label, value in spec.items()]
        bad = [label for label, _ in options if not LABEL.fullmatch(label)]
        if bad:
            return None, [(where, f"label {bad[0]!r}: use 1-24 letters, digits, '.' or '-'")]
    elif isinstance(spec, list):
        options = _labelled(spec)
    else:
        return None, [(where, "a list of values, or a mapping of label: value")]
    problems = _option_problems(name, options)
    return (None if problems else Axis(name, tuple(options))), problems


def _labelled(values: list[Any]) -> list[tuple[str, Any]]:
    tokens = [str(v) for v in values]
    scalar = all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values)
    if scalar and all(LABEL.fullmatch(t) for t in tokens):
        return list(zip(tokens, values, strict=True))
    return [(str(i), value) for i, value in enumerate(values, start=1)]


def _option_problems(name: str, options: list[tuple[str, Any]]) -> Messages:
    where = f"matrix.{name}"
    if not options:
        return [(where, "at least one value")]
    seen: set[str] = set()
    problems: Messages = []
    for label, value in options:
        text = canonical_json(plain(value))
        if text in seen:
            problems.append((where, f"value {label!r} is listed twice"))
        seen.add(text)
        checked = check_params({name: value})
        if isinstance(checked, list):
            problems += [(where, f"value {label!r}: {message}") for _, message in checked]
    return problems


def build_axes(matrix: Any) -> tuple[list[Axis], Messages]:
    if matrix is None:
        return [], []
    if not isinstance(matrix, Mapping):
        return [], [("matrix", "a mapping of field: values")]
    axes: list[Axis] = []
    problems: Messages = []
    for name, spec in matrix.items():
        axis, found = build_axis(str(name), spec)
        problems += found
        if axis is not None:
            axes.append(axis)
    return axes, problems


def variant_name(row_id: str, labels: Mapping[str, str]) -> str:
    if not labels:
        return row_id
    return row_id + "__" + "_".join(f"{name}-{label}" for name, label in labels.items())


class Expander:
    """Applies a manifest's header (defaults, matrix, repeat) to its rows. `problems` are
    those of the header itself, found once (a row would repeat each of them)."""

    def __init__(
        self, header: ManifestHeader, lines: Mapping[str, int], columns: Iterable[str] = ()
    ) -> None:
        self.repeat = header.repeat
        self.problems: list[Problem] = []
        fields, self.default_metadata, found = split_values(header.defaults)
        misplaced = sorted(RESERVED & set(header.defaults))
        found += [(key, "goes at the top level or in a row") for key in misplaced]
        self._note(lines.get("defaults", 0), [(f"defaults.{k}", m) for k, m in found])
        checked = check_params(fields)
        if isinstance(checked, list):
            self._note(lines.get("defaults", 0), [(f"defaults.{k}", m) for k, m in checked])
        self.defaults = {k: v for k, v in fields.items() if v is not None}
        self.axes, found = build_axes(header.matrix)
        self._note(lines.get("matrix", 0), found)
        self._note(1, _column_problems(columns))

    def _note(self, line: int, found: Messages) -> None:
        self.problems += [Problem(MANIFEST_ROW, line, where, message) for where, message in found]

    def expand(self, row: RawRow) -> ExpandedRow:
        """The row's variants, or every problem that stops it from having any."""
        row_id, problems = _row_id(row)
        fields, metadata, found = split_values(row.values)
        repeat, repeat_problems = _repeat(row.values.get("repeat"), self.repeat)
        own_axes, axis_problems = build_axes(row.values.get("matrix"))
        clash = [(a.field, "set both here and in this row's matrix") for a in own_axes]
        clash = [(name, message) for name, message in clash if name in fields]
        problems += list(row.errors) + found + repeat_problems + axis_problems + clash
        axes = self._axes_for(fields, own_axes)
        count = math.prod(len(axis.options) for axis in axes)
        if count > MAX_VARIANTS:
            problems.append(("matrix", f"{count} variants; at most {MAX_VARIANTS} per row"))
        if problems:
            stopped = [Problem(row_id, row.line, where, message) for where, message in problems]
            return ExpandedRow(row_id, row.line, stopped)
        merged = {**self.defaults, **fields}
        meta = {**self.default_metadata, **metadata}
        variants = [
            self._variant(row, row_id, merged, meta, axes, combo, repeat)
            for combo in itertools.product(*(axis.options for axis in axes))
        ]
        return _checked_names(ExpandedRow(row_id, row.line, [], variants))

    def _axes_for(self, fields: Mapping[str, Any], own: list[Axis]) -> list[Axis]:
        own_fields = {axis.field for axis in own}
        inherited = [a for a in self.axes if a.field not in fields and a.field not in own_fields]
        return inherited + own

    def _variant(
        self,
        row: RawRow,
        row_id: str,
        merged: Mapping[str, Any],
        metadata: dict[str, Any],
        axes: list[Axis],
        combo: tuple[tuple[str, Any], ...],
        repeat: int,
    ) -> Variant:
        values = dict(merged)
        labels: dict[str, str] = {}
        for axis, (label, value) in zip(axes, combo, strict=True):
            values[axis.field] = value
            labels[axis.field] = label
        values = {k: v for k, v in values.items() if v is not None}
        name = variant_name(row_id, labels)
        return Variant(name, row_id, row.line, row.base, values, labels, metadata, repeat)


def _row_id(row: RawRow) -> tuple[str, Messages]:
    value = row.values.get("id")
    if value is None or value == "":
        value = row.default_id
    if isinstance(value, bool) or not isinstance(value, str | int):
        return str(value), [("id", "a text or a number")]
    text = str(value)
    problem = name_problem(text)
    return text, ([("id", problem)] if problem else [])


def _repeat(value: Any, default: int) -> tuple[int, Messages]:
    if value is None or value == "":
        return default, []
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPEAT:
        return default, [("repeat", f"a whole number from 1 to {MAX_REPEAT}")]
    return value, []


def _column_problems(columns: Iterable[str]) -> Messages:
    problems: Messages = []
    seen: set[str] = set()
    for name in columns:
        if name in seen:
            problems.append((name, "column appears twice in the CSV header"))
        seen.add(name)
        if name and name not in JOB_FIELDS and name not in RESERVED:
            problem = not name.startswith(META_PREFIX) and key_problem(name)
            if problem:
                problems.append((name, problem))
    return problems


def _checked_names(expanded: ExpandedRow) -> ExpandedRow:
    longest = max((len(v.sample_id(v.repeat - 1)) for v in expanded.variants), default=0)
    if longest <= MAX_ROW_ID:
        return expanded
    problem = Problem(
        expanded.source_row,
        expanded.line,
        "matrix",
        f"variant names reach {longest} characters (at most {MAX_ROW_ID}): use shorter labels",
    )
    return ExpandedRow(expanded.source_row, expanded.line, [problem])
