"""A command pays for its own imports only: `batchgen --help` lists every command without
importing one (it answered in about a second when it imported them all), and `status` imports
none of what a run needs. Asked of a fresh interpreter, as a user's shell starts one."""

from __future__ import annotations

import json
import subprocess
import sys

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
