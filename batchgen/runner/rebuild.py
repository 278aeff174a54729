"""What the run folder says its state lost: before any create, a pending job that a sidecar
names with its paid task (or, while the state has never sent anything, a line of index.jsonl)
is taken back instead of being paid for again. A state deleted, its `-wal` lost in a crash, or
a new `--state` for a folder filled before all end here. Tasks no file names (in flight when
the state was lost) are found, for a state that has never sent anything, in the provider's
task list where it has one, under the job's external id (an exact echo).

    its video there, of the size and sha256 recorded  → done, as it was (nothing downloaded)
    its video gone or changed                         → its task followed and downloaded into
                                                        place (a paid file found there is kept
                                                        aside, never overwritten: output.py)

Each task is asked about first, and the answer can only refuse: a task the provider says was
made for another job (the external id it echoes), or one that failed. A task the provider no
longer knows (it keeps tasks for weeks; videos last longer) or cannot be asked about is taken
back on its intact video alone, and is not taken back without one. A task another job of the
state already holds is never taken twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import anyio

from batchgen.download import file_sha256
from batchgen.errors import ProviderError, TaskNotFound
from batchgen.events import Notice
from batchgen.jobs import job_id_of_external
from batchgen.output import INDEX_NAME, VIDEOS_DIR
from batchgen.providers import TaskInfo
from batchgen.providers.task import task_id_problem
from batchgen.runner.context import RunContext
from batchgen.runner.lookup import read_list
from batchgen.runner.poll import Poller
from batchgen.state.changes import Recovered, WatermarkSaved
from batchgen.state.store import REGENERATE
from batchgen.status import JobStatus

QUERIES = 8  # tasks asked about at once
SIDECAR = ".json"  # videos/<row id>.json, videos/<job id>.json: output.py
MAX_SIDECAR = 4 << 20  # bytes: a sidecar larger than this is not read
Answer = TaskInfo | ProviderError


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a sidecar or an index line says of one job's paid task and video."""

    job_id: str
    task_id: str
    video: str | None  # relative to the run folder
    sha256: str | None
    size: int | None
    entry: Mapping[str, Any]

    @classmethod
    def of(cls, entry: Any) -> Evidence | None:
        """The evidence in a sidecar or index entry, or None where it names no usable task."""
        if not isinstance(entry, Mapping):
            return None
        job_id, task_id, video = entry.get("job_id"), entry.get("task_id"), entry.get("video")
        if not (isinstance(job_id, str) and isinstance(task_id, str)) or task_id_problem(task_id):
            return None
        inside = isinstance(video, str) and _inside(video)
        sha, size = entry.get("sha256"), entry.get("bytes")
        return cls(
            job_id,
            task_id,
            video if inside else None,
            sha if isinstance(sha, str) else None,
            size if isinstance(size, int) and not isinstance(size, bool) else None,
            entry,
        )

    def text(self, key: str) -> str | None:
        value = self.entry.get(key)
        return None if value is None or isinstance(value, dict | list) else str(value)

    def stamp(self, key: str) -> int | None:
        value = self.entry.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53
        return value if ok else None


def verdict(job_id: str, intact: bool, answer: Answer) -> tuple[str, str]:
    """("done" | "follow" | "refuse", why) for a job's task the run folder names, given
    whether its video is intact and what the provider answered about the task. Pure."""
    if isinstance(answer, TaskInfo):
        echoed = job_id_of_external(answer.external_task_id or "")
        if answer.external_task_id and (echoed is None or echoed[0] != job_id):
            return "refuse", f"the provider says it was made for {answer.external_task_id}"
        if answer.status == "failed":
            return "refuse", "the provider says it failed"
        return ("done", "its video is intact") if intact else ("follow", "its video is gone")
    if intact:
        unanswered = "no longer known" if isinstance(answer, TaskNotFound) else "not answered"
        return "done", f"its video is intact (the task: {unanswered})"
    if isinstance(answer, TaskNotFound):
        return "refuse", "its video is gone and the provider does not know the task"
    return "follow", "its video is gone; the provider is asked again by the run"


