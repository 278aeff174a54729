"""The flat columns of an index entry, shared by the tabular formats (hf, csv). Pure.

Column order is fixed: the core columns below, then `variant.<key>` for each variant key, then
the user's metadata columns under their own names, then `request` (the whole request as JSON).
A metadata key that would shadow another column is written as `metadata.<key>`. Values that
are lists or objects become canonical JSON strings so that every row has the same flat shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchgen.jobs import canonical_json

ENTRY_COLUMNS = (
    "job_id",
    "row_id",
    "video",
    "sha256",
    "bytes",
)
REQUEST_COLUMNS = (
    "model_name",
    "mode",
    "duration",
    "prompt",
    "negative_prompt",
    "cfg_scale",
    "image",
    "image_tail",
)
PROVIDER_COLUMNS = ("task_id", "task_created_at", "task_updated_at", "final_unit_deduction")
VIDEO_DURATION = "video_duration"  # the index's `duration`: what the provider reports
CORE_COLUMNS = (
    *ENTRY_COLUMNS,
    VIDEO_DURATION,
    *REQUEST_COLUMNS,
    *PROVIDER_COLUMNS,
)
REQUEST = "request"
VARIANT_PREFIX = "variant."
METADATA_PREFIX = "metadata."
RESERVED = frozenset({*CORE_COLUMNS, REQUEST, "file_name", "file_names"})


def metadata_column(key: str) -> str:
    """The column of a metadata key: the key itself unless it would shadow another column."""
    if key in RESERVED or key.startswith((VARIANT_PREFIX, METADATA_PREFIX)):
        return METADATA_PREFIX + key
    return key


@dataclass(frozen=True, slots=True)
class Columns:
    """The columns of one export, from every variant and metadata key seen in the index."""

    variant_keys: tuple[str, ...] = ()
    metadata_keys: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (
            *CORE_COLUMNS,
            *(VARIANT_PREFIX + key for key in self.variant_keys),
            *(metadata_column(key) for key in self.metadata_keys),
            REQUEST,
        )

    def row(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """The entry as one flat row holding every column (None where it has no value)."""
        request = _mapping(entry.get("request"))
        variant = _mapping(entry.get("variant"))
        metadata = _mapping(entry.get("metadata"))
        values: dict[str, Any] = {name: entry.get(name) for name in ENTRY_COLUMNS}
        values[VIDEO_DURATION] = entry.get("duration")
        values.update((name, request.get(name)) for name in REQUEST_COLUMNS)
        values.update((name, entry.get(name)) for name in PROVIDER_COLUMNS)
        values.update((VARIANT_PREFIX + k, variant.get(k)) for k in self.variant_keys)
        values.update((metadata_column(k), metadata.get(k)) for k in self.metadata_keys)
        values[REQUEST] = request
        return {name: _flat(value) for name, value in values.items()}


@dataclass
class ColumnScan:
    """Collects the variant and metadata keys of entries seen one at a time."""

    variant_keys: set[str] = field(default_factory=set)
    metadata_keys: set[str] = field(default_factory=set)

    def add(self, entry: Mapping[str, Any]) -> None:
        self.variant_keys.update(_mapping(entry.get("variant")))
        self.metadata_keys.update(_mapping(entry.get("metadata")))

    def columns(self) -> Columns:
        return Columns(tuple(sorted(self.variant_keys)), tuple(sorted(self.metadata_keys)))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _flat(value: Any) -> Any:
    return canonical_json(value) if isinstance(value, Mapping | list | tuple) else value
