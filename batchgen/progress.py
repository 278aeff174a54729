"""Progress from the run's events only: on stderr, a bar in a terminal, plain lines at a steady
pace everywhere else (a pipe, `tee`, nohup, cron, CI), so a log shows the run alive; with
`--progress json`, one JSON object a line on stdout, alone there (every human line of the
command goes to stderr), so that `batchgen run M --progress json | jq -c .done` works. Each
shows what is true now: tasks in flight, downloading, done, failed, unknown, waiting, the pace
of finished jobs and the time left at that pace."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import IO, TYPE_CHECKING, Literal, TypeVar

from batchgen.events import Event, Heartbeat, JobChanged, Listener, Notice, RunFinished, RunStarted
from batchgen.interrupts import reader_gone
from batchgen.status import IN_FLIGHT, JobStatus

if TYPE_CHECKING:
    from tqdm import tqdm  # loaded where a bar is drawn: `status` and --help draw none

T = TypeVar("T")
Mode = Literal["auto", "bar", "plain", "json", "off", "quiet"]
MODES: tuple[Mode, ...] = ("auto", "bar", "plain", "json", "off", "quiet")
LINE_INTERVAL = 10.0  # seconds between progress lines when stderr is not a terminal
FINISHED = (JobStatus.DONE, JobStatus.FAILED, JobStatus.UNKNOWN)
MIN_BAR = 10  # cells of the bar at the least; the words around it give way first
FALLBACK_COLUMNS = 80
GREEN, YELLOW, RED, RESET = "\033[32m", "\033[33m", "\033[31m", "\033[0m"


def counted(items: Iterable[T], desc: str) -> Iterator[T]:
    """`items`, with a counter on stderr while they are consumed (when stderr is a terminal)."""
    from tqdm import tqdm

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
        self.stopping: str | None = None

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
            self.stopping = event.stopping or self.stopping
        elif isinstance(event, RunFinished):
            self.stopping = event.stopped

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
        """Seconds left at the pace so far; None before any job finished, and once the run
        stopped submitting (what is left will not be sent)."""
        if self.stopping is not None:
            return None
        rate = self.rate()
        remaining = self.total - self.finished
        return remaining / rate if rate > 0 else None

    def fields(self) -> dict[str, int | float | str | None]:
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
            "stopping": self.stopping,
        }

    def line(self) -> str:
        c = self.counts
        text = (
            f"{c[JobStatus.DONE]}/{self.total} done, {self.in_flight} in flight, "
            f"{c[JobStatus.DOWNLOADING]} downloading, {c[JobStatus.FAILED]} failed, "
            f"{c[JobStatus.UNKNOWN]} unknown, {self.waiting} waiting; "
            f"{self.rate() * 60:.1f} jobs/min, {self.time_left()}"
        )
        if self.stopping is not None:
            return text
        if self.throttled_for > 0:
            text += f"; throttled, creates resume in {duration(self.throttled_for)}"
        elif self.paused_for > 0:
            text += f"; the provider is failing, creates resume in {duration(self.paused_for)}"
        return text

    def time_left(self) -> str:
        """ "ETA 3m20s", "ETA --" before any job finished, or "stopping (why)"."""
        if self.stopping is not None:
            return f"stopping ({self.stopping})"
        eta = self.eta()
        return f"ETA {'--' if eta is None else duration(eta)}"

    def waits(self) -> str:
        """Why creates wait now, in a few words ("" when they do not)."""
        if self.stopping is None and self.throttled_for > 0:
            return f"throttled {duration(self.throttled_for)}"
        if self.stopping is None and self.paused_for > 0:
            return f"paused {duration(self.paused_for)}"
        return ""


def bar_line(tally: Tally, width: int, colour: bool = False) -> str:
    """The bar's one line, at most `width` columns: done out of total, a bar of done (█) and
    failed or unknown (▒) apart, what is in flight, failed and unknown, the pace and the time
    left (or "stopping"). Words give way to keep the bar at least MIN_BAR cells."""
    t, c = tally, tally.counts
    left = f"{c[JobStatus.DONE]}/{t.total} done"
    needed = [f"{n} {name}" for name, n in _troubles(t) if n]
    # What gives way first is last: the pace, then why creates wait, then what is in flight.
    extra = [w for w in (f"{t.in_flight} in flight", t.waits(), f"{t.rate() * 60:.1f}/min") if w]
    last = t.time_left()
    while True:
        right = ", ".join([*extra[:1], *needed, *extra[1:]]) + f"; {last}"
        cells = width - len(left) - len(right) - 4
        if cells >= MIN_BAR or not extra:
            break
        extra.pop()
    cells = max(cells, MIN_BAR)
    right = right[: max(0, width - len(left) - cells - 4)]
    return f"{left} |{_bar(t, cells, colour)}| {right}"


def _troubles(t: Tally) -> list[tuple[str, int]]:
    c = t.counts
    return [
        ("downloading", c[JobStatus.DOWNLOADING]),
        ("failed", c[JobStatus.FAILED]),
        ("unknown", c[JobStatus.UNKNOWN]),
    ]


def _bar(t: Tally, cells: int, colour: bool) -> str:
    total = max(t.total, 1)
    done = round(t.counts[JobStatus.DONE] / total * cells)
    bad = round((t.counts[JobStatus.FAILED] + t.counts[JobStatus.UNKNOWN]) / total * cells)
    bad = min(bad, cells - done)
    drawn = "█" * done + "▒" * bad + " " * (cells - done - bad)
    if not colour:
        return drawn
    tint = RED if t.stopping else YELLOW if bad else GREEN
    return f"{tint}{drawn}{RESET}"


def duration(seconds: float) -> str:
    """45s, 3m20s, 1h02m."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class BarProgress:
    """One line redrawn in place (tqdm writes it): see `bar_line`; notices above it. Colour
    where `colour` (a terminal that takes it)."""

    def __init__(self, stream: IO[str], colour: bool = False) -> None:
        self.stream = stream
        self.colour = colour
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
            from tqdm import tqdm

            # bar_line fits the line to the terminal; tqdm is told it has room to spare, so
            # that it never cuts it again counting colour codes as columns.
            self.bar = tqdm(
                total=self.tally.total, file=self.stream, bar_format="{desc}", ncols=999
            )
        elif isinstance(event, Notice):
            line = notice_text(event, self.colour)
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
        width = shutil.get_terminal_size((FALLBACK_COLUMNS, 24)).columns - 1
        self.bar.set_description_str(bar_line(self.tally, width, self.colour), refresh=True)


