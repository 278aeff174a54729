"""The typed, flat columns of an index entry, shared by the tabular formats (hf, csv). Pure.

Column order is fixed: the core columns below, then `variant.<key>` for each variant key, then
the user's metadata columns under their own names, then `request` (the whole request as JSON).
A metadata key that would shadow another column is written as `metadata.<key>`.

This is the one schema of field types: the index (output.py) writes its numbers with the same
`cast`, and every export writes these kinds. Every column has a `Kind`. Core columns have a
fixed one: numbers are numbers (`duration`, `video_duration`, `final_unit_deduction` and
`duration_s` are seconds or units as floats, even where the provider sends strings), and `qa`
is the list of the video's finding codes (empty when clean, None when unchecked). The input
images (`image`, `image_tail`, `static_mask`: Kind.IMAGE; `dynamic_masks`: their files) are
filled by each format as it places the files (exporter.py); `image_ref` and `image_tail_ref`
are what the request held (`sha256:<hex>` of the bytes sent, or the URL the provider fetched).
A variant column of a request field has that field's kind (`variant.duration` is a float like
`duration`). Other variant and metadata columns take the kind of every value seen in them (see
ColumnScan): all booleans, all integers, numbers (floats), else strings, with lists, objects
and values of other kinds as canonical JSON. A column with no value at all is a string column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from batchgen.jobs import canonical_json


class Kind(StrEnum):
    """The type of a column's values (None is allowed in every column)."""

    STRING = "string"
    INT = "int64"
    FLOAT = "float64"
    BOOL = "bool"
    STRINGS = "list<string>"
    IMAGE = "image"  # a file: a path relative to the export (hf: the image itself)


_S, _I, _F, _B = Kind.STRING, Kind.INT, Kind.FLOAT, Kind.BOOL
ENTRY_COLUMNS = {"job_id": _S, "row_id": _S, "video": _S, "sha256": _S, "bytes": _I}
INPUT_COLUMNS = {
    "image": Kind.IMAGE,
    "image_tail": Kind.IMAGE,
    "static_mask": Kind.IMAGE,
    "dynamic_masks": Kind.STRINGS,
}
REF_COLUMNS = {"image_ref": "image", "image_tail_ref": "image_tail"}  # column: request field
VIDEO_DURATION = "video_duration"  # the index's `duration`: what the provider reports
REQUEST_COLUMNS = {
    "model_name": _S,
    "mode": _S,
    "duration": _F,
    "prompt": _S,
    "negative_prompt": _S,
    "cfg_scale": _F,
}
PROVIDER_COLUMNS = {
    "task_id": _S,
    "task_created_at": _I,
    "task_updated_at": _I,
    "final_unit_deduction": _F,
    "reused_from": _S,  # the state (in `batchgen runs`) that paid for the task, if not this one
}
PROBE_COLUMNS = {
    "container": _S,
    "codec": _S,
    "width": _I,
    "height": _I,
    "fps": _F,
    "frames": _I,
    "duration_s": _F,
    "has_audio": _B,
}
QA = "qa"
CORE_KINDS: dict[str, Kind] = {
    **ENTRY_COLUMNS,
    **INPUT_COLUMNS,
    VIDEO_DURATION: _F,
    **REQUEST_COLUMNS,
    **dict.fromkeys(REF_COLUMNS, _S),
    **PROVIDER_COLUMNS,
    **PROBE_COLUMNS,
    QA: Kind.STRINGS,
}
CORE_COLUMNS = tuple(CORE_KINDS)
REQUEST = "request"
VARIANT_PREFIX = "variant."
METADATA_PREFIX = "metadata."
RESERVED = frozenset({*CORE_COLUMNS, REQUEST, "file_name", "file_names"})


def metadata_column(key: str) -> str:
    """The column of a metadata key: the key itself unless it would shadow another column."""
    if key in RESERVED or key.startswith((VARIANT_PREFIX, METADATA_PREFIX)):
        return METADATA_PREFIX + key
    return key


def typed_variant(variant: Mapping[str, Any]) -> dict[str, Any]:
    """A variant's values, those of request fields as the kind of the field's column (the
    manifest's matrix gives `duration` as the API takes it, a string)."""
    return {
        key: cast(value, REQUEST_COLUMNS[key]) if key in REQUEST_COLUMNS else value
        for key, value in variant.items()
    }


