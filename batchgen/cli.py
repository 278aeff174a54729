"""The `batchgen` command. Each command is a few lines over the library; errors become exit
codes in one place (`main`):

    0  every job done          1  some jobs failed or are unfinished
    2  invalid input or usage  3  stopped by an account-level error (resumable)
    130  interrupted (resumable)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import SecretStr, ValidationError

from batchgen import pipeline
from batchgen.errors import (
    EXIT_JOBS_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    BatchgenError,
    ManifestInvalid,
    UsageError,
)
from batchgen.export import export_run
from batchgen.gallery import build_gallery
from batchgen.kling import DEFAULT_BASE_URL
from batchgen.media.summary import summarize
from batchgen.output import STATE_NAME
from batchgen.plan import build_plan
from batchgen.pricing import load_prices
from batchgen.progress import ProgressBar, counted
from batchgen.report import build_report, load_report, write_report
from batchgen.report import render as render_report
from batchgen.resolve import ResolveOptions, check_items, resolve_manifest
from batchgen.runner import RunOutcome
from batchgen.schema import manifest_json_schema
from batchgen.settings import Settings
from batchgen.status import JobStatus
from batchgen.store import Store
from batchgen.verify import jobs_to_repair, verify_run

F = TypeVar("F", bound=Callable[..., Any])

MANIFEST = click.argument("manifest", type=click.Path(path_type=Path, dir_okay=False))
RUN_DIR = click.argument(
    "run_dir", metavar="RUN", type=click.Path(path_type=Path, file_okay=False, exists=True)
)
PRICES_HELP = "Price table (JSON, same shape as the package's) laid over the built-in one."


def run_options(command: F) -> F:
    """Flags shared by every command that talks to the provider."""
    options = [
        click.option(
            "--output",
            "-o",
            type=click.Path(path_type=Path, file_okay=False),
            default=Path("output"),
            show_default=True,
            help="Folder that holds one sub-folder per run.",
        ),
        click.option(
            "--state",
            type=click.Path(path_type=Path, dir_okay=False),
            help="State file [default: OUTPUT/RUN/state.sqlite].",
        ),
        click.option(
            "--base-url",
            envvar="BATCHGEN_BASE_URL",
            default=DEFAULT_BASE_URL,
            show_default=True,
            help="API base URL (env BATCHGEN_BASE_URL).",
        ),
        click.option(
            "--api-key",
            envvar="COMETAPI_KEY",
            show_envvar=True,
            help="CometAPI key (prefer the COMETAPI_KEY environment variable).",
        ),
        click.option(
            "--concurrency",
            "-c",
            type=click.IntRange(1, 1000),
            default=4,
            show_default=True,
            help="Provider task slots to use at most.",
        ),
        click.option(
            "--rpm",
            type=click.FloatRange(min=0, min_open=True),
            help="Cap on API requests per minute.",
        ),
        click.option(
            "--task-timeout",
            type=click.FloatRange(min=1),
            default=3600.0,
            show_default=True,
            help="Seconds to wait for one generation before reporting it as timed out.",
        ),
        click.option(
            "--request-timeout",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="Seconds to wait for one API answer.",
        ),
        click.option(
            "--skip-invalid",
            is_flag=True,
            help="Run the valid rows and list the invalid ones instead of refusing.",
        ),
        click.option(
            "--inline-urls", is_flag=True, help="Download URL images and send them as base64."
        ),
        click.option("--seed", type=int, help="Seed for retry jitter (reproducible runs)."),
        click.option(
            "--progress/--no-progress",
            default=None,
            help="Show a progress bar [default: when stderr is a terminal].",
        ),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), command)


def settings_from(**flags: Any) -> Settings:
    key = flags.pop("api_key", None)
    try:
        return Settings(api_key=SecretStr(key) if key else None, **flags)
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="batchgen")
def cli() -> None:
    """Bulk image-to-video generation on the Kling API (through CometAPI).

    A manifest of image + prompt rows becomes jobs; jobs are submitted within your account's
    concurrency slots, followed to the end and downloaded into OUTPUT/RUN/. Every job's state
    is kept in SQLite, so any run can be stopped and resumed without paying twice.
    """


@cli.command()
@MANIFEST
@run_options
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0),
    metavar="USD",
    help="Refuse to start if the batch's estimated cost is above this.",
)
@click.option(
    "--prices", type=click.Path(path_type=Path, dir_okay=False, exists=True), help=PRICES_HELP
)
@click.option(
    "--locked",
    is_flag=True,
    help="Refuse to run unless the manifest resolves to the jobs in RUN/manifest.lock.json.",
)
def run(manifest: Path, **flags: Any) -> None:
    """Run every job of MANIFEST (resuming where an earlier run stopped)."""
    settings = settings_from(**flags)
    sys.exit(_run(manifest, settings))


def _run(manifest: Path, settings: Settings) -> int:
    prepared = pipeline.prepare(manifest, settings)
    with prepared.store:
        loaded = prepared.loaded
        jobs = (
            f"{loaded.jobs} jobs (manifest unchanged since it was loaded)"
            if loaded.reused
            else f"{loaded.jobs} jobs ({loaded.new} new, {loaded.known} known)"
        )
        click.echo(f"{prepared.manifest.name}: {jobs}; state {prepared.store.path}", err=True)
        bar = ProgressBar(enabled=settings.progress)
        outcome = pipeline.run_async(pipeline.execute, prepared, settings, [bar])
        write_report(prepared.run_dir, build_report(prepared.store, outcome))
        click.echo(_summary(outcome, prepared.run_dir), err=True)
    return outcome.exit_code


def _summary(outcome: RunOutcome, run_dir: Path) -> str:
    c = outcome.counts
    total = sum(c.values())
    unfinished = total - c[JobStatus.DONE] - c[JobStatus.FAILED]
    per_job = outcome.api_calls / total if total else 0.0
    head = {"account": "stopped: ", "interrupted": "interrupted: "}.get(outcome.stopped or "", "")
    line = (
        f"{head}{c[JobStatus.DONE]} done, {c[JobStatus.FAILED]} failed, {unfinished} "
        f"unfinished of {total} in {outcome.wall_seconds:.1f} s "
        f"({outcome.api_calls} API calls, {per_job:.2f}/job); index: {run_dir / 'index.jsonl'}"
    )
    if c[JobStatus.FAILED]:
        line += f"\nfailures and their reasons: {run_dir / 'failed.jsonl'} (or `batchgen status`)"
    if outcome.stop_reason and outcome.stopped == "account":
        line += f"\n{outcome.stop_reason}\nFix that, then run the same command again to resume."
    elif outcome.stopped == "interrupted" or unfinished:
        line += "\nRun the same command again to resume."
    return line


@cli.command()
@click.argument(
    "manifest", type=click.Path(path_type=Path, dir_okay=False), default=Path("manifests/demo.yaml")
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("output"),
    show_default=True,
)
@click.option(
    "--latency",
    type=float,
    default=2.0,
    show_default=True,
    help="Mean simulated generation time in seconds.",
)
@click.option(
    "--slots", type=int, default=4, show_default=True, help="Simulated account concurrency."
)
def demo(manifest: Path, output: Path, latency: float, slots: int) -> None:
    """Run MANIFEST against the built-in simulator (started and stopped here)."""
    from batchgen.simulator import SimulatorConfig, running_simulator

    config = SimulatorConfig(seed=7, latency=(latency * 0.5, latency * 1.5), slots=slots)
    with running_simulator(config) as sim:
        click.echo(f"simulator listening on {sim.base_url}", err=True)
        settings = Settings(
            output=output,
            base_url=sim.base_url,
            concurrency=slots,
            api_key=SecretStr("sk-simulator"),
        )
        code = _run(manifest, settings)
    sys.exit(code)


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    type=click.Choice(["127.0.0.1", "localhost", "::1"]),
    help="Loopback only.",
)
@click.option("--port", type=int, default=8765, show_default=True)
@click.option(
    "--latency",
    type=(float, float),
    default=(1.0, 3.0),
    show_default=True,
    help="Generation time range in seconds (min max).",
)
@click.option("--slots", type=int, default=4, show_default=True)
@click.option("--rpm", type=int, help="Answer 1302 above this many requests a minute.")
@click.option("--fail-rate", type=float, default=0.0, show_default=True)
@click.option("--error-rate", type=float, default=0.0, show_default=True, help="Share of 5xx.")
@click.option(
    "--truncate-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of downloads cut short.",
)
@click.option(
    "--reset-before-accept-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of creates dropped before the task is recorded.",
)
@click.option(
    "--reset-after-accept-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of creates recorded whose answer is then dropped.",
)
@click.option(
    "--slow-rate", type=float, default=0.0, show_default=True, help="Share of slow answers."
)
@click.option("--slow-seconds", type=float, default=5.0, show_default=True)
@click.option("--url-ttl", type=float, help="Seconds before a video URL expires.")
@click.option(
    "--list-endpoint/--no-list-endpoint",
    default=True,
    show_default=True,
    help="Serve the task list (some relays do not).",
)
@click.option("--account-error", type=int, help="Answer every create with this code (1000-1304).")
@click.option("--seed", type=int, default=0, show_default=True)
def simulate(host: str, port: int, **options: Any) -> None:
    """Serve the Kling simulator on a loopback port until Ctrl-C."""
    from batchgen.simulator import SimulatorConfig, serve

    try:
        config = SimulatorConfig(**options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    serve(config, host=host, port=port)


@cli.command()
@click.argument("target", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("output"),
    show_default=True,
)
@click.option("--limit", type=int, default=20, show_default=True, help="Failures to list.")
def status(target: Path, output: Path, limit: int) -> None:
    """Counts by status, failure reasons and QA findings of a run (MANIFEST, run folder or
    state file)."""
    with Store.open(_state_of(target, output)) as store:
        counts = store.counts()
        for state, n in counts.items():
            click.echo(f"{state.value:<12}{n:>8}")
        click.echo(f"{'total':<12}{sum(counts.values()):>8}")
        for i, job in enumerate(store.failed_in_job_order()):
            if i == limit:
                click.echo(f"... and {counts[JobStatus.FAILED] - limit} more")
                break
            click.echo(f"failed {job.row_id} ({job.job_id}): [{job.error_kind}] {job.last_error}")
        for line in summarize(store, limit).lines():
            click.echo(line)


@cli.command()
@MANIFEST
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("output"),
    show_default=True,
)
@click.option("--failed", "all_failed", is_flag=True, help="Retry every failed job.")
@click.option("--job", "job_ids", multiple=True, help="Retry this job (id or row id); repeatable.")
def retry(manifest: Path, output: Path, all_failed: bool, job_ids: tuple[str, ...]) -> None:
    """Put failed jobs of MANIFEST's run back to pending (the next `run` submits them)."""
    if not all_failed and not job_ids:
        raise click.UsageError("say which jobs: --failed, or --job ID (repeatable)")
    with Store.open(_state_of(manifest, output)) as store:
        chosen = None if all_failed else store.resolve_job_ids(job_ids)
        n = store.reset_for_retry(chosen)
    click.echo(f"{n} job(s) will be tried again by the next `batchgen run {manifest}`")


