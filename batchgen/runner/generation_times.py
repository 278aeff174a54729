"""How long a generation typically takes, by what the manifest asks (model, mode, duration):
where the poll schedule starts before the run has seen a task of that kind end.

No provider publishes a figure (kling-api.md §8, §15.12), so the table is small and mostly
inferred; every figure says where it comes from. It only places the first polls: the schedule
replaces it with the times the run sees (policy.PollSchedule), so a wrong figure costs a few
polls of the first tasks, never money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Kind = tuple[str, str, str]  # (model_name, mode, duration) as sent; "" where the job sets none
ANY_KIND: Kind = ("", "", "")
CLIP_SECONDS = 5  # the clip length the figures below are for


@dataclass(frozen=True, slots=True)
class Typical:
    """The range most generations of a kind end in, and where that range comes from."""

    low: float  #: seconds
    high: float  #: seconds
    source: str  #: kling-api.md sections and evidence, or "inferred" and from what

    def scaled(self, factor: float, note: str = "") -> Typical:
        return Typical(self.low * factor, self.high * factor, self.source + note)


# By mode, for a 5 s clip of any model; a model of its own below where one is known.
BY_MODE = {
    "std": Typical(30.0, 150.0, "§8 third-party notes: submitted 0–30 s, processing 30–120 s"),
    "pro": Typical(100.0, 250.0, "§17 E27: real 100–250 s per 5 s pro clip (E16: 237 s)"),
    "4k": Typical(100.0, 400.0, "inferred: pro's range, longer; no 4k figure found (§17 E22)"),
}
BY_MODEL = {
    # No mode on the master models (§3): priced and rendered as pro or above (§10, §3a).
    "kling-v2-master": Typical(100.0, 250.0, "inferred: as pro (§10 price, §3a); no figure"),
    "kling-v2-1-master": Typical(100.0, 250.0, "inferred: as pro (1080p, §3a); no figure"),
}
UNKNOWN = Typical(120.0, 300.0, "§8: another relay documents 2–5 minutes typical")


def kind_of(request: Mapping[str, Any]) -> Kind:
    """The kind of a job's request: what its generation time depends on, as far as known."""
    return (
        str(request.get("model_name") or ""),
        str(request.get("mode") or ""),
        str(request.get("duration") or ""),
    )


def typical(kind: Kind) -> Typical:
    """The table's range for `kind`: by model, else by mode (std by default, §3), scaled to its
    duration (inferred: in proportion to the clip's length; no source gives a figure)."""
    model, mode, duration = kind
    base = BY_MODEL.get(model) or BY_MODE.get(mode or "std", UNKNOWN)
    seconds = _seconds(duration)
    if seconds is None or seconds == CLIP_SECONDS:
        return base
    return base.scaled(seconds / CLIP_SECONDS, f"; × {seconds:g}/{CLIP_SECONDS} s, inferred")


def _seconds(duration: str) -> float | None:
    try:
        value = float(duration)
    except ValueError:
        return None
    return value if 1 <= value <= 60 else None
