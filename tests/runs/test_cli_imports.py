"""A command pays for its own imports only: `batchgen --help` lists every command without
importing one (it answered in about a second when it imported them all), and `status` imports
none of what a run needs. Asked of a fresh interpreter, as a user's shell starts one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from batchgen.cli import COMMANDS

# What a run, an export or the simulator needs, and a quick command should not load.
HEAVY = ["httpx", "anyio", "pydantic", "av", "PIL", "pyarrow", "uvicorn", "yaml", "batchgen.runner"]


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_batchgen_help_lists_every_command_without_importing_any():
    code = (
        "from batchgen.cli import cli\n"
        "cli.main(['--help'], prog_name='batchgen', standalone_mode=False)"
    )
    loaded = modules_after(code)
    command_modules = {home.module for home in COMMANDS.values()}
    assert sorted(command_modules & loaded) == []
    assert sorted(name for name in HEAVY if name in loaded) == []


def test_status_imports_nothing_a_run_needs():
    loaded = modules_after("import batchgen.cli.status")
    assert sorted(name for name in HEAVY if name in loaded) == []


@pytest.mark.parametrize("commands", ["batchgen.cli.results", "batchgen.cli.ledger"])
def test_report_verify_export_gallery_runs_and_account_import_nothing_that_runs_jobs(commands):
    """Their commands start without the client, the stages and the settings a run needs (a
    repair, or naming an account by its keys, imports them when it happens): report and
    verify about 0.25 s less of each start, runs and account about 0.6 s."""
    loaded = modules_after(f"import {commands}")
    run_only = ["batchgen.pipeline", "batchgen.runner.runner", "batchgen.runner.downloads"]
    assert sorted(name for name in [*run_only, "pydantic", "uvicorn"] if name in loaded) == []


def test_a_download_checks_its_first_bytes_without_pyav():
    """`media.sniff` is imported by the downloader; the rest of media (PyAV, Pillow) only
    when a video is probed."""
    loaded = modules_after("import batchgen.download")
    assert sorted(name for name in ["av", "PIL"] if name in loaded) == []
    loaded = modules_after("from batchgen.media import CheckWorkers")
    assert "batchgen.media.workers" in loaded


def test_a_run_loads_no_decoder_in_its_own_process():
    """Only the worker processes decode videos: the run's process hands out the checks and
    records what they found, without PyAV (about 0.09 s of its start and 17 MB)."""
    loaded = modules_after("import batchgen.cli.running")
    assert "av" not in loaded