@cli.command()
@MANIFEST
@run_options
def reconcile(manifest: Path, **flags: Any) -> None:
    """Adopt tasks the provider has for MANIFEST's run that the state does not know."""
    settings = settings_from(**flags)
    prepared = pipeline.prepare(manifest, settings)
    with prepared.store:
        adopted = pipeline.run_async(pipeline.reconcile_run, prepared, settings)
    for item in adopted:
        click.echo(f"adopted {item.row_id}: task {item.task_id} ({item.task_status})")
    click.echo(f"{len(adopted)} task(s) adopted; `batchgen run {manifest}` downloads them")


@cli.command()
@RUN_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def report(run_dir: Path, as_json: bool) -> None:
    """Summary of a run folder: counts, failures by reason, cost, time, slot use."""
    with Store.open(_state_of(run_dir, run_dir.parent)) as store:
        current = build_report(store)
    last = load_report(run_dir)
    if last and "last_run" in last:
        current["last_run"] = last["last_run"]
    click.echo(json.dumps(current, indent=2) if as_json else render_report(current))


@cli.command()
@MANIFEST
@click.option(
    "--max-problems",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Problems to list (all are counted).",
)
@click.option("--inline-urls", is_flag=True, help="Download URL images to check them too.")
def validate(manifest: Path, max_problems: int, inline_urls: bool) -> None:
    """Check every row of MANIFEST without submitting anything (exit 2 if any is invalid)."""
    options = ResolveOptions(inline_urls=inline_urls, max_problems=max_problems)
    resolved = resolve_manifest(_existing(manifest), options)
    result = check_items(counted(resolved.iter_jobs(), "checking"), max_problems)
    for problem in result.problems:
        click.echo(f"error: {problem}")
    more = result.total_problems - len(result.problems)
    if more:
        click.echo(f"... and {more} more problem(s)")
    if not result.ok:
        click.echo(
            f"{manifest}: {result.total_problems} problem(s) in {len(result.invalid_rows)}"
            f"{'+' if len(result.invalid_rows) >= max_problems else ''} row(s); "
            f"{result.jobs} valid job(s); nothing was submitted",
            err=True,
        )
        sys.exit(EXIT_USAGE)
    click.echo(f"{manifest}: ok, {result.jobs} job(s)")