def notice_text(event: Notice, colour: bool = False) -> str:
    """A notice as a line: its level first unless it is "info" (in colour where asked)."""
    if event.level == "info":
        return event.message
    if not colour:
        return f"{event.level}: {event.message}"
    tint = RED if event.level == "error" else YELLOW
    return f"{tint}{event.level}:{RESET} {event.message}"


class JobLines:
    """`-v`: a line for each job's change (row, old → new status, why), as text or JSON."""

    def __init__(self, stream: IO[str], as_json: bool = False) -> None:
        self.stream = stream
        self.as_json = as_json

    def __call__(self, event: Event) -> None:
        if not isinstance(event, JobChanged):
            return
        if self.as_json:
            record = {"event": "job", "row_id": event.row_id, "job_id": event.job_id}
            record |= {"from": event.old.value, "to": event.new.value, "detail": event.detail}
            say(json.dumps(record, ensure_ascii=False), self.stream)
            return
        detail = f": {event.detail}" if event.detail else ""
        say(f"{event.row_id}: {event.old.value} -> {event.new.value}{detail}", self.stream)


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
    """No progress, but every notice (a skipped row, a stop, an unknown outcome) still shown;
    `warnings_only` (-q) leaves out the informative ones."""

    def __init__(self, stream: IO[str], warnings_only: bool = False) -> None:
        self.stream = stream
        self.warnings_only = warnings_only

    def __call__(self, event: Event) -> None:
        if isinstance(event, Notice) and not (self.warnings_only and event.level == "info"):
            say(notice_text(event), self.stream)


def say(line: str, stream: IO[str]) -> None:
    """Write a line; a reader that went away (a closed pipe) interrupts the run, as Ctrl-C."""
    try:
        print(line, file=stream, flush=True)
    except (BrokenPipeError, ValueError):
        reader_gone()


def progress_for(mode: Mode, stream: IO[str] | None = None, verbose: bool = False) -> Listener:
    """The progress subscriber for `mode` ("auto": a bar on a terminal, lines elsewhere;
    "quiet": warnings only), on `stream` (default: stdout for JSON lines, else stderr); with
    `verbose`, each job's change too. Colour only on a terminal, and not under NO_COLOR."""
    stream = stream or (sys.stdout if mode == "json" else sys.stderr)
    shown: Listener
    if mode in ("off", "quiet"):
        shown = NoticesOnly(stream, warnings_only=mode == "quiet")
    elif mode == "bar" or (mode == "auto" and _is_terminal(stream)):
        shown = BarProgress(stream, colour=_is_terminal(stream) and "NO_COLOR" not in os.environ)
    else:
        shown = LineProgress(stream, as_json=mode == "json")
    if not verbose:
        return shown
    return Both(JobLines(stream, as_json=mode == "json"), shown)


class Both:
    """Two listeners as one, called in order."""

    def __init__(self, first: Listener, then: Listener) -> None:
        self.first, self.then = first, then

    def __call__(self, event: Event) -> None:
        self.first(event)
        self.then(event)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):
        return False
