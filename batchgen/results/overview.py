"""What `batchgen status` shows of a run's state: jobs by status, why each failed or unknown job
is so (and what to do about an unknown one), QA findings, money spent and committed, and the
workers on the run (who holds how many jobs, their last heartbeat)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, Any

from batchgen.money.spent import Money, money_of
from batchgen.results.qa_summary import QaSummary, summarize
from batchgen.state.claims import live_workers
from batchgen.state.inputs import SkippedRow
from batchgen.state.lookups import Sighting
from batchgen.state.records import JobRecord
from batchgen.state.store import Store
from batchgen.status import JobStatus

if TYPE_CHECKING:
    from batchgen.settings import ProviderName

Advice = Callable[[str | None], str]  # row id (None: every one) → what to do about unknown jobs
KEPT_DAYS = 30  # Kling clears a task's results this long after it ends
WARN_DAYS = 7  # `status` warns when the first of them is this close
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Deadline:
    """Videos the provider made that the run has not downloaded, and until when the provider
    keeps the first of them (KEPT_DAYS after its task ended)."""

    videos: int
    first_ended: float | None  # Unix seconds
    now: float

    @property
    def expires(self) -> float | None:
        return None if self.first_ended is None else self.first_ended + KEPT_DAYS * DAY

    @property
    def days_left(self) -> float | None:
        return None if self.expires is None else (self.expires - self.now) / DAY

    @property
    def warning(self) -> bool:
        return self.days_left is not None and self.days_left <= WARN_DAYS

    def line(self, run_command: str) -> str | None:
        if not self.videos:
            return None
        when = ""
        if self.expires is not None and self.days_left is not None:
            day = datetime.fromtimestamp(self.expires, UTC).strftime("%Y-%m-%d")
            left = f"{self.days_left:.0f} day(s) left" if self.days_left > 0 else "past"
            when = (
                f"; the provider keeps results {KEPT_DAYS} days: the first expires {day} ({left})"
            )
        text = f"not downloaded yet: {self.videos} video(s) made and paid for{when}; {run_command}"
        return f"warning: {text}" if self.warning else text

    def as_json(self) -> dict[str, Any]:
        expires = self.expires
        return {
            "videos": self.videos,
            "first_expires": None
            if expires is None
            else datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds"),
            "days_left": None if self.days_left is None else round(self.days_left, 1),
            "warning": self.warning,
        }


@dataclass(frozen=True, slots=True)
class Overview:
    """A state's counts and money, with the first `listed` failed, unknown and flagged jobs."""

    run: str | None
    counts: dict[JobStatus, int]
    failed: list[JobRecord]
    unknown: list[JobRecord]
    qa: QaSummary
    money: Money
    lookups: dict[str, list[Sighting]] = field(default_factory=dict)  # unknown job → evidence
    skipped: list[SkippedRow] = field(default_factory=list)  # the first rows left out
    skipped_total: int = 0  # rows `--skip-invalid` left out, in all
    deadline: Deadline = Deadline(0, None, 0.0)
    run_command: str = "`batchgen run` downloads them"
    # The workers on the run now (a run kept in PostgreSQL): host, pid, last heartbeat, jobs
    # held, and seconds since that heartbeat.
    workers: list[tuple[str, int, float, int]] = field(default_factory=list)
    now: float = 0.0

    def lines(self, advice: Advice) -> Iterator[str]:
        """The text `status` prints."""
        for state, n in self.counts.items():
            yield f"{state.value:<12}{n:>8}"
        yield f"{'total':<12}{sum(self.counts.values()):>8}"
        if self.skipped_total:
            yield (
                f"{'invalid':<12}{self.skipped_total:>8}  row(s) left out by --skip-invalid "
                "(no jobs: not in the total)"
            )
        for row, line, name, message in self.skipped:
            yield f"invalid {row} (line {line}), field {name!r}: {message}"
        if self.skipped_total > len({row for row, *_ in self.skipped}):
            yield "... and more: failed.jsonl lists every invalid row"
        for job in self.failed:
            yield f"failed {job.row_id} ({job.job_id}): [{job.error_kind}] {job.last_error}"
        yield from self._more(JobStatus.FAILED, len(self.failed), "")
        for job in self.unknown:
            yield f"unknown {job.row_id} ({job.job_id}): {job.last_error}"
            yield from (f"  {line}" for line in evidence_lines(self.lookups.get(job.job_id, [])))
        yield from self._more(JobStatus.UNKNOWN, len(self.unknown), " unknown")
        if self.counts[JobStatus.UNKNOWN]:
            yield f"to resolve an unknown job: {advice(None)}"
        deadline = self.deadline.line(self.run_command)
        if deadline:
            yield deadline
        yield from self.qa.lines()
        yield self.money.line()
        for host, pid, beat, held in self.workers:
            yield (
                f"worker {host} pid {pid}: {held} job(s) held, last heartbeat "
                f"{max(0.0, self.now - beat):.0f} s ago"
            )

    def as_json(self, advice: Advice) -> dict[str, Any]:
        """What `status --json` prints: the same, each unknown job with its own advice."""
        return {
            "run": self.run,
            "counts": {state.value: n for state, n in self.counts.items()},
            "total": sum(self.counts.values()),
            "failed": [_failure(job) for job in self.failed],
            "unknown": [
                {
                    **_failure(job),
                    "lookups": [s.as_json() for s in self.lookups.get(job.job_id, [])],
                    "what_to_do": advice(job.row_id),
                }
                for job in self.unknown
            ],
            "qa": {
                **self.qa.as_json(),
                "flagged_rows": [row for row, _, _ in self.qa.first_flagged],
            },
            "money": self.money.as_json(),
            "not_downloaded": self.deadline.as_json(),
            "workers": [
                {"host": host, "pid": pid, "jobs_held": held, "heartbeat_at": beat}
                for host, pid, beat, held in self.workers
            ],
            "skipped_invalid": {
                "total": self.skipped_total,
                "rows": [
                    {"row_id": row, "line": line, "field": name, "error": message}
                    for row, line, name, message in self.skipped
                ],
            },
        }

    def _more(self, status: JobStatus, listed: int, label: str) -> Iterator[str]:
        if self.counts[status] > listed:
            yield f"... and {self.counts[status] - listed} more{label}"


