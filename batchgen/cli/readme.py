"""The README's table of commands, made from the CLI itself (`python -m batchgen.cli.readme`
prints it); a test fails when the README's copy differs."""

from __future__ import annotations

import click

from batchgen.cli import cli

HEADER = "| command | what it does |\n|---|---|"


def command_table(group: click.Group = cli) -> str:
    """A Markdown table: each command with its arguments and required options, and its
    one-line summary."""
    ctx = click.Context(group, info_name="batchgen")
    rows = [_row(ctx, name, group.commands[name]) for name in group.list_commands(ctx)]
    return "\n".join([HEADER, *rows])


def _row(ctx: click.Context, name: str, command: click.Command) -> str:
    usage = " ".join([name, *_required(ctx, command)]).replace("|", "\\|")
    return f"| `{usage}` | {command.get_short_help_str(limit=1000)} |"


def _required(ctx: click.Context, command: click.Command) -> list[str]:
    """The arguments, then the options that must be given, as `--help` names them."""
    arguments = [p.make_metavar(ctx) for p in command.params if isinstance(p, click.Argument)]
    options = [
        f"{p.opts[0]} {p.make_metavar(ctx)}"
        for p in command.params
        if isinstance(p, click.Option) and p.required
    ]
    return arguments + options


if __name__ == "__main__":
    print(command_table())
