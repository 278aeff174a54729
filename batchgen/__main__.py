"""`batchgen` and `python -m batchgen`: SIGTERM is taken as Ctrl-C from the first moment (the
CLI's imports take a while), then the CLI runs; once it has decided its exit code, the process
ends with it at once, so that a signal during the interpreter's own teardown cannot turn a
finished command into a killed one."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

from batchgen.interrupts import terminate_like_interrupt

EXIT_INTERRUPTED = 130  # as batchgen.errors says; not imported, to stay light here


def entry() -> None:
    terminate_like_interrupt()
    try:
        from batchgen.cli import main

        main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else int(done.code is not None)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    _end(code)


def _end(code: int) -> None:
    """Exit with `code` now: the state is committed and closed, the files are synced."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
