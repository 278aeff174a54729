"""One process per run state, and one state per run folder, at a time.

A command that changes a state (`run`, `retry`, `adopt`, `reconcile`, `verify --repair`) holds
an exclusive `flock` on `<state>.lock` for as long as it runs (on PostgreSQL, an advisory lock
on the run's schema: postgres.holding_run); a second one is refused at once, naming the
holder's pid. A command that writes into a run folder (`run`, `adopt`, `reconcile`,
`verify --repair`) also holds `RUN/.batchgen.lock`: the folder has one owner, so two states
(`--state`) cannot fill one folder at once. The kernel drops a lock when its process dies,
however it dies, so a lock left by a killed run is simply taken over. Readers (`status`,
`report`, `verify`, `export`) take no lock; `holder` tells them whether a live process has one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from batchgen.errors import StateInUse, UsageError
from batchgen.state.connect import run_schema_of

SUFFIX = ".lock"
FOLDER_LOCK = ".batchgen.lock"


def lock_path(state: Path) -> Path:
    return state.with_name(state.name + SUFFIX)


def folder_lock_path(run_dir: Path) -> Path:
    return run_dir / FOLDER_LOCK


@contextmanager
def holding(
    state: Path, command: str, database: str | None = None, *, shared: bool = False
) -> Iterator[None]:
    """Hold the state's lock while the block runs; StateInUse if a live process has it.
    `shared` (PostgreSQL only): a worker, beside the run's other workers."""
    if database is not None:
        from batchgen.state.postgres import holding_run

        with holding_run(database, run_schema_of(state), f"batchgen {command}", shared=shared):
            yield
        return
    with _held(lock_path(state), state, f"batchgen {command}"):
        yield


@contextmanager
def loading(state: Path, database: str | None) -> Iterator[None]:
    """While a manifest is loaded: on PostgreSQL, one worker at a time (the others wait)."""
    if database is None:
        yield
        return
    from batchgen.state.postgres import loading_run

    with loading_run(database, run_schema_of(state)):
        yield


@contextmanager
def holding_folder(
    run_dir: Path, state: Path, command: str, *, shared: bool = False
) -> Iterator[None]:
    """Hold the run folder's lock for `state` while the block runs; StateInUse if a live
    process has it (with this state or another). `shared`: workers of one run share it."""
    holder = f"batchgen {command} with state {state}"
    with _held(folder_lock_path(run_dir), run_dir, holder, shared=shared):
        yield


@contextmanager
def _held(path: Path, what: Path, holder: str, *, shared: bool = False) -> Iterator[None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UsageError(f"cannot create the lock file {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateInUse(_refusal(what, os.pread(fd, 1000, 0))) from None
        if not shared:
            os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {holder}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def holder(state: Path, database: str | None = None) -> str | None:
    """Who holds the state's lock now ("pid 123 (batchgen run)"), or None when no live process
    does. Asks the kernel with a shared lock taken and dropped at once (or the server)."""
    if database is not None:
        from batchgen.state.postgres import run_holder

        return run_holder(database, run_schema_of(state))
    try:
        fd = os.open(lock_path(state), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _who(os.pread(fd, 200, 0))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _who(holder: bytes) -> str:
    pid, _, what = holder.decode(errors="replace").strip().partition(" ")
    return f"pid {pid} ({what})" if pid.isdigit() else "another process"


def _refusal(what: Path, holder: bytes) -> str:
    who = _who(holder)
    return f"{what} is in use by {who}; wait for it to finish or stop it, then run this again"
