"""Ending cleanly however the process is told to stop.

A run installs its own SIGINT/SIGTERM handling (stop submitting, drain what is paid for);
before and after it, `terminate_like_interrupt` makes SIGTERM (a container or service stop)
behave as Ctrl-C does, by raising SIGINT: a KeyboardInterrupt (or the event loop's own
cancellation) that the CLI turns into "interrupted", exit 130, start-up included. A reader
of the progress that went away (a closed pipe) is taken as the same request: `reader_gone`
interrupts the process once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

_interrupted = False


Handler = Callable[[int, FrameType | None], Any] | int | None


def terminate_like_interrupt() -> Handler:
    """From now on SIGTERM is handled as SIGINT is (whoever handles SIGINT at that moment: the
    interpreter's KeyboardInterrupt, the event loop, the run); returns the handler replaced."""
    return signal.signal(signal.SIGTERM, _as_interrupt)


def reader_gone() -> None:
    """The output's reader went away: interrupt this process (once), as Ctrl-C would."""
    global _interrupted
    if not _interrupted:
        _interrupted = True
        os.kill(os.getpid(), signal.SIGINT)


def _as_interrupt(signum: int, frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGINT)
