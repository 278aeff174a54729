"""Progress from the run's events only: on stderr, a bar in a terminal, plain lines at a steady
pace everywhere else (a pipe, `tee`, nohup, cron, CI), so a log shows the run alive; with
`--progress json`, one JSON object a line on stdout, alone there (every human line of the
command goes to stderr), so that `batchgen run M --progress json | jq -c .done` works. Each
shows what is true now: tasks in flight, downloading, done, failed, unknown, waiting, the pace
of finished jobs and the time left at that pace."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import IO, Literal, TypeVar

from tqdm import tqdm

from batchgen.events import Event, Heartbeat, JobChanged, Listener, Notice, RunFinished, RunStarted
from batchgen.interrupts import reader_gone
from batchgen.status import IN_FLIGHT, JobStatus

T = TypeVar("T")
Mode = Literal["auto", "bar", "plain", "json", "off"]
MODES: tuple[Mode, ...] = ("auto", "bar", "plain", "json", "off")
LINE_INTERVAL = 10.0  # seconds between progress lines when stderr is not a terminal
FINISHED = (JobStatus.DONE, JobStatus.FAILED, JobStatus.UNKNOWN)


def counted(items: Iterable[T], desc: str) -> Iterator[T]:
    """`items`, with a counter on stderr while they are consumed (when stderr is a terminal)."""
    with tqdm(
        items, desc=desc, unit=" jobs", disable=None, file=sys.stderr, mininterval=0.5
    ) as bar:
        yield from bar


class Tally:
    """Jobs by status, kept from RunStarted and JobChanged events, and the pace of finishing."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.counts: dict[JobStatus, int] = dict.fromkeys(JobStatus, 0)
        self.started = clock()
        self.finished_this_run = 0
        self.throttled_for = 0.0
        self.paused_for = 0.0

    def apply(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.counts.update(event.counts)
            self.started = self.clock()
        elif isinstance(event, JobChanged):
            self.counts[event.old] = max(0, self.counts[event.old] - 1)
            self.counts[event.new] += 1
            self.finished_this_run += (event.new in FINISHED) - (event.old in FINISHED)
        elif isinstance(event, Heartbeat):
            self.throttled_for = event.throttled_for
            self.paused_for = event.paused_for

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def in_flight(self) -> int:
        return sum(self.counts[s] for s in IN_FLIGHT)

    @property
    def finished(self) -> int:
        return sum(self.counts[s] for s in FINISHED)

    @property
    def waiting(self) -> int:
        return self.counts[JobStatus.PENDING]

    def rate(self) -> float:
        """Jobs finished per second in this run so far."""
        elapsed = self.clock() - self.started
        return self.finished_this_run / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        """Seconds left at the pace so far; None before any job finished."""
        rate = self.rate()
        remaining = self.total - self.finished
        return remaining / rate if rate > 0 else None

    def fields(self) -> dict[str, int | float | None]:
        eta = self.eta()
        return {
            "elapsed_s": round(self.clock() - self.started, 1),
            "total": self.total,
            "done": self.counts[JobStatus.DONE],
            "in_flight": self.in_flight,
            "downloading": self.counts[JobStatus.DOWNLOADING],
            "failed": self.counts[JobStatus.FAILED],
            "unknown": self.counts[JobStatus.UNKNOWN],
            "waiting": self.waiting,
            "jobs_per_min": round(self.rate() * 60, 2),
            "eta_s": None if eta is None else round(eta),
            "throttled_for_s": round(self.throttled_for, 1),
            "paused_for_s": round(self.paused_for, 1),
        }

    def line(self) -> str:
        c = self.counts
        eta = self.eta()
        text = (
            f"{c[JobStatus.DONE]}/{self.total} done, {self.in_flight} in flight, "
            f"{c[JobStatus.DOWNLOADING]} downloading, {c[JobStatus.FAILED]} failed, "
            f"{c[JobStatus.UNKNOWN]} unknown, {self.waiting} waiting; "
            f"{self.rate() * 60:.1f} jobs/min, ETA {'--' if eta is None else duration(eta)}"
        )
        if self.throttled_for > 0:
            text += f"; throttled, creates resume in {duration(self.throttled_for)}"
        elif self.paused_for > 0:
            text += f"; the provider is failing, creates resume in {duration(self.paused_for)}"
        return text


def duration(seconds: float) -> str:
    """45s, 3m20s, 1h02m."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class BarProgress:
    """A tqdm bar of finished jobs with what is in flight beside it; notices above it."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tally = Tally()
        self.bar: tqdm | None = None

    def __call__(self, event: Event) -> None:
        try:
            self._show(event)
        except (BrokenPipeError, ValueError):
            reader_gone()

    def _show(self, event: Event) -> None:
        self.tally.apply(event)
        if isinstance(event, RunStarted):
            self.bar = tqdm(
                total=self.tally.total,
                initial=self.tally.finished,
                unit="job",
                file=self.stream,
                dynamic_ncols=True,
                smoothing=0.05,
            )
        elif isinstance(event, Notice):
            line = event.message if event.level == "info" else f"{event.level}: {event.message}"
            if self.bar is not None:
                self.bar.write(line, file=self.stream)
            else:
                print(line, file=self.stream)
        elif isinstance(event, RunFinished) and self.bar is not None:
            self._refresh()
            self.bar.close()
            return
        self._refresh()

    def _refresh(self) -> None:
        if self.bar is None:
            return
        t = self.tally
        self.bar.n = t.finished
        throttled = " throttled" if t.throttled_for > 0 else " paused" if t.paused_for > 0 else ""
        self.bar.set_postfix_str(
            f"in flight={t.in_flight} downloading={t.counts[JobStatus.DOWNLOADING]} "
            f"failed={t.counts[JobStatus.FAILED]} unknown={t.counts[JobStatus.UNKNOWN]}{throttled}",
            refresh=True,
        )


class LineProgress:
    """A line at the start, every `interval` seconds, and at the end; notices as lines. Plain
    text with a timestamp, or one JSON object per line."""

    def __init__(
        self,
        stream: IO[str],
        *,
        as_json: bool = False,
        interval: float = LINE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.as_json = as_json
        self.interval = interval
        self.clock = clock
        self.tally = Tally(clock)
        self._last = -interval

    def __call__(self, event: Event) -> None:
        self.tally.apply(event)
        if isinstance(event, Notice):
            self._write("notice", event.message, level=event.level)
        elif isinstance(event, RunStarted | RunFinished):
            self._progress("start" if isinstance(event, RunStarted) else "end")
        elif self.clock() - self._last >= self.interval:
            self._progress("progress")

    def _progress(self, kind: str) -> None:
        self._last = self.clock()
        self._write(kind, self.tally.line(), **self.tally.fields())

    def _write(self, kind: str, text: str, **fields: object) -> None:
        now = datetime.now().astimezone()
        if self.as_json:
            record = {"time": now.isoformat(timespec="seconds"), "event": kind, **fields}
            if kind == "notice":
                record["message"] = text
            line = json.dumps(record, ensure_ascii=False)
        else:
            level = fields.get("level")
            shown = f"{level}: {text}" if kind == "notice" and level != "info" else text
            line = f"{now:%Y-%m-%d %H:%M:%S} {shown}"
        say(line, self.stream)


class NoticesOnly:
    """No progress, but every notice (a skipped row, a stop, an unknown outcome) still shown."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        if isinstance(event, Notice):
            line = event.message if event.level == "info" else f"{event.level}: {event.message}"
            say(line, self.stream)


def say(line: str, stream: IO[str]) -> None:
    """Write a line; a reader that went away (a closed pipe) interrupts the run, as Ctrl-C."""
    try:
        print(line, file=stream, flush=True)
    except (BrokenPipeError, ValueError):
        reader_gone()


def progress_for(mode: Mode, stream: IO[str] | None = None) -> Listener:
    """The progress subscriber for `mode` ("auto": a bar on a terminal, lines elsewhere), on
    `stream` (default: stdout for JSON lines, else stderr)."""
    stream = stream or (sys.stdout if mode == "json" else sys.stderr)
    if mode == "off":
        return NoticesOnly(stream)
    if mode == "auto":
        mode = "bar" if _is_terminal(stream) else "plain"
    if mode == "bar":
        return BarProgress(stream)
    return LineProgress(stream, as_json=mode == "json")


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):
        return False
