"""`batchgen verify`: does the run folder hold exactly the videos its index and state promise?

The index (index.jsonl) and the state's done jobs are both in job-id order, so they are read
side by side, one job at a time. Each job's file is checked against the state's record where
there is a state (the state is what the index is written from), else against the index: size
first, then sha256. What is found:

    missing      a done job's video is not there
    corrupted    its size or sha256 is not the recorded one
    mismatched   the index and the state disagree on a job (path, size, sha256, or presence)
                 (the paid videos of rows edited since, kept under their job id, are checked
                 against the state alone)
    extra        a file in videos/ that no job names: a `.part` left by a download, a
                 `.rejected` download that was no video, a stray video, a sidecar .json of no
                 known video

While a live process holds the state (a run under way), index.jsonl is not compared: the run
rewrites it when it ends, so it is behind the state by design. The files a running job may be
writing (its video, `.part`, sidecar) are not `extra` then either.

Memory grows only with the set of known file names (for `extra`), never with whole entries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from batchgen.download import PART_SUFFIX, REJECTED_SUFFIX, file_sha256
from batchgen.errors import IndexInvalid, NothingToVerify, UsageError
from batchgen.export.entries import IndexLine, index_path, is_inside, read_lines
from batchgen.output import INDEX_NAME, VIDEOS_DIR
from batchgen.progress import counted
from batchgen.state import runlock
from batchgen.state.connect import STATE_NAME
from batchgen.state.records import JobRecord
from batchgen.state.store import Store
from batchgen.status import JobStatus

KINDS = ("missing", "corrupted", "mismatched", "extra")
RECORD_FIELDS = ("path", "size", "sha256")


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with one file; `job_id` and `row_id` are None for files no job names."""

    path: str  # relative to the run folder
    reason: str
    job_id: str | None = None
    row_id: str | None = None

    def describe(self) -> str:
        owner = f" (row {self.row_id}, job {self.job_id})" if self.job_id else ""
        return f"{self.path}{owner}: {self.reason}"


