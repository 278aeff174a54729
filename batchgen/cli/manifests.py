"""The commands that read a manifest without running it: validate, plan, schema."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import click

from batchgen.cli import command_summary
from batchgen.cli.options import (
    Finite,
    concurrency_option,
    database_option,
    json_option,
    manifest_argument,
    output_option,
    prices_option,
    settings_from,
    state_option,
    url_timeout_option,
)
from batchgen.errors import EXIT_OK, EXIT_USAGE, Problem, UsageError
from batchgen.jobs import DEFAULT_MODEL, JobSpec
from batchgen.manifest.resolve import (
    ResolveOptions,
    ValidationReport,
    check_items,
    resolve_manifest,
)
from batchgen.manifest.schema import manifest_json_schema
from batchgen.money.plan import TO_SEND, build_plan
from batchgen.money.pricing import load_prices
from batchgen.progress import counted
from batchgen.state.connect import state_exists
from batchgen.state.store import Store
from batchgen.status import IN_FLIGHT, JobStatus


@click.command(short_help=command_summary("validate"))
@manifest_argument
@click.option(
    "--max-problems",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Problems to list (all are counted).",
)
@click.option("--inline-urls", is_flag=True, help="Download URL images to check them too.")
@json_option("the result (ok, jobs, every problem listed)")
@url_timeout_option
def validate(
    manifest: Path, max_problems: int, inline_urls: bool, url_timeout: float, as_json: bool
) -> int:
    """Check every row of MANIFEST without submitting anything: every problem of every row in
    one pass (exit 2 if any)."""
    options = ResolveOptions(
        inline_urls=inline_urls, max_problems=max_problems, url_deadline=url_timeout
    )
    resolved = resolve_manifest(_existing(manifest), options)
    unnamed = UnnamedModels()
    result = check_items(unnamed.count(counted(resolved.iter_jobs(), "checking")), max_problems)
    if as_json:
        found = validation_json(manifest, result) | {"jobs_without_model_name": unnamed.jobs}
        click.echo(json.dumps(found, indent=2))
        return EXIT_OK if result.ok else EXIT_USAGE
    if unnamed.jobs:
        click.echo(
            f"note: {unnamed.jobs} job(s) set no model_name: they are sent as {DEFAULT_MODEL}, "
            "the API's default and an old model; set `defaults: {model_name: ...}` to choose",
            err=True,
        )
    for line in problem_lines(result.problems):
        click.echo(line)
    more = result.total_problems - len(result.problems)
    if more:
        click.echo(f"... and {more} more problem(s)")
    if not result.ok:
        click.echo(_refusal(manifest, result, max_problems), err=True)
        return EXIT_USAGE
    click.echo(f"{manifest}: ok, {result.jobs} job(s)")
    return EXIT_OK


SHOWN_ROWS = 3


def problem_lines(problems: Sequence[Problem]) -> list[str]:
    """One line per problem, except that a problem of a default value is said once, with the
    jobs it reaches (one mistake in `defaults` is not one line per expanded job)."""
    reached: dict[tuple[str, str], list[str]] = {}
    order: list[Problem | tuple[str, str]] = []
    for problem in problems:
        if not problem.field.startswith("defaults."):
            order.append(problem)
            continue
        key = (problem.field, problem.message)
        if key not in reached:
            reached[key] = []
            order.append(key)
        reached[key].append(problem.row)
    return [
        f"error: {item}" if isinstance(item, Problem) else _defaults_line(*item, reached[item])
        for item in order
    ]


def _defaults_line(field: str, message: str, rows: list[str]) -> str:
    more = f" and {len(rows) - SHOWN_ROWS} more" if len(rows) > SHOWN_ROWS else ""
    where = ", ".join(rows[:SHOWN_ROWS]) + more
    return f"error: field {field!r}: {message} (in {len(rows)} job(s): {where})"


class UnnamedModels:
    """Counts the jobs whose request names no model (the API then takes its default)."""

    def __init__(self) -> None:
        self.jobs = 0

    def count(self, items: Iterable[JobSpec | Problem]) -> Iterator[JobSpec | Problem]:
        for item in items:
            self.jobs += isinstance(item, JobSpec) and "model_name" not in item.request
            yield item


def validation_json(manifest: Path, result: ValidationReport) -> dict[str, object]:
    """What `validate --json` prints: one object, the problems listed as their fields."""
    return {
        "manifest": str(manifest),
        "ok": result.ok,
        "jobs": result.jobs,
        "total_problems": result.total_problems,
        "invalid_rows": len(result.invalid_rows),
        "problems": [dataclasses.asdict(problem) for problem in result.problems],
    }


def _refusal(manifest: Path, result: ValidationReport, max_problems: int) -> str:
    rows = f"{len(result.invalid_rows)}{'+' if len(result.invalid_rows) >= max_problems else ''}"
    return (
        f"{manifest}: {result.total_problems} problem(s) in {rows} row(s); "
        f"{result.jobs} valid job(s); nothing was submitted"
    )


@click.command(short_help=command_summary("plan"))
@manifest_argument
@output_option()
@state_option
@concurrency_option
@click.option(
    "--generation-seconds",
    type=Finite(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Assumed time of one generation.",
)
@prices_option
@json_option("the plan")
@database_option
def plan(
    manifest: Path,
    output: Path,
    state: Path | None,
    concurrency: int,
    generation_seconds: float,
    prices: Path | None,
    as_json: bool,
    database: str | None,
) -> int:
    """Dry run of MANIFEST: jobs by model, tier and duration, low / expected / high cost and
    wall time at --concurrency. Submits nothing. A manifest run before is planned against its
    state (its file, or its schema in the --database): what is left to send, apart from what
    is done."""
    table = load_prices(prices)
    settings = settings_from(output=output, state=state, database=database)
    resolved = resolve_manifest(_existing(manifest))
    jobs = counted(resolved.iter_jobs(), "planning")
    status_of = _earlier_run(settings.state_path(resolved.name), database)
    summary = build_plan(jobs, concurrency, generation_seconds, table, status_of)
    click.echo(json.dumps(dataclasses.asdict(summary), indent=2) if as_json else summary.render())
    if summary.problems:
        click.echo(
            f"{summary.problems} problem(s): `batchgen validate {manifest}` lists them", err=True
        )
        return EXIT_USAGE
    return EXIT_OK


IN_FLIGHT_NAME = "in flight"


def _earlier_run(state: Path, database: str | None) -> Callable[[str], str] | None:
    """Where each job of an earlier run is, as the plan counts it; None if never run."""
    if not state_exists(state, database):
        return None
    with Store.open(state, database, create=False) as store:
        statuses = store.statuses()

    def status_of(job_id: str) -> str:
        status = statuses.get(job_id, JobStatus.PENDING)
        if status == JobStatus.PENDING:
            return TO_SEND
        paid = status in IN_FLIGHT or status == JobStatus.DOWNLOADING
        return IN_FLIGHT_NAME if paid else status.value

    return status_of


@click.command(short_help=command_summary("schema"))
def schema() -> None:
    """Print the JSON Schema of the YAML manifest, for editors that complete and check it."""
    click.echo(json.dumps(manifest_json_schema(), indent=2))


def _existing(manifest: Path) -> Path:
    if not manifest.is_file():
        raise UsageError(f"manifest not found: {manifest}")
    return manifest
