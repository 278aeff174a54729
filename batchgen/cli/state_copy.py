"""`batchgen state copy SRC DST`: a run's state between a SQLite file and a PostgreSQL
database, either way, checked by counts and hashes (state/copy.py)."""

from __future__ import annotations

from pathlib import Path

import click

from batchgen.cli import command_summary
from batchgen.errors import UsageError
from batchgen.state import runlock
from batchgen.state.connect import DATABASE_SCHEMES, STATE_NAME
from batchgen.state.copy import copy_state
from batchgen.state.store import Store

PLACE = "STATE|RUN|URL"


@click.group(short_help=command_summary("state"))
def state() -> None:
    """A run's state, wherever it is kept."""


@state.command(short_help="Copy a run's state between SQLite and PostgreSQL, checked.")
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.option(
    "--run",
    "run_name",
    metavar="NAME",
    help="The run, when neither side is a file or a run folder (it names the run's schema).",
)
def copy(source: str, destination: str, run_name: str | None) -> None:
    """Copy the state of a run from SRC to DST, each a state file (STATE), a run folder (RUN,
    its state.sqlite) or a PostgreSQL database (postgresql://...). DST must hold no state of
    the run yet; every table is counted and hashed on both sides before the copy commits
    (exit 2, nothing copied, if any differs). Neither side may be in use by a run meanwhile."""
    name = run_name or _run_of(source, destination)
    src, dst = _place(source, name), _place(destination, name)
    if src[1] is None and not src[0].is_file():
        raise UsageError(f"no state file at {src[0]}: nothing was copied")
    with (
        runlock.holding(src[0], "state copy", src[1]),
        runlock.holding(dst[0], "state copy", dst[1]),
        Store.open(src[0], src[1], create=False) as read,
        Store.open(dst[0], dst[1]) as written,
    ):
        copied = copy_state(read.db, written.db)
        shown = (read.db.shown, written.db.shown)
    for table in copied:
        click.echo(f"{table.table}: {table.rows} row(s), sha256 {table.sha256[:16]}")
    jobs = next(t.rows for t in copied if t.table == "jobs")
    click.echo(f"copied {jobs} job(s) from {shown[0]} to {shown[1]}: counts and hashes match")


def _is_url(text: str) -> bool:
    return text.startswith(DATABASE_SCHEMES)


def _file(text: str) -> Path:
    path = Path(text)
    return path / STATE_NAME if path.is_dir() else path


def _run_of(*places: str) -> str:
    """The run's name: the folder of the side that is a file."""
    files = [_file(p) for p in places if not _is_url(p)]
    if not files:
        raise UsageError("both sides are databases: say which run with --run NAME")
    return files[0].absolute().parent.name


def _place(text: str, run_name: str) -> tuple[Path, str | None]:
    """(state path, database URL or None) of SRC or DST."""
    if not _is_url(text):
        return _file(text), None
    return Path(run_name) / STATE_NAME, text
