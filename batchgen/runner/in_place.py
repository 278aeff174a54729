"""Checking done videos where they are: no download, no API call. Each video is probed and
judged in the check workers (media/workers.py), and what they found is recorded in the state and
written to the video's sidecar; the index is the caller's to rewrite.

A run checks the done videos no check has looked at (left by `--qa off`: downloads.py);
`verify --qa` those a shallower check looked at (keyframes alone, where it asks for `full`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path

import anyio

from batchgen import output
from batchgen.media import CheckWorkers, VideoCheck
from batchgen.media.facts import Decode
from batchgen.state.records import CheckRecord, JobRecord
from batchgen.state.store import Store
from batchgen.status import JobStatus

# How much of a clip each decode looks at: a check of a lower one is shallower.
_DEPTH: dict[str, int] = {"keyframes": 1, "I/P": 2, "all": 3}


def shallower(check: CheckRecord | None, decode: Decode) -> bool:
    """Whether `check` (None: no check) looked at less of its video than `decode` would. A
    check recorded before the probe said what it decoded decoded its I/P frames."""
    if check is None:
        return True
    done = check.probe.get("decode") or "I/P"
    return _DEPTH.get(str(done), _DEPTH["I/P"]) < _DEPTH[decode]


def owed_checks(store: Store, decode: Decode) -> list[str]:
    """The done jobs of the manifest whose video no check as deep as `decode` looked at."""
    return [
        job.job_id
        for job, check in store.checks.done_with_checks()
        if job.output_path and job.sha256 and shallower(check, decode)
    ]


async def check_in_place(
    store: Store, run_dir: Path, checks: CheckWorkers, job: JobRecord, *, shared: bool = True
) -> VideoCheck | None:
    """Check the done job's video where it is; record the check in the state and the sidecar.
    None for a job with no done video. `shared`: several processes of the run may write the
    sidecar (output.write_sidecar)."""
    if job.status != JobStatus.DONE or not job.output_path or not job.sha256:
        return None
    video = run_dir / job.output_path
    check = await checks.check_download(job.request, video, store.inputs.image_size)
    store.checks.record(job.job_id, job.sha256, check.probe.as_json(), check.findings_json())
    sidecar = functools.partial(
        output.write_sidecar,
        run_dir,
        job,
        job.output_path,
        job.sha256,
        job.bytes or 0,
        check.as_json(),
        shared=shared,
    )
    await anyio.to_thread.run_sync(sidecar)
    return check


async def check_all_in_place(
    store: Store,
    run_dir: Path,
    checks: CheckWorkers,
    job_ids: Iterable[str],
    stopping: Callable[[], bool] = lambda: False,
    *,
    shared: bool = True,
) -> list[VideoCheck]:
    """`check_in_place` for each of these jobs, as many at once as there are check workers,
    none begun once `stopping()`; the checks made."""
    checked: list[VideoCheck] = []
    pending = iter(job_ids)  # (taken from by each worker in turn: any number of jobs)

    async def worker() -> None:
        for job_id in pending:
            job = store.get(job_id)
            if stopping():
                return
            if job is not None:
                made = await check_in_place(store, run_dir, checks, job, shared=shared)
                if made is not None:
                    checked.append(made)

    async with anyio.create_task_group() as group:
        for _ in range(checks.processes):
            group.start_soon(worker)
    return checked
