"""Ending cleanly however the process is told to stop.

A run installs its own SIGINT/SIGTERM handling (stop submitting, drain what is paid for);
before and after it, `terminate_like_interrupt` makes SIGTERM (a container or service stop)
behave as Ctrl-C does: a KeyboardInterrupt that the CLI turns into "interrupted", exit 130,
whatever the moment, start-up included. A reader of the progress that went away (a closed
pipe) is taken as the same request: `reader_gone` interrupts the process once.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

_interrupted = False


def terminate_like_interrupt() -> None:
    """From now on SIGTERM raises KeyboardInterrupt, as SIGINT does."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


def reader_gone() -> None:
    """The output's reader went away: interrupt this process (once), as Ctrl-C would."""
    global _interrupted
    if not _interrupted:
        _interrupted = True
        os.kill(os.getpid(), signal.SIGINT)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
