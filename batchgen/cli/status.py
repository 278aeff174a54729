"""`batchgen status`: a run's counts, failures, unknown jobs, QA and money. It imports the state
and what it shows, nothing a run needs, so that it answers in a fraction of a second however
many jobs the run has (bench/scale.py times it on a million)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from batchgen.cli import command_summary
from batchgen.cli.next_steps import NextSteps
from batchgen.cli.options import database_option, json_option, output_option, target_argument
from batchgen.results.overview import overview_of
from batchgen.results.targets import resolve_target


@click.command(short_help=command_summary("status"))
@target_argument
@output_option()
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Failed, unknown and flagged jobs to list.",
)
@json_option("the status")
@database_option
def status(target: Path, output: Path, limit: int, as_json: bool, database: str | None) -> None:
    """Counts by status, why each failed or unknown job is so (and what to do about an unknown
    one), QA findings, and the money spent and committed."""
    found = resolve_target(target, output, database=database)
    with found.open_state() as store:
        steps = NextSteps.of_state(found, store)
        view = overview_of(store, limit, run_command=steps.run())
        advice = steps.unknown_advice
    shown = json.dumps(view.as_json(advice), indent=2) if as_json else "\n".join(view.lines(advice))
    click.echo(shown)
