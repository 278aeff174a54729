"""The commands that look at a run's results, each given the run as MANIFEST, RUN or STATE:
report, verify, export, gallery (status has a module of its own: status.py)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from batchgen.cli import command_summary
from batchgen.cli.next_steps import NextSteps
from batchgen.cli.options import (
    database_option,
    json_option,
    output_option,
    provider_options,
    request_timeout_option,
    settings_from,
    target_argument,
)
from batchgen.cli.summary import FetchedAgain, run_summary
from batchgen.errors import EXIT_JOBS_FAILED, EXIT_OK
from batchgen.export import ExportResult, export_run
from batchgen.gallery import build_gallery
from batchgen.media.qa import QaDepth
from batchgen.results.report import build_report, load_report
from batchgen.results.report import render as render_report
from batchgen.results.targets import RunTarget, resolve_target
from batchgen.results.verify import jobs_to_repair, verify_run
from batchgen.state import runlock
from batchgen.state.store import Store


@click.command(short_help=command_summary("report"))
@target_argument
@output_option()
@json_option("the report")
@database_option
def report(target: Path, output: Path, as_json: bool, database: str | None) -> None:
    """Summary of a run: counts, failures by reason, QA findings, cost, money spent and
    committed, and the last run's wall time, slot use and API calls per job."""
    found = resolve_target(target, output, database=database)
    with found.open_state() as store:
        current = build_report(store)
    last = load_report(found.run_dir)
    if last and "last_run" in last:
        current["last_run"] = last["last_run"]
    click.echo(json.dumps(current, indent=2) if as_json else render_report(current))


@click.command(short_help=command_summary("verify"))
@target_argument
@output_option()
@click.option(
    "--state",
    type=click.Path(path_type=Path, dir_okay=False),
    help="State file [default: RUN/state.sqlite].",
)
@json_option("the findings")
@click.option(
    "--repair",
    is_flag=True,
    help="Download missing and corrupted videos again from the provider (needs the key).",
)
@click.option(
    "--qa",
    type=click.Choice(["full", "keyframes"]),
    help="Also check, where they are (no download, no API call), the done videos no check "
    "this deep looked at: full after a run with --qa keyframes or off, keyframes after "
    "--qa off (as `run --qa` describes each). State, sidecars and index get the findings.",
)
@request_timeout_option
@provider_options
@database_option
def verify(
    target: Path,
    output: Path,
    state: Path | None,
    as_json: bool,
    repair: bool,
    qa: QaDepth | None,
    database: str | None,
    **flags: Any,
) -> int:
    """Re-hash every video of a run against its index and its state (exit 1 if any is missing,
    corrupted or unexpected); --repair downloads the missing and corrupted ones again; --qa
    checks again those a shallower check looked at."""
    found = resolve_target(target, output, state, database)
    findings = verify_run(found.run_dir, found.state_elsewhere, database)
    if repair and jobs_to_repair(findings):
        _repair(found, jobs_to_repair(findings), **flags)
        findings = verify_run(found.run_dir, found.state_elsewhere, database)
    if qa is not None:
        _recheck(found, qa, jobs_to_repair(findings))
    click.echo(json.dumps(findings.as_dict(), indent=2) if as_json else findings.render())
    return EXIT_OK if findings.clean else EXIT_JOBS_FAILED


def _recheck(found: RunTarget, qa: QaDepth, skip: list[str]) -> None:
    """Check the done videos no check as deep as `qa` looked at, but the missing or changed
    ones (`skip`), and say how many were and how many of them were flagged."""
    from batchgen import pipeline  # (the checks' modules: only when asked for)

    with _holding(found, "verify --qa") as store:
        checked, flagged = pipeline.run_async(
            pipeline.recheck, store, found.run_dir, qa, frozenset(skip)
        )
    decoded = "their keyframes and P-frames" if qa == "full" else "their keyframes"
    said = f"checked {checked} done videos where they are, decoding {decoded}: {flagged} flagged"
    click.echo(said if checked else f"no done video is owed a {qa} check", err=True)


def _repair(found: RunTarget, job_ids: list[str], **flags: Any) -> None:
    """Download these done jobs' videos again, then say which were."""
    from batchgen import pipeline  # a run's modules: only for a repair, not for every report

    state = found.existing_state()
    if _defaulted("provider"):  # the run's own provider, as its state recorded it
        with found.open_state() as store:
            flags["provider"] = store.get_meta("provider") or flags["provider"]
    elsewhere = {"state": state} if found.database is None else {"database": found.database}
    settings = settings_from(output=found.output, **elsewhere, **flags)
    pipeline.credentials(settings)
    fetched = FetchedAgain(job_ids)
    with _holding(found, "verify --repair") as store:
        outcome = pipeline.run_async(
            pipeline.repair, store, found.run_dir, job_ids, settings, [fetched]
        )
        steps = NextSteps.of_state(found, store)
    click.echo(run_summary(outcome, found.run_dir, steps, [], fetched.rows), err=True)