def overview_of(
    store: Store, listed: int, now: float | None = None, run_command: str | None = None
) -> Overview:
    """The overview of the state in `store`, listing at most `listed` jobs of each kind; `now`
    (Unix seconds) dates the download deadline, `run_command` is what downloads the rest."""
    videos, first_ended = store.awaiting_download()
    ended = None if first_ended is None else first_ended / 1000
    now = time.time() if now is None else now
    deadline = Deadline(videos, ended, now)
    workers = [(h, p, b, n) for _, h, p, b, n in live_workers(store.db, now)]
    unknown = list(islice(store.unknown_in_job_order(), listed))
    counts = store.counts()
    return Overview(
        deadline=deadline,
        run_command=f"{run_command or '`batchgen run`'} downloads them",
        run=store.get_meta("run_name"),
        counts=counts,
        failed=list(islice(store.failed_in_job_order(), listed)),
        unknown=unknown,
        qa=summarize(store, listed, counts[JobStatus.DONE]),
        money=state_money(store),
        lookups={job.job_id: store.lookups.of(job.job_id) for job in unknown},
        skipped=list(islice(store.inputs.skipped(), listed)),
        skipped_total=store.inputs.skipped_rows(),
        workers=workers,
        now=now,
    )


def evidence_lines(sightings: list[Sighting]) -> Iterator[str]:
    """What the look-ups of an unknown job answered, newest last, one line each."""
    if not sightings:
        yield "not looked up yet: the next run (or `batchgen reconcile`) asks the provider"
    for sighting in sightings:
        when = datetime.fromtimestamp(sighting.at).strftime("%Y-%m-%d %H:%M:%S")
        yield f"looked up {when}, {sighting.line()}"


def _failure(job: JobRecord) -> dict[str, Any]:
    return {
        "row_id": job.row_id,
        "job_id": job.job_id,
        "error_kind": job.error_kind,
        "error": job.last_error,
    }


def provider_of(store: Store) -> ProviderName:
    """The provider the state's jobs were run on (cometapi for a state that does not say)."""
    return "kling" if store.get_meta("provider") == "kling" else "cometapi"


def state_money(store: Store) -> Money:
    """The state's money at the package's price table and the state's provider."""
    return money_of(store.spending.priced_groups(), provider_of(store))