class Rebuild:
    def __init__(self, ctx: RunContext, poller: Poller) -> None:
        self.ctx = ctx
        self.poller = poller

    async def from_run_folder(self) -> int:
        """Take back every pending job's paid task that the run folder names, then, for a
        state that has never sent anything, those the provider's task list shows under a
        pending job's external id; how many."""
        counts = self.ctx.store.counts()
        pending = counts[JobStatus.PENDING]
        fresh = pending == sum(counts.values())
        taken = await self._from_files(pending, fresh)
        return taken + (await self._from_task_list() if fresh else 0)

    async def _from_task_list(self) -> int:
        """A state that had never sent anything (new, deleted, or its -wal lost) on a
        provider with a task list: tasks in flight when a state was lost have no file to
        name them, but the list shows them under their external id (an exact echo)."""
        ctx = self.ctx
        if not ctx.provider.lists_tasks:
            return 0
        # What was read is used; lost creates are still looked up one by one.
        listed = (await read_list(ctx.provider, anyio.current_time(), ctx.wall())).tasks
        taken = 0
        for job in list(ctx.store.with_status(JobStatus.PENDING)):
            task = listed.get(job.current_external_id)
            if task is None or ctx.store.job_of_task(task.task_id) is not None:
                continue
            note = f"found task {task.task_id} in the task list under this job's external id"
            change = Recovered(
                task.task_id,
                job.current_external_id,
                ctx.wall(),
                created_at=task.created_at,
                updated_at=task.updated_at,
                note=note,
            )
            job = ctx.record(job, change)
            since = task.created_at / 1000 if task.created_at else None
            tracked = ctx.track(job, task.task_id, JobStatus.SUBMITTED, since=since, resumed=True)
            self.poller.apply(tracked, task)
            taken += 1
        if taken:
            ctx.emit(Notice(f"{taken} task(s) of this run found in the task list: followed"))
        return taken

    async def _from_files(self, pending: int, fresh: bool) -> int:
        found = await self._evidence(pending, fresh)
        if not found:
            return 0
        self.ctx.emit(
            Notice(
                f"the run folder names {len(found)} paid task(s) that the state does not know: "
                "taking them back instead of paying again"
            )
        )
        limiter = anyio.CapacityLimiter(QUERIES)
        taken = [0]
        async with anyio.create_task_group() as group:
            for evidence in found:
                group.start_soon(self._take_back, evidence, limiter, taken)
        return taken[0]

    async def _evidence(self, pending: int, fresh: bool) -> list[Evidence]:
        """The evidence of every pending job (`pending` of them): its row's sidecar, its own
        (a kept earlier video), and index.jsonl while the state has never sent anything
        (`fresh`)."""
        ctx = self.ctx
        names = await anyio.to_thread.run_sync(_names, ctx.run_dir / VIDEOS_DIR)
        index = await anyio.to_thread.run_sync(_index, ctx.run_dir) if fresh else {}
        keys = {name.removesuffix(SIDECAR) for name in names if name.endswith(SIDECAR)}
        keys.update(index)
        if not keys:
            return []
        # The pending jobs these files could name: asked of the database by name while the
        # names are fewer than the pending jobs (a resume of a large run), else read each.
        few = len(keys) < pending
        jobs = ctx.store.pending_named(keys) if few else ctx.store.with_status(JobStatus.PENDING)
        wanted: list[tuple[str, list[str]]] = []
        for job in jobs:
            if job.error_kind == REGENERATE:
                continue  # its earlier video is not what the user asked for
            sidecars = [f"{job.row_id}{SIDECAR}", f"{job.job_id}{SIDECAR}"]
            present = [name for name in sidecars if name in names]
            if present or job.job_id in index:
                wanted.append((job.job_id, present))
        found = await anyio.to_thread.run_sync(_read_sidecars, ctx.run_dir, wanted, index)
        return [e for e in found if ctx.store.job_of_task(e.task_id) is None]

    async def _take_back(
        self, evidence: Evidence, limiter: anyio.CapacityLimiter, taken: list[int]
    ) -> None:
        ctx = self.ctx
        async with limiter:
            if ctx.stopping is not None:
                return
            intact = await anyio.to_thread.run_sync(_intact, ctx.run_dir, evidence)
            answer = await self._ask(evidence.task_id)
        job = ctx.job(evidence.job_id)
        if job.status != JobStatus.PENDING or ctx.store.job_of_task(evidence.task_id) is not None:
            return
        action, why = verdict(job.job_id, intact, answer)
        if action == "refuse":
            ctx.emit(Notice(f"{job.row_id}: not taken back task {evidence.task_id}: {why}"))
            return
        change = self._change(job.current_external_id, evidence, action == "done", why)
        job = ctx.record(job, change)
        taken[0] += 1
        if action == "done":
            self._keep_checks(evidence)
            return
        since = change.created_at / 1000 if change.created_at else None
        tracked = ctx.track(job, evidence.task_id, JobStatus.SUBMITTED, since=since, resumed=True)
        if isinstance(answer, TaskInfo):
            self.poller.apply(tracked, answer)

    async def _ask(self, task_id: str) -> Answer:
        try:
            return await self.ctx.provider.get(task_id)
        except ProviderError as error:
            return error

    def _change(self, external_id: str, e: Evidence, done: bool, why: str) -> Recovered:
        note = f"taken back task {e.task_id} from the run folder: {why}"
        return Recovered(
            e.task_id,
            external_id,
            self.ctx.wall(),
            created_at=e.stamp("task_created_at"),
            updated_at=e.stamp("task_updated_at"),
            units=e.text("final_unit_deduction"),
            duration=e.text("duration"),
            video=e.video if done else None,
            sha256=e.sha256 if done else None,
            size=e.size if done else None,
            note=note,
        )

    def _keep_checks(self, e: Evidence) -> None:
        """The probe and QA findings the sidecar holds, and its watermarked copy if there."""
        ctx = self.ctx
        probe, qa = e.entry.get("probe"), e.entry.get("qa")
        if isinstance(probe, dict) and isinstance(qa, list) and e.sha256:
            ctx.store.checks.record(e.job_id, e.sha256, probe, qa)
        copy = e.entry.get("watermark_video")
        if isinstance(copy, str) and _inside(copy) and (ctx.run_dir / copy).is_file():
            ctx.record(e.job_id, WatermarkSaved(copy))


