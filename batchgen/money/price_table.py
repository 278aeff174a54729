"""The price table: what each (model, tier, duration) costs, where each figure comes from and
when it was taken; the package's table with any user file laid over it.

The file (`batchgen/data/prices.json`) reads::

    {"taken": "2026-11-25", "unit_usd": 0.14, "unit_usd_from": "<source>",
     "overrun_seconds": 0.1, "overrun_from": "<source>",
     "sources": {"<source>": {"what": "...", "url": "...", "taken": "2026-11-25"}},
     "models": {"kling-v3": {"units": {"from": "<source>", "pro": 0.8, "pro+sound": 1.2}},
                "kling-v1": {"units": {"from": "<source>", "std": {"5": 1, "10": 2}},
                             "usd": {"from": "<source>", "std": {"5": 0.13, "10": 0.26}}}}}

`units` are Kling's units; `usd` are dollars per request through CometAPI. A tier is a mode
(`std`, `pro`, `4k`, or `-` for models without modes), with `+sound` for `sound: on` and
`+voice` for a voice_list. Its figure is a number (a price per second of video) or a mapping
from duration to the price of one clip; `null` says "unknown" (never 0). A clip's own price wins
over the per-second one. Every figure names its source through its group's `from`.

A user file (`--prices`) may hold any subset of that shape: one figure, one model, the date, the
unit price... Its figures replace the package's one by one (a tier given as a number replaces
that tier's clip prices too); figures without a `from` are attributed to the file itself. A
malformed file is refused with every problem named by its key, e.g.
``prices.json: models.kling-v3.units.pro.5: expected a number or null``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from batchgen.errors import UsageError
from batchgen.manifest.capabilities import CAPABILITIES, NO_MODE

KINDS = ("units", "usd")
PER_SECOND = "per_second"
PACKAGE = "batchgen/data/prices.json"
TOP_KEYS = {
    "taken",
    "currency",
    "unit_usd",
    "unit_usd_from",
    "overrun_seconds",
    "overrun_from",
    "sources",
    "notes",
    "models",
}
SOURCE_KEYS = {"what", "url", "taken"}
MAX_PROBLEMS = 20

FigureKey = tuple[str, str, str, str]  # model, kind, tier, duration or PER_SECOND


@dataclass(frozen=True, slots=True)
class Source:
    """Where figures come from, and when they were taken."""

    what: str
    taken: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Figure:
    """One price figure (None: unknown) and the id of its source."""

    value: float | None
    source: str


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Every figure by (model, kind, tier, duration or PER_SECOND), and the table's scalars."""

    taken: str
    unit_usd: Figure
    overrun: Figure
    sources: Mapping[str, Source]
    figures: Mapping[FigureKey, Figure] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def figure(self, model: str, kind: str, tier: str, duration: str) -> tuple[Figure | None, bool]:
        """The figure for one clip, and whether it is a price per second; (None, False) if the
        table has none."""
        clip = self.figures.get((model, kind, tier, duration))
        if clip is not None:
            return clip, False
        rate = self.figures.get((model, kind, tier, PER_SECOND))
        return rate, rate is not None


def tiers_of(model: str) -> tuple[str, ...]:
    """The tiers a model can be billed at, from its capabilities."""
    capability = CAPABILITIES[model]
    modes = capability.modes or (NO_MODE,)
    sound = {mode for mode, _ in capability.sound}
    voice = {mode for mode, _ in capability.voice_list}
    extra = [f"{m}+sound" for m in modes if m in sound] + [
        f"{m}+voice" for m in modes if m in voice
    ]
    return (*modes, *extra)


@lru_cache(maxsize=1)
def package_table() -> PriceTable:
    """The table shipped with batchgen."""
    text = resources.files("batchgen").joinpath("data/prices.json").read_text("utf-8")
    return _table(_parse(text, PACKAGE), PACKAGE, None)


MAX_PRICE_FILE = 1 << 20


def load_prices(path: Path | None = None) -> PriceTable:
    """The package's table, with the user's file at `path` laid over it. Raises UsageError
    naming the file and every malformed key."""
    if path is None:
        return package_table()
    try:
        text = read_small_file(path, MAX_PRICE_FILE).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(f"cannot read price file {path}: {reason}") from None
    return _table(_parse(text, path.name), path.name, package_table(), str(path))


