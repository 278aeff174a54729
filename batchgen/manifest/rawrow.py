"""A manifest row as read from its file, before any rule of the manifest language. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_ROW = "(manifest)"  # the row named in problems of the manifest as a whole


@dataclass(frozen=True, slots=True)
class RawRow:
    """One row as written: its values, where it is, and what could not be read."""

    number: int
    line: int
    values: dict[str, Any]
    base: Path
    default_id: str
    errors: tuple[tuple[str, str], ...] = ()