def _names(videos: Path) -> set[str]:
    try:
        return set(os.listdir(videos))
    except OSError:
        return set()


def _index(run_dir: Path) -> dict[str, Evidence]:
    """The evidence of index.jsonl by job id; lines that cannot be read are passed over."""
    found: dict[str, Evidence] = {}
    try:
        with open(run_dir / INDEX_NAME, encoding="utf-8", errors="replace") as f:
            for line in f:
                evidence = Evidence.of(_json(line))
                if evidence is not None:
                    found[evidence.job_id] = evidence
    except OSError:
        pass
    return found


def _read_sidecars(
    run_dir: Path, wanted: list[tuple[str, list[str]]], index: Mapping[str, Evidence]
) -> list[Evidence]:
    """For each (job id, sidecar names): the first sidecar naming that job, else its line
    of the index."""
    found = []
    for job_id, names in wanted:
        sidecars = (Evidence.of(_sidecar(run_dir / VIDEOS_DIR / name)) for name in names)
        mine = [e for e in sidecars if e is not None and e.job_id == job_id]
        chosen = mine[0] if mine else index.get(job_id)
        if chosen is not None:
            found.append(chosen)
    return found


def _sidecar(path: Path) -> Any:
    try:
        if path.is_symlink() or path.stat().st_size > MAX_SIDECAR:
            return None
        return _json(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _intact(run_dir: Path, e: Evidence) -> bool:
    """Whether the video the evidence names is there: a regular file, not a link, of its
    size and sha256."""
    if e.video is None or e.sha256 is None or e.size is None:
        return False
    path = run_dir / e.video
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != e.size:
            return False
        return file_sha256(path) == e.sha256
    except OSError:
        return False


def _inside(relative: str) -> bool:
    path = PurePosixPath(relative)
    return bool(relative) and not path.is_absolute() and ".." not in path.parts