@dataclass
class VerifyReport:
    """Everything `verify_run` found; `clean` when every done job's video is intact."""

    run_dir: Path
    checked: tuple[str, ...] = ()  # which of index.jsonl and state.sqlite were read
    note: str | None = None  # why a source was not read (a run under way)
    ok: int = 0
    missing: list[Issue] = field(default_factory=list)
    corrupted: list[Issue] = field(default_factory=list)
    mismatched: list[Issue] = field(default_factory=list)
    extra: list[Issue] = field(default_factory=list)

    @property
    def problems(self) -> list[Issue]:
        return [*self.missing, *self.corrupted, *self.mismatched, *self.extra]

    @property
    def clean(self) -> bool:
        return not self.problems

    def render(self) -> str:
        """Human text: a summary line, then one line per bad file and why."""
        counts = ", ".join(f"{len(getattr(self, kind))} {kind}" for kind in KINDS)
        head = f"{self.run_dir} ({' + '.join(self.checked)}): {self.ok} ok, {counts}"
        lines = [head, *([f"  {self.note}"] if self.note else [])]
        for kind in KINDS:
            lines += [f"  {kind:<10} {issue.describe()}" for issue in getattr(self, kind)]
        if self.clean:
            lines.append("  every video is intact")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (for `--json`)."""
        value = asdict(self)
        value["run_dir"] = str(self.run_dir)
        value["clean"] = self.clean
        return value


def verify_run(
    run_dir: Path, state_path: Path | None = None, database: str | None = None
) -> VerifyReport:
    """Check every done job's video in `run_dir` against index.jsonl and the state (default
    RUN/state.sqlite when it exists; the run's, in `database` when given). Raises
    NothingToVerify, UsageError (no state file at an explicit `state_path`), IndexInvalid or
    StateError."""
    state = state_path if state_path is not None else run_dir / STATE_NAME
    if state_path is not None and not state.is_file():
        raise UsageError(f"no state file at {state}")
    present = {INDEX_NAME: index_path(run_dir).is_file(), STATE_NAME: bool(database)}
    present[STATE_NAME] |= state.is_file()
    checked = tuple(name for name, found in present.items() if found)
    if not checked:
        raise NothingToVerify(f"{run_dir} has neither {INDEX_NAME} nor {STATE_NAME}")
    live = runlock.holder(state, database) if STATE_NAME in checked else None
    report = VerifyReport(run_dir, checked)
    if live is not None:
        report.checked = (STATE_NAME,)
        report.note = (
            f"{INDEX_NAME} not compared: {live} is under way and rewrites it when it ends; "
            "the files of its unfinished jobs are not counted as extra"
        )
    known: set[str] = set()
    with ExitStack() as stack:
        opened = Store.open(state, database, create=False) if STATE_NAME in checked else None
        store = stack.enter_context(opened) if opened is not None else None
        lines = read_lines(run_dir) if INDEX_NAME in report.checked else iter(())
        jobs = store.done_in_job_order() if store is not None else iter(())
        compared = store if INDEX_NAME in report.checked else None
        for pair in counted(pair_by_job(lines, jobs), "verifying"):
            _check(report, run_dir, pair, compared)
            known.update(pair.names())
        if store is not None:
            for job in store.superseded_done():
                _check(report, run_dir, Pair(None, job), None)
                known.update(Pair(None, job).names())
        extra = list(find_extra(run_dir, known))
        if live is not None and store is not None:
            landing = landing_names(store.row_ids())
            extra = [issue for issue in extra if PurePosixPath(issue.path).name not in landing]
        elif store is not None:
            extra = _without_unrecorded(report, store, extra)
        if store is not None:
            extra = _without_earlier_generations(run_dir, store, extra)
    report.extra = extra
    return report


def _without_earlier_generations(run_dir: Path, store: Store, extra: list[Issue]) -> list[Issue]:
    """The extras less the earlier videos of jobs generated anew (`retry --regenerate`), kept
    as videos/<job id>.mp4 beside the sidecar that vouches for them (its sha256 checked)."""
    kept: set[str] = set()
    for issue in extra:
        name = PurePosixPath(issue.path).name
        stem = name.split(".", 1)[0]
        if not name.endswith(".mp4") or store.get(stem) is None:
            continue
        sidecar = (run_dir / issue.path).with_suffix(".json")
        try:
            vouched = json.loads(sidecar.read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if vouched == file_sha256(run_dir / issue.path):
            kept |= {issue.path, str(PurePosixPath(issue.path).with_suffix(".json"))}
    return [issue for issue in extra if issue.path not in kept]


def _without_unrecorded(report: VerifyReport, store: Store, extra: list[Issue]) -> list[Issue]:
    """The extras less the files of downloads that landed before a stopped run recorded them
    as done (the video is renamed into place first, then the job is `done`): the next run
    records them. Said in the report's note."""
    landing = landing_names(job.row_id for job in store.with_status(JobStatus.DOWNLOADING))
    kept = [issue for issue in extra if PurePosixPath(issue.path).name not in landing]
    if len(kept) < len(extra):
        report.note = (
            f"{len(extra) - len(kept)} file(s) of downloads that landed before the run stopped "
            "and are not recorded as done yet: the next run records them"
        )
    return kept


def landing_names(row_ids: Iterable[str]) -> set[str]:
    """The names in videos/ that the jobs of these rows may be writing while a run works."""
    names = set()
    for row in row_ids:
        video, watermark = f"{row}.mp4", f"{row}.watermark.mp4"
        names |= {video, watermark, f"{row}.json", f"{row}.json.tmp"}
        names |= {video + PART_SUFFIX, watermark + PART_SUFFIX}
    return names


def jobs_to_repair(report: VerifyReport) -> list[str]:
    """Job ids whose video is missing or corrupted (to download again), sorted, each once."""
    return sorted({i.job_id for i in (*report.missing, *report.corrupted) if i.job_id})


@dataclass(frozen=True, slots=True)
class Record:
    """Where a job's video should be and what it should hold, according to one source."""

    source: str
    path: str | None
    size: int | None
    sha256: str | None

    @classmethod
    def of_line(cls, line: IndexLine) -> Record:
        return cls(INDEX_NAME, line.video, line.entry.get("bytes"), line.entry.get("sha256"))

    @classmethod
    def of_job(cls, job: JobRecord) -> Record:
        return cls("the state", job.output_path, job.bytes, job.sha256)