@contextlib.contextmanager
def _holding(found: RunTarget, command: str) -> Iterator[Store]:
    """The run's state, open, while `command` holds the run (its state and its folder): no
    run works on it meanwhile."""
    state = found.existing_state()
    with (
        runlock.holding(state, command, found.database),
        runlock.holding_folder(found.run_dir, state, command),
        found.open_state() as store,
    ):
        yield store


def _defaulted(name: str) -> bool:
    """Whether the option `name` was left at its default (neither flag nor environment)."""
    source = click.get_current_context().get_parameter_source(name)
    return source is click.core.ParameterSource.DEFAULT


@click.command(short_help=command_summary("export"))
@target_argument
@output_option("--runs", dest="runs")
@click.option(
    "--format",
    "-f",
    "fmt",
    metavar="FORMAT",
    type=click.Choice(["hf", "csv", "webdataset"]),
    required=True,
    help="hf: metadata.parquet for a `datasets` videofolder; csv: one flat table; "
    "webdataset: tar shards.",
)
@click.option(
    "--output",
    "-o",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write [default: RUN/export/FORMAT].",
)
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Samples per webdataset shard.",
)
@click.option("--skip-missing", is_flag=True, help="Leave out jobs whose video is missing.")
@click.option(
    "--exclude-flagged", is_flag=True, help="Leave out videos with QA findings (`batchgen status`)."
)
@json_option("what was exported")
@click.option(
    "--force",
    is_flag=True,
    help="Write into a folder that holds other files too (none is deleted or replaced).",
)
@database_option
def export(
    target: Path,
    runs: Path,
    fmt: str,
    out_dir: Path | None,
    as_json: bool,
    database: str | None,
    **options: Any,
) -> None:
    """Export a run's finished videos as a dataset, each checked against its sha256. Here
    `-o` is where the export goes (a new folder, or one holding only an earlier export; never
    the run folder); `--runs` is the folder holding MANIFEST's run. With --database, the
    finished jobs are the run's in that database: every worker's."""
    found = resolve_target(target, runs, database=database)
    state = found.state_elsewhere
    result = export_run(found.run_dir, fmt, out_dir, state=state, database=database, **options)
    if as_json:
        click.echo(json.dumps(export_json(result), indent=2))
        return
    for row_id in result.skipped:
        click.echo(f"skipped {row_id}: video missing", err=True)
    for row_id, codes in result.excluded:
        click.echo(f"excluded {row_id}: {', '.join(codes)}", err=True)
    if result.without_inputs:
        click.echo(
            f"{result.without_inputs} sample(s) without an input image file: the provider "
            "fetched it from its URL (--inline-urls sends, and keeps, the bytes)",
            err=True,
        )
    click.echo(f"exported {result.count} sample(s) as {result.format} to {result.out_dir}")


def export_json(result: ExportResult) -> dict[str, Any]:
    """What `export --json` prints."""
    return {
        "format": result.format,
        "out_dir": str(result.out_dir),
        "exported": result.count,
        "files": len(result.files),
        "skipped_missing": list(result.skipped),
        "excluded_flagged": [{"row_id": row, "qa": list(codes)} for row, codes in result.excluded],
        "without_inputs": result.without_inputs,
    }


@click.command(short_help=command_summary("gallery"))
@target_argument
@output_option()
@json_option("where the page is and what it shows")
@database_option
def gallery(target: Path, output: Path, as_json: bool, database: str | None) -> None:
    """Write gallery.html in the run's folder: every job's video, input, parameters, cost,
    status and QA findings on one page that works offline. With --database, every job of the
    run in that database, whichever worker did it."""
    found = resolve_target(target, output, database=database)
    advice = None
    if database is not None or found.state.is_file():
        with found.open_state() as store:
            advice = NextSteps.of_state(found, store).unknown_advice
    built = build_gallery(found.run_dir, advice=advice, database=database)
    if as_json:
        shown = {"page": str(built.page.resolve()), "cards": built.cards}
        shown |= {"posters": built.posters, "thumbnails": built.thumbnails}
        click.echo(json.dumps(shown, indent=2))
        return
    click.echo(
        f"{built.cards} card(s), {built.posters} poster(s), {built.thumbnails} input "
        f"thumbnail(s): {built.page.resolve().as_uri()}"
    )
