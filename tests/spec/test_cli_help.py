"""`--help`: summaries that fit, every option explained, and the README's table in step."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from batchgen.cli import cli
from batchgen.cli.readme import command_table
from tests.conftest import run_cli

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE = re.compile(r"<!-- commands: [^\n]*-->\n(.*?)\n<!-- /commands -->", re.DOTALL)


def test_every_command_summary_shows_whole_in_batchgen_help(capsys, monkeypatch):
    """On an 80-column terminal `batchgen --help` shows each command's summary in full, on
    one line."""
    monkeypatch.setenv("COLUMNS", "80")
    assert run_cli("--help") == 0
    listing = capsys.readouterr().out.split("Commands:")[1]
    for name, command in cli.commands.items():
        summary = re.escape(command.get_short_help_str(limit=1000))
        assert re.search(rf"^  {name} +{summary}$", listing, re.MULTILINE), name
    assert "..." not in listing


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_option_of_every_command_has_a_description(name):
    """`batchgen COMMAND --help` explains each of its options."""
    command = cli.commands[name]
    undescribed = [p.opts for p in command.params if isinstance(p, click.Option) and not p.help]
    assert undescribed == []


def test_the_readme_lists_the_commands_as_the_cli_describes_them():
    """The README's table of commands is the one `python -m batchgen.cli.readme` prints."""
    found = TABLE.search(README.read_text(encoding="utf-8"))
    assert found is not None, "README.md has no <!-- commands --> table"
    expected = command_table()
    assert found.group(1) == expected, f"paste this table into README.md:\n{expected}"


@pytest.mark.parametrize("name", ["demo", "simulate"])
def test_latency_takes_a_min_and_a_max(name):
    """`demo --latency` and `simulate --latency` both take two numbers, min then max."""
    context = cli.commands[name].make_context(name, ["--latency", "0.5", "1.5"])
    assert context.params["latency"] == (0.5, 1.5)