@dataclass(frozen=True, slots=True)
class Pair:
    """One job as the index and the state's done jobs hold it (either may be absent)."""

    line: IndexLine | None
    job: JobRecord | None

    @property
    def job_id(self) -> str:
        return self.job.job_id if self.job else self.line.job_id if self.line else ""

    @property
    def row_id(self) -> str:
        return self.job.row_id if self.job else self.line.row_id if self.line else ""

    @property
    def records(self) -> list[Record]:
        """The state's record first (it is the authority), then the index's."""
        found = [Record.of_job(self.job)] if self.job else []
        return found + ([Record.of_line(self.line)] if self.line else [])

    def names(self) -> set[str]:
        """The files in the run this job accounts for: its video and sidecar, per source."""
        paths = {r.path for r in self.records if r.path}
        copies = {self.job.watermark_path} if self.job and self.job.watermark_path else set()
        return paths | copies | {str(PurePosixPath(p).with_suffix(".json")) for p in paths}


def pair_by_job(lines: Iterator[IndexLine], jobs: Iterator[JobRecord]) -> Iterator[Pair]:
    """Merge two job-id-ordered streams: each job once. Raises IndexInvalid if the index is
    not in job-id order."""
    lines = _in_order(lines)
    line, job = next(lines, None), next(jobs, None)
    while line is not None or job is not None:
        if job is None or (line is not None and line.job_id < job.job_id):
            yield Pair(line, None)
            line = next(lines, None)
        elif line is None or job.job_id < line.job_id:
            yield Pair(None, job)
            job = next(jobs, None)
        else:
            yield Pair(line, job)
            line, job = next(lines, None), next(jobs, None)


def disagreement(pair: Pair, store: Store | None) -> str | None:
    """How the index and the state disagree on this job, or None."""
    if store is None:
        return None
    if pair.line is None:
        return (
            f"done in the state but not in {INDEX_NAME} (a run rewrites the index when it ends; "
            "one that was killed did not: the next `batchgen run` does)"
        )
    if pair.job is None:
        return f"in {INDEX_NAME} but {_state_of(store, pair.line.job_id)}"
    state, index = pair.records
    fields = [name for name in RECORD_FIELDS if getattr(state, name) != getattr(index, name)]
    return f"{INDEX_NAME} and the state differ on {', '.join(fields)}" if fields else None


def file_problem(run_dir: Path, record: Record) -> tuple[str, str] | None:
    """("missing" | "corrupted", why) if the file is not what `record` says, else None."""
    if not record.path or not is_inside(record.path):
        return "missing", f"{record.source} records no usable path"
    path = run_dir / record.path
    if not path.is_file():
        return "missing", "no such file"
    size = path.stat().st_size
    if size != record.size:
        return "corrupted", f"{size} bytes, {record.source} says {record.size}"
    digest = file_sha256(path)
    if digest != record.sha256:
        return "corrupted", f"sha256 {digest}, {record.source} says {record.sha256}"
    return None


def find_extra(run_dir: Path, known: set[str]) -> Iterator[Issue]:
    """Files in videos/ that `known` (paths relative to the run) does not name."""
    folder = run_dir / VIDEOS_DIR
    if not folder.is_dir():
        return
    for name in sorted(os.listdir(folder)):
        relative = f"{VIDEOS_DIR}/{name}"
        if relative not in known:
            yield Issue(relative, _extra_reason(name))


def _check(report: VerifyReport, run_dir: Path, pair: Pair, store: Store | None) -> None:
    expected = pair.records[0]
    mismatch = disagreement(pair, store)
    if mismatch:
        report.mismatched.append(Issue(expected.path or "?", mismatch, pair.job_id, pair.row_id))
    problem = file_problem(run_dir, expected)
    if problem is not None:
        kind, reason = problem
        found = report.missing if kind == "missing" else report.corrupted
        found.append(Issue(expected.path or "?", reason, pair.job_id, pair.row_id))
    elif not mismatch:
        report.ok += 1


def _state_of(store: Store, job_id: str) -> str:
    record = store.get(job_id)
    if record is None:
        return "unknown to the state"
    if record.status == JobStatus.DONE:
        return "its row is no longer in the run's manifest"
    return f"the state has it as {record.status}"


def _in_order(lines: Iterator[IndexLine]) -> Iterator[IndexLine]:
    last = ""
    for line in lines:
        if line.job_id <= last:
            raise IndexInvalid(f"{INDEX_NAME} line {line.line}: job {line.job_id} is out of order")
        last = line.job_id
        yield line


def _extra_reason(name: str) -> str:
    if name.endswith(PART_SUFFIX):
        return "an unfinished download (.part)"
    if name.endswith(REJECTED_SUFFIX):
        return "a download that was no video, kept for inspection"
    if name.endswith(".json"):
        return "a sidecar of no known video"
    return f"named by no job in {INDEX_NAME} or the state"