@cli.command()
@MANIFEST
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 1000),
    default=4,
    show_default=True,
    help="Provider task slots the run will use.",
)
@click.option(
    "--generation-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Assumed time of one generation.",
)
@click.option(
    "--prices", type=click.Path(path_type=Path, dir_okay=False, exists=True), help=PRICES_HELP
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    manifest: Path, concurrency: int, generation_seconds: float, prices: Path | None, as_json: bool
) -> None:
    """Dry run: jobs by model, mode and duration, estimated cost and wall time. Submits nothing."""
    resolved = resolve_manifest(_existing(manifest))
    table = load_prices(prices)
    jobs = counted(resolved.iter_jobs(), "planning")
    summary = build_plan(jobs, concurrency, generation_seconds, table)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(summary), indent=2))
    else:
        click.echo(summary.render())
    if summary.problems:
        click.echo(
            f"{summary.problems} problem(s): `batchgen validate {manifest}` lists them", err=True
        )
        sys.exit(EXIT_USAGE)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the YAML manifest (for editors)."""
    click.echo(json.dumps(manifest_json_schema(), indent=2))


@cli.command()
@RUN_DIR
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(["hf", "csv", "webdataset"]),
    required=True,
    help="hf: metadata.parquet for a `datasets` videofolder; csv: one flat table; "
    "webdataset: tar shards.",
)
@click.option(
    "--output",
    "-o",
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
def export(run_dir: Path, fmt: str, output: Path | None, **options: Any) -> None:
    """Export RUN (a run folder holding index.jsonl) as a dataset."""
    result = export_run(run_dir, fmt, output, **options)
    for row_id in result.skipped:
        click.echo(f"skipped {row_id}: video missing", err=True)
    for row_id, codes in result.excluded:
        click.echo(f"excluded {row_id}: {', '.join(codes)}", err=True)
    click.echo(f"exported {result.count} sample(s) as {result.format} to {result.out_dir}")


@cli.command()
@RUN_DIR
def gallery(run_dir: Path) -> None:
    """Write RUN/gallery.html: every job's video, input, parameters, cost, status and QA
    findings on one page that works offline."""
    built = build_gallery(run_dir)
    click.echo(
        f"{built.cards} card(s), {built.posters} poster(s), {built.thumbnails} input "
        f"thumbnail(s): {built.page.resolve().as_uri()}"
    )


@cli.command()
@RUN_DIR
@click.option(
    "--state",
    type=click.Path(path_type=Path, dir_okay=False),
    help="State file [default: RUN/state.sqlite].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option(
    "--repair",
    is_flag=True,
    help="Download missing and corrupted videos again from the provider (needs the key).",
)
@click.option("--base-url", envvar="BATCHGEN_BASE_URL", default=DEFAULT_BASE_URL, show_default=True)
@click.option("--api-key", envvar="COMETAPI_KEY", show_envvar=True)
def verify(
    run_dir: Path,
    state: Path | None,
    as_json: bool,
    repair: bool,
    base_url: str,
    api_key: str | None,
) -> None:
    """Re-hash every video of RUN against the index and the state (exit 1 if any is missing,
    corrupted or unexpected)."""
    found = verify_run(run_dir, state)
    if repair and jobs_to_repair(found):
        state_path = state or run_dir / STATE_NAME
        settings = settings_from(
            output=run_dir.parent, state=state_path, base_url=base_url, api_key=api_key
        )
        with Store.open(state_path) as store:
            outcome = pipeline.run_async(
                pipeline.repair, store, run_dir, jobs_to_repair(found), settings
            )
        click.echo(_summary(outcome, run_dir), err=True)
        found = verify_run(run_dir, state)
    click.echo(json.dumps(found.as_dict(), indent=2) if as_json else found.render())
    sys.exit(EXIT_OK if found.clean else EXIT_JOBS_FAILED)


def _existing(manifest: Path) -> Path:
    if not manifest.is_file():
        raise UsageError(f"manifest not found: {manifest}")
    return manifest


def _state_of(target: Path, output: Path) -> Path:
    if target.is_dir():
        path = target / STATE_NAME
    elif target.suffix in (".sqlite", ".db"):
        path = target
    else:
        name = pipeline.open_manifest(target, Settings(output=output)).name
        path = output / name / STATE_NAME
    if not path.is_file():
        raise UsageError(f"no state found at {path}: has this manifest been run?")
    return path


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn batchgen's errors into messages and exit codes."""
    try:
        cli.main(args=argv, prog_name="batchgen", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except ManifestInvalid as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        more = exc.total - len(exc.problems)
        if more > 0:
            click.echo(f"... and {more} more problem(s)", err=True)
        click.echo(f"{exc}; nothing was submitted", err=True)
        sys.exit(exc.exit_code)
    except BatchgenError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
