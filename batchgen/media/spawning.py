"""How the check workers' processes are started: multiprocessing's spawn, made safe against the
parent being killed while it starts them.

A spawned interpreter reads what it is to run (the parent's preparation data and the pickled
process) from a pipe. The standard library starts the child first and writes that pipe after;
a parent killed by SIGKILL in between leaves a child reading an empty pipe, which prints
`EOFError: Ran out of input` with its traceback on the terminal of the run just killed. Here
the pipe is filled first and the child started after, so a child always finds all it needs,
sees its parent gone (workers.py) and exits without a word. Data larger than the pipe holds
(it is a few kilobytes; a pipe holds 64 KiB) falls back to the standard order.

The resource tracker (the process that removes the pool's semaphores once no process holds
them) is told not to warn about semaphores left by a killed parent: it removes them either way,
and a kill -9 has nothing more to say.
"""

from __future__ import annotations

import io
import os
import sys
from multiprocessing import context, popen_spawn_posix, reduction, spawn, util
from typing import Any, cast

QUIET_TRACKER = "ignore::UserWarning:multiprocessing.resource_tracker"


class _FilledFirst(popen_spawn_posix.Popen):
    """Spawn's Popen with the child's pipe filled before the child exists."""

    _fds: list[int]  # what the child inherits (set by popen_spawn_posix.Popen)

    def _launch(self, process_obj: Any) -> None:
        from multiprocessing import resource_tracker

        tracker_fd = cast(int, resource_tracker.getfd())  # started by spawn_context
        self._fds.append(tracker_fd)
        data = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            reduction.dump(spawn.get_preparation_data(process_obj._name), data)
            reduction.dump(process_obj, data)
        finally:
            context.set_spawning_popen(None)
        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = os.pipe()
            child_r, parent_w = os.pipe()
            rest = _write_what_fits(parent_w, data.getbuffer())
            cmd = spawn.get_command_line(tracker_fd=tracker_fd, pipe_handle=child_r)
            self._fds.extend([child_r, child_w])
            self.pid = util.spawnv_passfds(os.fsencode(spawn.get_executable()), cmd, self._fds)
            self.sentinel = parent_r
            if rest:
                with open(parent_w, "wb", closefd=False) as pipe:
                    pipe.write(rest)
        finally:
            opened = [fd for fd in (parent_r, parent_w) if fd is not None]
            self.finalizer = util.Finalize(self, util.close_fds, opened)  # type: ignore[attr-defined]
            for fd in (child_r, child_w):
                if fd is not None:
                    os.close(fd)


def _write_what_fits(fd: int, data: memoryview) -> bytes:
    """Write `data` to the empty pipe `fd` without blocking; what did not fit."""
    os.set_blocking(fd, False)
    try:
        written = os.write(fd, data)
    except BlockingIOError:
        written = 0
    finally:
        os.set_blocking(fd, True)
    return bytes(data[written:])


class _Process(context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _FilledFirst:
        return _FilledFirst(process_obj)


class SpawnContext(context.SpawnContext):
    """multiprocessing's spawn context, its processes started by `_FilledFirst`."""

    Process = _Process


def spawn_context() -> SpawnContext:
    """The context the check workers are started in, with the resource tracker running,
    started (where it was not yet) quiet about what a killed parent left."""
    from multiprocessing import resource_tracker

    # The tracker takes its warning filters from `sys.warnoptions` as it starts: added for
    # that moment only.
    sys.warnoptions.append(QUIET_TRACKER)
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions.remove(QUIET_TRACKER)
    return SpawnContext()
