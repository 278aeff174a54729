"""What a video file is, as a probe read it (`Probe`, `FrameStats`): values only, no decoder.
The run's own process holds and records them while only the worker processes decode
(probe.py), so that it never loads PyAV.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FrameStats:
    """What the sampled frames show: how many were sampled, how many are black, and the
    largest mean luma difference (0..255) between a sampled frame and the first one."""

    sampled: int = 0
    black: int = 0
    change: float | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """The facts of one video file; `error` says why it could not be read to the end."""

    container: str | None = None
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frames: int = 0  # video frames (packets) in the file
    decoded: int = 0  # of those, frames that decoded
    skipped: int = 0  # of those, B-frames not decoded: no frame is predicted from them
    duration_s: float | None = None
    has_audio: bool = False
    audio_codec: str | None = None
    stats: FrameStats = field(default_factory=FrameStats)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The probe as JSON-ready values, `stats` flattened into `sampled_frames`,
        `black_frames` and `change`."""
        values = asdict(self)
        stats = values.pop("stats")
        values.update(
            sampled_frames=stats["sampled"], black_frames=stats["black"], change=stats["change"]
        )
        return values
