"""What a video file is, as a probe read it (`Probe`, `FrameStats`): values only, no decoder.
The run's own process holds and records them while only the worker processes decode
(probe.py), so that it never loads PyAV.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# Which frames a probe decoded: keyframes and P-frames (the B-frames, from which no frame is
# predicted, skipped: the default), the keyframes alone (`--qa keyframes`), or every frame
# (after a frame failed to decode, to count those that do not).
Decode = Literal["I/P", "keyframes", "all"]


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
    skipped: int = 0  # of those, frames not decoded (see `decode`)
    duration_s: float | None = None
    has_audio: bool = False
    audio_codec: str | None = None
    stats: FrameStats = field(default_factory=FrameStats)
    error: str | None = None
    decode: Decode = "I/P"  # which frames were decoded

    def as_json(self) -> dict[str, Any]:
        """The probe as JSON-ready values, `stats` flattened into `sampled_frames`,
        `black_frames` and `change`."""
        values = asdict(self)
        stats = values.pop("stats")
        values.update(
            sampled_frames=stats["sampled"], black_frames=stats["black"], change=stats["change"]
        )
        return values
