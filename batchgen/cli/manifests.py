"""The commands that read a manifest without running it: validate, plan, schema."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from batchgen.cli.options import (
    Finite,
    concurrency_option,
    json_option,
    manifest_argument,
    prices_option,
    url_timeout_option,
)
from batchgen.errors import EXIT_OK, EXIT_USAGE, UsageError
from batchgen.manifest.resolve import (
    ResolveOptions,
    ValidationReport,
    check_items,
    resolve_manifest,
)
from batchgen.manifest.schema import manifest_json_schema
from batchgen.money.plan import build_plan
from batchgen.money.pricing import load_prices
from batchgen.progress import counted


@click.command(short_help="Check every row of a manifest; submits nothing.")
@manifest_argument
@click.option(
    "--max-problems",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Problems to list (all are counted).",
)
@click.option("--inline-urls", is_flag=True, help="Download URL images to check them too.")
@url_timeout_option
def validate(manifest: Path, max_problems: int, inline_urls: bool, url_timeout: float) -> int:
    """Check every row of MANIFEST without submitting anything: every problem of every row in
    one pass (exit 2 if any)."""
    options = ResolveOptions(
        inline_urls=inline_urls, max_problems=max_problems, url_deadline=url_timeout
    )
    resolved = resolve_manifest(_existing(manifest), options)
    result = check_items(counted(resolved.iter_jobs(), "checking"), max_problems)
    for problem in result.problems:
        click.echo(f"error: {problem}")
    more = result.total_problems - len(result.problems)
    if more:
        click.echo(f"... and {more} more problem(s)")
    if not result.ok:
        click.echo(_refusal(manifest, result, max_problems), err=True)
        return EXIT_USAGE
    click.echo(f"{manifest}: ok, {result.jobs} job(s)")
    return EXIT_OK


def _refusal(manifest: Path, result: ValidationReport, max_problems: int) -> str:
    rows = f"{len(result.invalid_rows)}{'+' if len(result.invalid_rows) >= max_problems else ''}"
    return (
        f"{manifest}: {result.total_problems} problem(s) in {rows} row(s); "
        f"{result.jobs} valid job(s); nothing was submitted"
    )


@click.command(short_help="Dry run: jobs, cost and wall time; submits nothing.")
@manifest_argument
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
def plan(
    manifest: Path, concurrency: int, generation_seconds: float, prices: Path | None, as_json: bool
) -> int:
    """Dry run of MANIFEST: jobs by model, tier and duration, low / expected / high cost and
    wall time at --concurrency. Submits nothing."""
    table = load_prices(prices)
    resolved = resolve_manifest(_existing(manifest))
    jobs = counted(resolved.iter_jobs(), "planning")
    summary = build_plan(jobs, concurrency, generation_seconds, table)
    click.echo(json.dumps(dataclasses.asdict(summary), indent=2) if as_json else summary.render())
    if summary.problems:
        click.echo(
            f"{summary.problems} problem(s): `batchgen validate {manifest}` lists them", err=True
        )
        return EXIT_USAGE
    return EXIT_OK


@click.command(short_help="Print the manifest's JSON Schema (for editors).")
def schema() -> None:
    """Print the JSON Schema of the YAML manifest, for editors that complete and check it."""
    click.echo(json.dumps(manifest_json_schema(), indent=2))


def _existing(manifest: Path) -> Path:
    if not manifest.is_file():
        raise UsageError(f"manifest not found: {manifest}")
    return manifest
