"""What a run says when it ends: the counts, the videos fetched again, where the failures are,
what to do about unknown jobs, and how to go on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from batchgen.cli.next_steps import NextSteps
from batchgen.events import Event, JobChanged
from batchgen.output import FAILED_NAME, INDEX_NAME
from batchgen.runner import RunOutcome
from batchgen.status import JobStatus

LISTED_ROWS = 10


class FetchedAgain:
    """A listener collecting the rows whose done video was downloaded again in a run (it had
    gone missing or changed); `job_ids` are jobs put back to downloading before the run."""

    def __init__(self, job_ids: Iterable[str] = ()) -> None:
        self.refetching = set(job_ids)
        self.rows: list[str] = []

    def __call__(self, event: Event) -> None:
        if not isinstance(event, JobChanged):
            return
        if event.old == JobStatus.DONE and event.new == JobStatus.DOWNLOADING:
            self.refetching.add(event.job_id)
        elif event.new == JobStatus.DONE and event.job_id in self.refetching:
            self.rows.append(event.row_id)


def run_summary(
    outcome: RunOutcome,
    run_dir: Path,
    steps: NextSteps,
    unknown: list[str],
    fetched_again: list[str],
) -> str:
    """The lines a run ends with; `unknown` and `fetched_again` are row ids."""
    lines = [_headline(outcome, run_dir)]
    if fetched_again:
        lines.append(f"{len(fetched_again)} video(s) fetched again: {_rows(sorted(fetched_again))}")
    if outcome.counts[JobStatus.FAILED] or unknown or outcome.skipped_invalid:
        lines.append(f"failures and their reasons: {run_dir / FAILED_NAME} (or {steps.status()})")
    if unknown:
        lines.append(
            f"{len(unknown)} unknown job(s), whose create the provider may have accepted: "
            f"{_rows(unknown)}. Nothing sends them again. For each, {steps.unknown_advice()}"
        )
    lines.extend(_how_to_go_on(outcome))
    return "\n".join(lines)


def _headline(outcome: RunOutcome, run_dir: Path) -> str:
    c = outcome.counts
    total = sum(c.values())
    head = {None: "", "interrupted": "interrupted: "}.get(outcome.stopped, "stopped: ")
    skipped = outcome.skipped_invalid
    invalid = f" ({skipped} invalid row(s) left out by --skip-invalid)" if skipped else ""
    if outcome.interrupted:
        head = "interrupted: "
    return (
        f"{head}{c[JobStatus.DONE]} done, {c[JobStatus.FAILED]} failed, "
        f"{c[JobStatus.UNKNOWN]} unknown, {outcome.unfinished} unfinished of {total}{invalid} in "
        f"{outcome.wall_seconds:.1f} s ({outcome.api_calls} API calls, "
        f"{outcome.calls_per_job:.2f} per job worked on); "
        f"index: {run_dir / INDEX_NAME}"
    )


def _how_to_go_on(outcome: RunOutcome) -> Iterator[str]:
    if outcome.stop_reason and outcome.stopped != "interrupted":
        yield outcome.stop_reason
        if outcome.stopped == "account":
            yield "Fix that, then run the same command again to resume."
    elif outcome.stopped == "interrupted" or outcome.unfinished:
        yield "Run the same command again to resume."


def _rows(rows: list[str]) -> str:
    more = len(rows) - LISTED_ROWS
    return ", ".join(rows[:LISTED_ROWS]) + (f" and {more} more" if more > 0 else "")
