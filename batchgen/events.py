"""What a run reports while it works. The runner emits these; progress bars and logs subscribe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from batchgen.status import JobStatus


@dataclass(frozen=True, slots=True)
class RunStarted:
    total: int
    counts: dict[JobStatus, int]


@dataclass(frozen=True, slots=True)
class JobChanged:
    job_id: str
    row_id: str
    old: JobStatus
    new: JobStatus
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should read: a retry storm, a stop, a lowered concurrency cap."""

    message: str
    level: str = "info"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Sent every second or so while a run works, so that a log shows it alive."""

    slots_cap: int  # tasks the run may hold now (the account's limit as learned)
    throttled_for: float = 0.0  # seconds until creates resume after a throttle, 0 if none
    paused_for: float = 0.0  # seconds until creates resume after failures in a row, 0 if none
    stopping: str | None = None  # the run stopped submitting: "interrupted", "budget", ...


@dataclass(frozen=True, slots=True)
class RunFinished:
    counts: dict[JobStatus, int]
    wall_seconds: float
    stopped: str | None = None


Event = RunStarted | JobChanged | Notice | Heartbeat | RunFinished
Listener = Callable[[Event], None]
