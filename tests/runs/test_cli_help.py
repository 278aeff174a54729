"""`--help`: summaries that fit, every option explained, and the README's table in step."""

from __future__ import annotations

import subprocess
import sys

from batchgen.cli import cli
from batchgen.cli.readme import command_table


def test_the_readme_table_is_printed_by_a_module_anyone_can_run():
    """`python -m batchgen.cli.readme` prints the table, with every command in it."""
    done = subprocess.run(
        [sys.executable, "-m", "batchgen.cli.readme"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == command_table()
    assert all(f"| `{name}" in done.stdout for name in cli.commands)


def test_python_dash_m_batchgen_shows_the_same_help():
    """`python -m batchgen --help` lists the commands, as the `batchgen` script does."""
    done = subprocess.run(
        [sys.executable, "-m", "batchgen", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "Commands:" in done.stdout and "simulate" in done.stdout
