"""One process per run state and one state per run folder: a second one is refused at once,
a dead one's lock is taken."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from batchgen.errors import StateInUse
from batchgen.state import runlock
from tests.conftest import run_cli, write_manifest

HOLD = """
import sys, time
from pathlib import Path
from batchgen.state import runlock
with runlock.holding(Path(sys.argv[1]), "run"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_holder_is_refused_naming_the_first_pid(tmp_path):
    """While one process holds a state, another gets StateInUse with the holder's pid."""
    state = tmp_path / "state.sqlite"
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
            with pytest.raises(StateInUse) as caught, runlock.holding(state, "retry"):
                pass
            assert f"pid {holder.pid} (batchgen run)" in str(caught.value)
        finally:
            holder.kill()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    """kill -9 of the holder frees the state for the next command."""
    state = tmp_path / "state.sqlite"
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(state)], stdout=subprocess.PIPE
    ) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        os.kill(holder.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    with runlock.holding(state, "run"):
        assert time.monotonic() < deadline
        assert runlock.lock_path(state).read_text().startswith(f"{os.getpid()} ")


HOLD_FOLDER = """
import sys, time
from pathlib import Path
from batchgen.state import runlock
with runlock.holding_folder(Path(sys.argv[1]), Path(sys.argv[2]), "run"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_state_on_a_run_folder_in_use_is_refused(tmp_path, sim, capsys):
    """While a run fills its folder with one state, `run --state another.sqlite` on the same
    folder exits 2 naming the first one's pid and state, and sends nothing."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    first = tmp_path / "first.sqlite"
    command = [sys.executable, "-c", HOLD_FOLDER, str(out / "batch"), str(first)]
    with subprocess.Popen(command, stdout=subprocess.PIPE) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
            second = ("--state", tmp_path / "second.sqlite")
            code = run_cli("run", manifest, "-o", out, *second, base_url=sim.base_url)
        finally:
            holder.kill()
    err = capsys.readouterr().err
    assert code == 2 and f"pid {holder.pid} (batchgen run with state {first})" in err
    assert sim.stats()["creates_received"] == 0
    assert not (tmp_path / "second.sqlite").exists()
