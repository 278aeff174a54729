"""Expansion: a raw row becomes its variants, with defaults, matrix and repeat applied. Pure.

The rules of the manifest language:

- A row's keys are job fields (`params.JOB_FIELDS`), control keys (id, repeat, matrix,
  images), or the user's own columns, carried as metadata. A key that looks like a misspelt
  field (`promt`, `Prompt`, `model`: the rule is `fieldnames`) is refused; name it
  `meta.<key>` to keep it as metadata. Metadata must be valid Unicode text (it is written to
  the state and the index).
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

A row with problems (a misspelt key, a bad id, repeat or matrix...) still gets the variants that
can be built from the rest, so `validate` also reports what is wrong with its fields in the same
pass; its `suspects` are the fields those problems leave unset or unsure (see `validate`).
Such a row is never sent. The same holds for the header's problems, which are found once
(`Expander.problems`) and make every row's suspects.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.errors import Problem
from batchgen.jobs import canonical_json
from batchgen.manifest.fieldnames import META_PREFIX, key_problem, misspelt
from batchgen.manifest.params import JOB_FIELDS, NOT_UNICODE, check_params, encodable
from batchgen.manifest.source import (
    MANIFEST_ROW,
    MAX_REPEAT,
    RESERVED,
    ManifestHeader,
    RawRow,
    name_problem,
)

MAX_VARIANTS = 1000
MAX_ROW_ID = 200
LABEL = re.compile(r"[A-Za-z0-9.-]{1,24}")

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
    from_defaults: frozenset[str] = frozenset()  # fields whose value is the manifest's default

    def sample_id(self, sample: int) -> str:
        return f"{self.row_id}__s{sample}" if self.repeat > 1 else self.row_id


@dataclass(frozen=True, slots=True)
class ExpandedRow:
    """A row's id, its own problems, its variants, and the fields its problems leave unsure.
    A row with problems is never sent; its variants are only checked for more problems."""

    source_row: str
    line: int
    problems: list[Problem] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)
    suspects: frozenset[str] = frozenset()


def split_values(
    values: Mapping[str, Any], reported: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[str, Any], Messages]:
    """(job fields, metadata, problems) of a row's or the defaults' values; control keys are
    left out, and so are the problems of keys in `reported` (already reported once)."""
    fields: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    problems: Messages = []
    for key, value in values.items():
        if key in JOB_FIELDS:
            fields[key] = value
            continue
        if key in RESERVED:
            continue
        name = key.removeprefix(META_PREFIX)
        metadata[name] = plain(value)
        problem = None if key.startswith(META_PREFIX) or key in reported else key_problem(key)
        if not encodable(key) or not encodable(metadata[name]):
            problem = NOT_UNICODE
        if problem:
            problems.append((key, problem))
    return fields, metadata, problems


def suspects_of(problems: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The job fields a row's problems leave unset or unsure (see the module docstring)."""
    found = set()
    for where, _ in problems:
        name = where.removeprefix("defaults.").removeprefix("matrix.").split(".")[0]
        if name == "images":
            found.add("image")
        elif name in JOB_FIELDS:
            found.add(name)
        elif guess := misspelt(name):
            found.add(guess)
    return frozenset(found & JOB_FIELDS)


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
        guess = misspelt(name)
        hint = f"did you mean {guess!r}?" if guess else "axes are fields such as mode, duration"
        return None, [(where, f"not a job field ({hint})")]
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
    those of the header itself, found once (a row would repeat each of them); the fields they
    leave unsure are every row's `suspects`, and broken defaults are left out."""

    def __init__(
        self, header: ManifestHeader, lines: Mapping[str, int], columns: Iterable[str] = ()
    ) -> None:
        self.repeat = header.repeat
        self.problems: list[Problem] = []
        self.columns = _column_problems(columns)
        fields, self.default_metadata, found = split_values(header.defaults)
        misplaced = sorted(RESERVED & set(header.defaults))
        found += [(key, "goes at the top level or in a row") for key in misplaced]
        checked = check_params(fields)
        found += checked if isinstance(checked, list) else []
        broken = {where.split(".")[0] for where, _ in found}
        self.defaults = {k: v for k, v in fields.items() if v is not None and k not in broken}
        self._note(lines.get("defaults", 0), [(f"defaults.{k}", m) for k, m in found])
        self.axes, found = build_axes(header.matrix)
        self._note(lines.get("matrix", 0), found)
        self._note(1, self.columns)
        self.reported = frozenset(name for name, _ in self.columns)
        self.suspects = suspects_of((p.field, p.message) for p in self.problems)

    def _note(self, line: int, found: Messages) -> None:
        self.problems += [Problem(MANIFEST_ROW, line, where, message) for where, message in found]

    def expand(self, row: RawRow) -> ExpandedRow:
        """The row's variants and every problem of the row itself (see the module docstring)."""
        row_id, problems = _row_id(row)
        fields, metadata, found = split_values(row.values, self.reported)
        repeat, repeat_problems = _repeat(row.values.get("repeat"), self.repeat)
        own_axes, axis_problems = build_axes(row.values.get("matrix"))
        clash = [(a.field, "set both here and in this row's matrix") for a in own_axes]
        clash = [(name, message) for name, message in clash if name in fields]
        problems += list(row.errors) + found + repeat_problems + axis_problems + clash
        axes = self._axes_for(fields, own_axes)
        suspects = self.suspects | suspects_of(problems) if problems else self.suspects
        count = math.prod(len(axis.options) for axis in axes)
        if count > MAX_VARIANTS:
            problems.append(("matrix", f"{count} variants; at most {MAX_VARIANTS} per row"))
            suspects |= {axis.field for axis in axes}
            axes = []
        merged = {**self.defaults, **fields}
        meta = {**self.default_metadata, **metadata}
        combos = itertools.product(*(axis.options for axis in axes))
        inherited = frozenset(self.defaults) - frozenset(fields)
        variants = [
            self._variant(row, row_id, merged, meta, axes, combo, repeat, inherited)
            for combo in combos
        ]
        variants = [] if _unreadable(row) else variants
        stopped = [Problem(row_id, row.line, where, message) for where, message in problems]
        return _checked_names(ExpandedRow(row_id, row.line, stopped, variants, suspects))

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
        inherited: frozenset[str] = frozenset(),
    ) -> Variant:
        values = dict(merged)
        labels: dict[str, str] = {}
        for axis, (label, value) in zip(axes, combo, strict=True):
            values[axis.field] = value
            labels[axis.field] = label
        values = {k: v for k, v in values.items() if v is not None}
        name = variant_name(row_id, labels)
        inherited = inherited - frozenset(labels)
        return Variant(
            name, row_id, row.line, row.base, values, labels, metadata, repeat, inherited
        )


def _row_id(row: RawRow) -> tuple[str, Messages]:
    value = row.values.get("id")
    if value is None or value == "":
        value = row.default_id
    if value == MANIFEST_ROW:  # a top-level glob that matched nothing
        return value, []
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


def _unreadable(row: RawRow) -> bool:
    """A row that could not be read at all: checking its (absent) fields would only report
    consequences."""
    return not row.values and any(where == "row" for where, _ in row.errors)


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
    problems = [*expanded.problems, problem]
    return ExpandedRow(expanded.source_row, expanded.line, problems, [], expanded.suspects)