def read_small_file(path: Path, limit: int) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes: a FIFO, a device
    (/dev/zero) or a folder is refused without waiting on it (OSError saying why)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, a device, a folder?)")
        data = b""
        while len(data) <= limit and (block := os.read(fd, limit + 1 - len(data))):
            data += block
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit // 1024} KB: not a price table")
    return data


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise UsageError(f"{where}: not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise UsageError(f"{where}: expected an object of prices (see {PACKAGE})")
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a price")


def _table(
    document: dict[str, Any], where: str, base: PriceTable | None, own: str | None = None
) -> PriceTable:
    reader = _Reader(document, base, own)
    table = reader.table()
    if reader.problems:
        shown = [f"{where}: {problem}" for problem in reader.problems[:MAX_PROBLEMS]]
        more = len(reader.problems) - MAX_PROBLEMS
        raise UsageError("\n".join(shown + ([f"... and {more} more"] if more > 0 else [])))
    return table


class _Reader:
    """Checks a table document key by key, collecting problems, and builds the table."""

    def __init__(self, document: dict[str, Any], base: PriceTable | None, own: str | None) -> None:
        self.document = document
        self.base = base
        self.own = own or PACKAGE
        self.problems: list[str] = []
        self.sources = dict(base.sources) if base else {}
        if own is not None:
            self.sources[own] = Source(f"--prices {own}", _text_or_none(document.get("taken")))

    def table(self) -> PriceTable:
        self._unknown_keys(self.document, TOP_KEYS, "")
        self._read_sources(self.document.get("sources", {}))
        figures = dict(self.base.figures) if self.base else {}
        for model, groups in self._mapping(self.document.get("models", {}), "models").items():
            self._read_model(model, groups, figures)
        return PriceTable(
            taken=self._taken(),
            unit_usd=self._scalar("unit_usd", "unit_usd_from", positive=True),
            overrun=self._scalar("overrun_seconds", "overrun_from", positive=False),
            sources=self.sources,
            figures=figures,
            notes=self._notes(),
        )

    def _taken(self) -> str:
        value = self.document.get("taken")
        if value is None and self.base is not None:
            return self.base.taken
        if not isinstance(value, str) or not value:
            self.problems.append('taken: expected a date, e.g. "2026-11-25"')
            return "?"
        return value

    def _scalar(self, name: str, source_key: str, positive: bool) -> Figure:
        inherited: Figure | None = None
        if self.base is not None:
            inherited = self.base.unit_usd if name == "unit_usd" else self.base.overrun
        kept = inherited is not None and name not in self.document
        default = inherited.source if inherited is not None and kept else self.own
        source = self._source(self.document.get(source_key, default), source_key)
        if inherited is not None and kept:
            return replace(inherited, source=source)
        value = self._number(self.document.get(name), name, allow_null=False)
        if positive and value == 0:
            self.problems.append(f"{name}: expected a number above 0")
            return Figure(None, source)
        return Figure(value, source)

    def _source(self, value: Any, where: str) -> str:
        """`value` if it names a source of the table; else a problem."""
        if not isinstance(value, str) or value not in self.sources:
            known = ", ".join(sorted(self.sources)) or "none"
            self.problems.append(f"{where}: not a source of this table ({known})")
            return str(value)
        return value

    def _notes(self) -> tuple[str, ...]:
        notes = self.document.get("notes", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            self.problems.append("notes: expected a list of texts")
            return ()
        base = self.base.notes if self.base else ()
        return (*base, *notes)

    def _read_sources(self, sources: Any) -> None:
        for name, entry in self._mapping(sources, "sources").items():
            where = f"sources.{name}"
            if not isinstance(entry, dict) or not isinstance(entry.get("what"), str):
                self.problems.append(
                    f'{where}: expected {{"what": text, "taken": date, "url": text}}'
                )
                continue
            self._unknown_keys(entry, SOURCE_KEYS, where)
            self.sources[name] = Source(
                entry["what"], _text_or_none(entry.get("taken")), _text_or_none(entry.get("url"))
            )

    def _read_model(self, model: str, groups: Any, figures: dict[FigureKey, Figure]) -> None:
        where = f"models.{model}"
        if model not in CAPABILITIES:
            self.problems.append(f"{where}: not a model batchgen knows ({', '.join(CAPABILITIES)})")
            return
        groups = self._mapping(groups, where)
        self._unknown_keys(groups, set(KINDS), where)
        for kind in KINDS:
            if kind in groups:
                self._read_group(
                    model, kind, self._mapping(groups[kind], f"{where}.{kind}"), figures
                )

    def _read_group(
        self, model: str, kind: str, group: dict[str, Any], figures: dict[FigureKey, Figure]
    ) -> None:
        where = f"models.{model}.{kind}"
        source = self._source(group.get("from", self.own), f"{where}.from")
        for tier, value in group.items():
            if tier == "from":
                continue
            if tier not in tiers_of(model):
                self.problems.append(
                    f"{where}.{tier}: not a tier of {model} ({', '.join(tiers_of(model))})"
                )
                continue
            self._read_tier(model, kind, tier, value, source, figures)

    def _read_tier(
        self,
        model: str,
        kind: str,
        tier: str,
        value: Any,
        source: str,
        figures: dict[FigureKey, Figure],
    ) -> None:
        where = f"models.{model}.{kind}.{tier}"
        if value is None or _is_number(value):
            for key in [k for k in figures if k[:3] == (model, kind, tier)]:
                del figures[key]
            figures[(model, kind, tier, PER_SECOND)] = Figure(self._number(value, where), source)
            return
        if not isinstance(value, dict):
            self.problems.append(
                f"{where}: expected a number (per second), or {{duration: number}}"
            )
            return
        durations = CAPABILITIES[model].durations
        for duration, price in value.items():
            if duration not in durations:
                self.problems.append(
                    f"{where}.{duration}: {model} takes {', '.join(durations)} seconds"
                )
                continue
            figures[(model, kind, tier, duration)] = Figure(
                self._number(price, f"{where}.{duration}"), source
            )

    def _number(self, value: Any, where: str, allow_null: bool = True) -> float | None:
        if value is None and allow_null:
            return None
        if not _is_number(value):
            self.problems.append(f"{where}: expected a number" + (" or null" if allow_null else ""))
            return None
        if value < 0:
            self.problems.append(f"{where}: expected a number of 0 or more")
        return float(value)

    def _mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.problems.append(f"{where}: expected an object")
            return {}
        return value

    def _unknown_keys(self, value: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for key in value:
            if key not in allowed:
                place = f"{where}.{key}" if where else key
                self.problems.append(
                    f"{place}: unknown key (expected {', '.join(sorted(allowed))})"
                )


def _is_number(value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