def qa_codes(entry: Mapping[str, Any]) -> list[str] | None:
    """The finding codes of an index entry; None when its video was not checked."""
    findings = entry.get(QA)
    if not isinstance(findings, list):
        return None
    return [str(f.get("code")) for f in findings if isinstance(f, Mapping)]


@dataclass(frozen=True, slots=True)
class Columns:
    """The columns of one export, from every variant and metadata key seen in the index,
    with the kind of each (see ColumnScan)."""

    variant_keys: tuple[str, ...] = ()
    metadata_keys: tuple[str, ...] = ()
    variant_kinds: Mapping[str, Kind] = field(default_factory=dict)
    metadata_kinds: Mapping[str, Kind] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.kinds)

    @property
    def kinds(self) -> dict[str, Kind]:
        """Every column's kind, in column order."""
        return {
            **CORE_KINDS,
            **{VARIANT_PREFIX + k: self._variant_kind(k) for k in self.variant_keys},
            **{metadata_column(k): self.metadata_kinds.get(k, _S) for k in self.metadata_keys},
            REQUEST: _S,
        }

    def _variant_kind(self, key: str) -> Kind:
        return REQUEST_COLUMNS.get(key) or self.variant_kinds.get(key, _S)

    def row(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """The entry as one row holding every column, each value of its column's kind (None
        where it has no value; the input images are left for the format to fill)."""
        request = _mapping(entry.get("request"))
        variant = _mapping(entry.get("variant"))
        metadata = _mapping(entry.get("metadata"))
        probe = _mapping(entry.get("probe"))
        values: dict[str, Any] = {name: entry.get(name) for name in ENTRY_COLUMNS}
        values.update(dict.fromkeys(INPUT_COLUMNS))
        values[VIDEO_DURATION] = entry.get("duration")
        values.update((name, request.get(name)) for name in REQUEST_COLUMNS)
        values.update((name, request.get(field)) for name, field in REF_COLUMNS.items())
        values.update((name, entry.get(name)) for name in PROVIDER_COLUMNS)
        values.update((name, probe.get(name)) for name in PROBE_COLUMNS)
        values[QA] = qa_codes(entry)
        values.update((VARIANT_PREFIX + k, variant.get(k)) for k in self.variant_keys)
        values.update((metadata_column(k), metadata.get(k)) for k in self.metadata_keys)
        values[REQUEST] = request
        kinds = self.kinds
        return {name: cast(value, kinds[name]) for name, value in values.items()}


@dataclass
class ColumnScan:
    """Collects the variant and metadata keys of entries seen one at a time, and the kind
    their values share."""

    variant_kinds: dict[str, Kind | None] = field(default_factory=dict)
    metadata_kinds: dict[str, Kind | None] = field(default_factory=dict)

    def add(self, entry: Mapping[str, Any]) -> None:
        _widen(self.variant_kinds, _mapping(entry.get("variant")))
        _widen(self.metadata_kinds, _mapping(entry.get("metadata")))

    def columns(self) -> Columns:
        return Columns(
            tuple(sorted(self.variant_kinds)),
            tuple(sorted(self.metadata_kinds)),
            {k: kind or _S for k, kind in self.variant_kinds.items()},
            {k: kind or _S for k, kind in self.metadata_kinds.items()},
        )


def cast(value: Any, kind: Kind) -> Any:
    """`value` as a value of `kind`; None when it is None or not a number a number column
    can hold."""
    if value is None:
        return None
    if kind in (Kind.STRING, Kind.IMAGE):
        return value if isinstance(value, str) else canonical_json(value)
    if kind is Kind.STRINGS:
        return [str(item) for item in value] if isinstance(value, list) else [str(value)]
    if kind is Kind.BOOL:
        return bool(value)
    return _number(value, int if kind is Kind.INT else float)


def kind_of(value: Any) -> Kind | None:
    """The narrowest kind holding `value` (None for None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return _B
    if isinstance(value, int):
        return _I
    if isinstance(value, float):
        return _F
    return _S


def _widen(kinds: dict[str, Kind | None], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        seen, new = kinds.get(key), kind_of(value)
        if seen is None or new is None or seen == new:
            kinds[key] = seen or new
        else:
            kinds[key] = _F if {seen, new} == {_I, _F} else _S


def _number(value: Any, number: type[int] | type[float]) -> int | float | None:
    try:
        return number(value)
    except (TypeError, ValueError):
        return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
