"""What a task's video shows, decided when the task is created. Pure.

A `VideoSpec` is the cache key of a rendered video: the input image, the end frame, the
seconds asked, the camera move the prompt picked, whether sound was asked, and the defect
(if any) the simulator was told to inject. The prompt picks one of `MOTIONS` moves, so two
prompts on one image give different videos (unless they pick the same move, 1 chance in
MOTIONS), while 20,000 tasks over a few images still render only a few hundred videos.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

MOTIONS = 16  # 8 directions x zoom in / zoom out
DEFAULT_SECONDS = 5.0  # the API's default `duration`


class Defect(StrEnum):
    """A fault in the video itself, injected on demand (see SimulatorConfig's *_rate)."""

    BLACK = "black"  # every frame black
    FROZEN = "frozen"  # every frame the same
    SHORT = "short"  # far shorter than asked
    UNDECODABLE = "undecodable"  # the container is intact, most frames' data is garbage
    ASPECT = "aspect"  # a frame shape other than the input image's
    MUTE = "mute"  # no audio stream although sound was asked


@dataclass(frozen=True, slots=True)
class VideoSpec:
    """Everything a rendered video depends on (image keys index the simulator's ImageStore)."""

    image_key: str
    tail_key: str | None = None
    seconds: float = DEFAULT_SECONDS
    motion: int = 0
    sound: bool = False
    defect: Defect | None = None


def motion_of(prompt: str) -> int:
    """The camera move a prompt picks, 0 .. MOTIONS-1 (stable across processes)."""
    return hashlib.sha256(prompt.encode()).digest()[0] % MOTIONS


def seconds_of(duration: object) -> float:
    """The seconds a create body's `duration` asks for (the default when unreadable)."""
    try:
        seconds = float(str(duration))
    except ValueError:
        return DEFAULT_SECONDS
    return seconds if seconds > 0 else DEFAULT_SECONDS
