"""The video checks in worker processes, so that the event loop never decodes and every core
checks a video at once.

`CheckWorkers` is a pool of one process per core (a `ProcessPoolExecutor`, started at the first
check, spawned as spawning.py starts them: nothing of the run's threads is inherited) that a
run owns for its length: `async with CheckWorkers() as workers: await workers.check(path,
expected)` (or `check_download`, the one call the download stage makes). Leaving the block
shuts the processes down and waits for them (a check under way is let finish: it is short).
Workers never run the parent's main script (multiprocessing's spawn would import it in each of
them: a script calling `batchgen.run()` without `if __name__ == "__main__":` would run again
there). A worker ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group, and the
run it belongs to drains on the first one, checks included) and exits when its parent is gone,
even killed: a pool never outlives its run.

A worker that dies during a check (the decoder crashed on the file, or the process was killed)
breaks the pool: a new one is started and the check tried once more; a file that breaks it
again is flagged undecodable.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import multiprocessing
import os
import signal
import sys
import threading
import types
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio

from batchgen.media.facts import Decode, Probe
from batchgen.media.qa import Expected, ImageSize, VideoCheck, expected_of, findings
from batchgen.media.spawning import spawn_context

CheckFn = Callable[[Path, Expected], VideoCheck]
CRASHED = "the decoder's process died reading it, twice"


def cores() -> int:
    """The cores this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


class CheckWorkers:
    """Checks videos in `processes` worker processes (default: one per core), started at the
    first check; `check_fn` is what a worker runs (`check_video`, decoding the frames `decode`
    names; tests give another)."""

    def __init__(
        self,
        processes: int | None = None,
        check_fn: CheckFn | None = None,
        decode: Decode = "I/P",
    ) -> None:
        self.processes = processes or cores()
        self.check_fn = check_fn or functools.partial(_check_video, decode=decode)
        self.decode = decode
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        state = "running" if self._pool is not None else "not started"
        return f"CheckWorkers(processes={self.processes}, {state})"

    async def __aenter__(self) -> CheckWorkers:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.close)

    async def check_download(
        self, request: dict[str, Any], path: Path, image_size: ImageSize
    ) -> VideoCheck:
        """Check the video just downloaded for a job's `request` at `path`; `image_size`
        gives the size of an input image by its ref."""
        return await self.check(path, expected_of(request, image_size))

    async def check(self, path: Path, expected: Expected) -> VideoCheck:
        """`check_fn(path, expected)` in a worker process; cancelling the wait cancels the
        check if it has not started."""
        for _ in range(2):
            pool = self._started()
            try:
                with _main_script_hidden():  # a submit may spawn a worker
                    running = pool.submit(self.check_fn, path, expected)
                return await asyncio.wrap_future(running)
            except BrokenProcessPool:
                self._replace(pool)
        probe = Probe(error=CRASHED, decode=self.decode)
        return VideoCheck(probe, tuple(findings(probe, expected)))

    def close(self) -> None:
        """Stop the workers and wait for them; checks not started are cancelled."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=spawn_context(),
                initializer=_start_worker,
            )
        return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Drop a broken pool (the next check starts a new one), unless already replaced."""
        if self._pool is broken:
            self._pool = None
            broken.shutdown(wait=False, cancel_futures=True)


def _check_video(path: Path, expected: Expected, decode: Decode) -> VideoCheck:
    """`check_video`, imported in the worker that runs it: the run's process, which only hands
    out checks, never loads PyAV."""
    from batchgen.media.check import check_video

    return check_video(path, expected, decode)


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """While workers are spawned, `__main__` is a blank module: spawn has no script to import
    in them."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _start_worker() -> None:
    """In each worker: signals are the parent's to act on, and the parent's end is the
    worker's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    wait([parent_sentinel])
    os._exit(1)
