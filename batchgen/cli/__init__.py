"""The `batchgen` command: a click group of thin commands over the library, and `main`, where
every expected failure becomes a message and an exit code:

    0  every job done          1  some jobs failed or are unfinished
    2  invalid input or usage  3  stopped by an account-level error (resumable)
    130  interrupted (resumable)

Modules: options (shared options, Settings from flags), running (run, demo, retry, adopt,
reconcile), status (status), results (report, verify, export, gallery), ledger (runs, account:
the account ledger), manifests (validate, plan, schema), state_copy (state copy), simulation
(simulate), summary (how a run ends), next_steps (commands to paste), readme (the README's
table of commands).

A command's module is imported when that command is asked for (`batchgen --help` lists them
from `COMMANDS`, importing none), so that a command pays for its own imports only: `status` of a
million jobs answers in a fraction of a second, most of which would otherwise go to importing
what `run` needs.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from importlib import import_module
from typing import NoReturn

import click

from batchgen.errors import EXIT_INTERRUPTED, EXIT_OK, BatchgenError, ManifestInvalid
from batchgen.interrupts import terminate_like_interrupt

__all__ = ["cli", "main"]


@dataclass(frozen=True, slots=True)
class Home:
    """Where a command is defined, and its one-line summary: what `batchgen --help` lists
    without importing the command (the command's own `short_help` is taken from here)."""

    module: str
    summary: str


# Each command, in a day's order.
COMMANDS = {
    "run": Home("batchgen.cli.running", "Run every job of a manifest; resumes where it stopped."),
    "demo": Home("batchgen.cli.running", "Run the demo against the built-in simulator."),
    "validate": Home("batchgen.cli.manifests", "Check every row of a manifest; submits nothing."),
    "plan": Home("batchgen.cli.manifests", "Dry run: jobs, cost and wall time; submits nothing."),
    "status": Home("batchgen.cli.status", "Counts, failures, unknown jobs, QA and money of a run."),
    "retry": Home("batchgen.cli.running", "Put failed or unknown jobs back for the next run."),
    "adopt": Home(
        "batchgen.cli.running", "Record a task found at the provider for an unknown job."
    ),
    "reconcile": Home("batchgen.cli.running", "Adopt the provider's tasks that the state lost."),
    "report": Home(
        "batchgen.cli.results", "A run's counts, failures, cost, money, time and slot use."
    ),
    "verify": Home("batchgen.cli.results", "Re-hash every video against the index and the state."),
    "export": Home(
        "batchgen.cli.results", "Export a run's videos as a dataset (hf, csv, webdataset)."
    ),
    "gallery": Home("batchgen.cli.results", "Write a run's gallery.html: every job on one page."),
    "runs": Home("batchgen.cli.ledger", "List every run this machine has made."),
    "account": Home("batchgen.cli.ledger", "Show (or set) an account's slots and spending."),
    "state": Home(
        "batchgen.cli.state_copy", "Copy a run's state between SQLite and PostgreSQL (state copy)."
    ),
    "schema": Home("batchgen.cli.manifests", "Print the manifest's JSON Schema (for editors)."),
    "simulate": Home("batchgen.cli.simulation", "Serve the Kling simulator on a loopback port."),
}


def command_summary(name: str) -> str:
    """The one-line summary of the command `name`, for its `short_help`."""
    return COMMANDS[name].summary


class LazyCommands(MutableMapping[str, click.Command]):
    """Commands by name, in the order given; each is imported from its module (named in
    `homes`) the first time it is looked up, its summary known before."""

    def __init__(self, homes: dict[str, Home]) -> None:
        self._commands: dict[str, Home | click.Command] = dict(homes)

    def __getitem__(self, name: str) -> click.Command:
        command = self._commands[name]
        if isinstance(command, Home):
            command = self._commands[name] = getattr(import_module(command.module), name)
        return command

    def summary(self, name: str) -> str:
        """The command's one-line summary, without importing it where it is not yet."""
        command = self._commands[name]
        if isinstance(command, Home):
            return command.summary
        return command.get_short_help_str(limit=1000)

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        del self._commands[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._commands)

    def __len__(self) -> int:
        return len(self._commands)


class InOrder(click.Group):
    """A group that lists its commands in the order they were given (a day's order), each
    with its summary from `COMMANDS`: `batchgen --help` imports none of them."""

    commands: LazyCommands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.commands.summary(name)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=InOrder,
    commands=LazyCommands(COMMANDS),
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="batchgen")
def cli() -> None:
    """Bulk image-to-video generation on the Kling API (CometAPI's relay or Kling's own).

    A manifest of image + prompt rows becomes jobs; jobs are submitted within your account's
    concurrency slots, followed to the end and downloaded into OUTPUT/RUN/. Every job's state
    is kept in SQLite, so any run can be stopped and resumed without paying twice.
    """


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: run the CLI; an expected failure ends with its message and exit code, never
    a traceback (also when a task group wrapped it). SIGTERM is taken as Ctrl-C; a reader of
    our output that went away ends the command quietly, as interrupted."""
    previous = terminate_like_interrupt()
    try:
        code = _run(argv)
    except BrokenPipeError:
        _silence_stderr()
        code = EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(code)


def _run(argv: list[str] | None) -> int:
    try:
        code = cli.main(args=argv, prog_name="batchgen", standalone_mode=False)
    except BaseException as exc:
        code = _expected_exit(_unwrapped(exc))
        if code is None:
            raise
    return int(code or EXIT_OK)


def _silence_stderr() -> None:
    """Point stderr at /dev/null, so that nothing more (the interpreter's last flush
    included) fails on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stderr.fileno())
    os.close(devnull)


def _unwrapped(exc: BaseException) -> BaseException:
    """The one error inside (nested) exception groups that hold a single one."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _expected_exit(exc: BaseException) -> int | None:
    """Show an expected failure and return its exit code; None for anything else."""
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        exc.show()
        return exc.exit_code
    if isinstance(exc, click.Abort | KeyboardInterrupt):
        # click turns a Ctrl-C into Abort: it is said as what it was
        ctrl_c = isinstance(exc, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt)
        click.echo("interrupted" if ctrl_c else "aborted", err=True)
        return EXIT_INTERRUPTED
    if isinstance(exc, ManifestInvalid):
        _show_problems(exc)
        return exc.exit_code
    if isinstance(exc, BatchgenError):
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    return None


def _show_problems(exc: ManifestInvalid) -> None:
    from batchgen.cli.manifests import problem_lines  # the manifest's modules: only here

    for line in problem_lines(exc.problems):
        click.echo(line, err=True)
    more = exc.total - len(exc.problems)
    if more > 0:
        click.echo(f"... and {more} more problem(s)", err=True)
    click.echo(f"{exc}; nothing was submitted", err=True)
