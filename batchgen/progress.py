"""A tqdm progress bar and notices on stderr: one subscriber of the runner's events."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

from tqdm import tqdm

from batchgen.events import Event, JobChanged, Notice, RunFinished, RunStarted
from batchgen.status import JobStatus

T = TypeVar("T")


def counted(items: Iterable[T], desc: str) -> Iterator[T]:
    """`items`, with a counter on stderr while they are consumed (when stderr is a terminal)."""
    with tqdm(
        items, desc=desc, unit=" jobs", disable=None, file=sys.stderr, mininterval=0.5
    ) as bar:
        yield from bar


class ProgressBar:
    """Shows done/running/failed while a run works; prints notices above the bar."""

    def __init__(self, stream: IO[str] | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.bar: tqdm | None = None
        self.counts: dict[JobStatus, int] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._start(event)
        elif isinstance(event, JobChanged):
            self._change(event)
        elif isinstance(event, Notice):
            self._write(
                f"{event.level}: {event.message}" if event.level != "info" else event.message
            )
        elif isinstance(event, RunFinished) and self.bar is not None:
            self.bar.close()

    def _start(self, event: RunStarted) -> None:
        self.counts = dict(event.counts)
        finished = self.counts[JobStatus.DONE]
        self.bar = tqdm(
            total=event.total,
            initial=finished,
            unit="job",
            file=self.stream,
            disable=None if self.enabled is None else not self.enabled,
            dynamic_ncols=True,
            smoothing=0.05,
        )
        self._postfix()

    def _change(self, event: JobChanged) -> None:
        if event.old in self.counts:
            self.counts[event.old] = max(0, self.counts[event.old] - 1)
        self.counts[event.new] = self.counts.get(event.new, 0) + 1
        if self.bar is None:
            return
        if event.new == JobStatus.DONE or event.new == JobStatus.FAILED:
            self.bar.update(1)
        elif event.old in (JobStatus.DONE, JobStatus.FAILED):
            self.bar.update(-1)
        self._postfix()

    def _postfix(self) -> None:
        if self.bar is None:
            return
        c = self.counts
        running = sum(
            c.get(s, 0) for s in (JobStatus.SUBMITTING, JobStatus.SUBMITTED, JobStatus.RUNNING)
        )
        self.bar.set_postfix_str(
            f"done={c.get(JobStatus.DONE, 0)} running={running} "
            f"downloading={c.get(JobStatus.DOWNLOADING, 0)} failed={c.get(JobStatus.FAILED, 0)}",
            refresh=False,
        )

    def _write(self, line: str) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream)
