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
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import SecretStr, ValidationError

from batchgen import pipeline, runlock
from batchgen.errors import (
    EXIT_INTERRUPTED,
    EXIT_JOBS_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    BatchgenError,
    ManifestInvalid,
    UsageError,
)
from batchgen.export import export_run
from batchgen.gallery import build_gallery
from batchgen.interrupts import terminate_like_interrupt
from batchgen.media.summary import summarize
from batchgen.output import STATE_NAME, UNKNOWN_ADVICE
from batchgen.plan import build_plan
from batchgen.pricing import load_prices
from batchgen.progress import MODES, LineProgress, counted, progress_for
from batchgen.report import build_report, load_report, write_report
from batchgen.report import render as render_report
from batchgen.resolve import ResolveOptions, check_items, resolve_manifest
from batchgen.runner import RunOutcome
from batchgen.schema import manifest_json_schema
from batchgen.settings import Settings
from batchgen.status import JobStatus
from batchgen.store import Store
from batchgen.unknown import resend_risk
from batchgen.verify import jobs_to_repair, verify_run

F = TypeVar("F", bound=Callable[..., Any])

MANIFEST = click.argument("manifest", type=click.Path(path_type=Path, dir_okay=False))
RUN_DIR = click.argument(
    "run_dir", metavar="RUN", type=click.Path(path_type=Path, file_okay=False, exists=True)
)
RUN_LOG = "run.log"  # every run appends its progress lines and notices here
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
        *provider_options(),
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
            "--progress",
            type=click.Choice(MODES),
            default="auto",
            show_default=True,
            help="auto: a bar on a terminal, else a plain line every 10 s; json: a JSON object "
            "per line; off: nothing but the summary.",
        ),
        click.option(
            "--no-progress", "progress", flag_value="off", help="The same as --progress off."
        ),
    ]
    return functools.reduce(lambda f, option: option(f), reversed(options), command)


def provider_options() -> list[Callable[[F], F]]:
    """The provider, where it is, and its credentials (best given in the environment)."""
    return [
        click.option(
            "--provider",
            type=click.Choice(["cometapi", "kling"]),
            envvar="BATCHGEN_PROVIDER",
            default="cometapi",
            show_default=True,
            help="cometapi: CometAPI's Kling relay; kling: Kling's own API "
            "(env BATCHGEN_PROVIDER).",
        ),
        click.option(
            "--base-url",
            envvar="BATCHGEN_BASE_URL",
            help="API base URL [default: the provider's: https://api.cometapi.com, "
            "https://api-singapore.klingai.com] (env BATCHGEN_BASE_URL).",
        ),
        click.option(
            "--api-key",
            envvar="COMETAPI_KEY",
            show_envvar=True,
            help="CometAPI key (prefer the COMETAPI_KEY environment variable).",
        ),
        click.option(
            "--access-key",
            envvar="KLING_ACCESS_KEY",
            show_envvar=True,
            help="Kling access key (prefer the KLING_ACCESS_KEY environment variable).",
        ),
        click.option(
            "--secret-key",
            envvar="KLING_SECRET_KEY",
            show_envvar=True,
            help="Kling secret key (prefer the KLING_SECRET_KEY environment variable).",
        ),
    ]


def provider_flags(command: F) -> F:
    return functools.reduce(lambda f, option: option(f), reversed(provider_options()), command)


SECRET_FLAGS = ("api_key", "access_key", "secret_key", "callback_secret")


def settings_from(**flags: Any) -> Settings:
    secrets = {name: flags.pop(name, None) for name in SECRET_FLAGS}
    hidden = {name: SecretStr(value) for name, value in secrets.items() if value}
    try:
        return Settings(**hidden, **flags)
    except ValidationError as exc:
        problems = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise click.UsageError(problems) from None


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
    "--budget",
    type=click.FloatRange(min=0),
    metavar="USD",
    help="Submit only while spent + committed money stays within this; then finish what is "
    "paid for and stop (exit 3). A larger budget resumes.",
)
@click.option(
    "--prices", type=click.Path(path_type=Path, dir_okay=False, exists=True), help=PRICES_HELP
)
@click.option(
    "--locked",
    is_flag=True,
    help="Refuse to run unless the manifest resolves to the jobs in RUN/manifest.lock.json.",
)
@click.option(
    "--callback-url",
    metavar="URL",
    help="Sent with every create: the provider POSTs each status change there. Needs --listen; "
    "expose the listener at this URL with a reverse proxy or a tunnel.",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Receive the callbacks here, inside this run (nothing listens unless asked).",
)
@click.option(
    "--callback-secret",
    envvar="BATCHGEN_CALLBACK_SECRET",
    show_envvar=True,
    help="Refuse callbacks without this secret's Standard-Webhooks signature.",
)
def run(manifest: Path, **flags: Any) -> None:
    """Run every job of MANIFEST (resuming where an earlier run stopped)."""
    settings = settings_from(**flags)
    sys.exit(_run(manifest, settings))


def _run(manifest: Path, settings: Settings) -> int:
    pipeline.credentials(settings)
    if settings.prices is not None:
        load_prices(settings.prices)  # a malformed price file is refused before anything
    with pipeline.prepare(manifest, settings) as prepared:
        loaded = prepared.loaded
        jobs = (
            f"{loaded.jobs} jobs (manifest unchanged since it was loaded)"
            if loaded.reused
            else f"{loaded.jobs} jobs ({loaded.new} new, {loaded.known} known)"
        )
        click.echo(f"{prepared.manifest.name}: {jobs}; state {prepared.store.path}", err=True)
        prepared.run_dir.mkdir(parents=True, exist_ok=True)
        with open(prepared.run_dir / RUN_LOG, "a", encoding="utf-8") as log:
            listeners = [LineProgress(log), progress_for(settings.progress)]
            outcome = pipeline.run_async(pipeline.execute, prepared, settings, listeners)
        write_report(prepared.run_dir, build_report(prepared.store, outcome))
        unknown = [job.row_id for job in prepared.store.unknown_in_job_order()]
        click.echo(_summary(outcome, prepared.run_dir, unknown, manifest), err=True)
    return outcome.exit_code


def _summary(
    outcome: RunOutcome, run_dir: Path, unknown: list[str], manifest: Path | None = None
) -> str:
    c = outcome.counts
    total = sum(c.values())
    per_job = outcome.api_calls / total if total else 0.0
    head = (
        "interrupted: "
        if outcome.stopped == "interrupted"
        else "stopped: "
        if outcome.stopped
        else ""
    )
    line = (
        f"{head}{c[JobStatus.DONE]} done, {c[JobStatus.FAILED]} failed, "
        f"{c[JobStatus.UNKNOWN]} unknown, {outcome.unfinished} unfinished of {total} in "
        f"{outcome.wall_seconds:.1f} s ({outcome.api_calls} API calls, {per_job:.2f}/job); "
        f"index: {run_dir / 'index.jsonl'}"
    )
    if c[JobStatus.FAILED] or unknown:
        line += f"\nfailures and their reasons: {run_dir / 'failed.jsonl'} (or `batchgen status`)"
    if unknown:
        rows = ", ".join(unknown[:10]) + (
            f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        )
        advice = UNKNOWN_ADVICE.format(row="ROW").replace("MANIFEST", str(manifest or "MANIFEST"))
        line += (
            f"\n{len(unknown)} unknown job(s), whose create the provider may have accepted: "
            f"{rows}. Nothing sends them again. For each, {advice}"
        )
    if outcome.stop_reason and outcome.stopped != "interrupted":
        line += f"\n{outcome.stop_reason}"
        if outcome.stopped == "account":
            line += "\nFix that, then run the same command again to resume."
    elif outcome.stopped == "interrupted" or outcome.unfinished:
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


VIDEO_FAULTS = {
    "html": "downloads answered 200 with an HTML page instead of the video",
    "black": "videos whose every frame is black",
    "frozen": "videos whose every frame is the same",
    "short": "videos far shorter than asked",
    "undecodable": "videos whose frame data is mostly garbage",
    "aspect": "videos of another shape than the input image",
    "mute": "videos without audio although sound was asked",
    "missing-video": "tasks that succeed with no video in their result",
}


def video_fault_options(command: F) -> F:
    """--html-rate, --black-rate, ...: the simulator's video faults."""
    for name, meaning in reversed(VIDEO_FAULTS.items()):
        command = click.option(
            f"--{name}-rate",
            type=float,
            default=0.0,
            show_default=True,
            help=f"Share of {meaning}.",
        )(command)
    return command


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    type=click.Choice(["127.0.0.1", "localhost", "::1"]),
    help="Loopback address to listen on (the simulator never listens elsewhere).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--profile",
    type=click.Choice(["cometapi", "kling"]),
    default="cometapi",
    show_default=True,
    help="Provider to imitate: CometAPI's relay (/kling/v1/…, bearer key) or Kling's own API "
    "(/v1/…, JWT, list and external-id look-up).",
)
@click.option(
    "--latency",
    type=(float, float),
    default=(1.0, 3.0),
    show_default=True,
    help="Generation time range in seconds (min max).",
)
@click.option(
    "--slots", type=int, default=4, show_default=True, help="Concurrent tasks before 1303."
)
@click.option("--rpm", type=int, help="Answer 1302 above this many API requests a minute.")
@click.option("--api-key", help="cometapi: the only bearer key accepted [default: any].")
@click.option(
    "--access-key",
    default="sim-access",
    show_default=True,
    help="kling: the access key a JWT must name as `iss` (a test value).",
)
@click.option(
    "--secret-key",
    default="sim-secret",
    show_default=True,
    help="kling: the HS256 secret JWTs are signed with (a test value).",
)
@click.option("--account-error", type=int, help="Answer every create with this code (1000-1304).")
@click.option(
    "--fail-rate", type=float, default=0.0, show_default=True, help="Share of failed generations."
)
@click.option(
    "--error-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of API requests answered 5xx without being processed.",
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
    "--gateway-timeout-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of creates processed, then answered 524 with an HTML page.",
)
@click.option(
    "--malformed-answer-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of accepted creates answered 200 with cut-off JSON or an HTML page.",
)
@click.option(
    "--slow-rate", type=float, default=0.0, show_default=True, help="Share of slow answers."
)
@click.option(
    "--slow-seconds",
    type=float,
    default=5.0,
    show_default=True,
    help="How late a slow answer comes.",
)
@click.option(
    "--response-delay",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds added to every API answer.",
)
@click.option(
    "--retry-after",
    type=int,
    help="Seconds in a Retry-After header that about half the throttling 429s carry.",
)
@click.option(
    "--not-found-grace",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds a new task answers 'not found' (a lagging store).",
)
@click.option(
    "--updated-at-mode",
    type=click.Choice(["task", "query"]),
    default="task",
    show_default=True,
    help="updated_at: when the task last changed, or when it was queried.",
)
@click.option(
    "--truncate-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of downloads cut short.",
)
@click.option("--url-ttl", type=float, help="Seconds before a video URL expires [default: never].")
@click.option("--video-bytes", type=int, help="Pad every video to about this many bytes.")
@click.option("--callback-secret", help="Sign callbacks (Standard Webhooks) with this secret.")
@click.option(
    "--callback-drop-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of status-change callbacks never sent.",
)
@click.option(
    "--callback-delay",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds between a status change and its callback.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for latencies, ids and faults."
)
@video_fault_options
def simulate(host: str, port: int, **options: Any) -> None:
    """Serve the Kling simulator on a loopback port until Ctrl-C."""
    from batchgen.simulator import PortUnavailable, SimulatorConfig, serve

    try:
        config = SimulatorConfig(**options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        serve(config, host=host, port=port)
    except PortUnavailable as exc:
        raise UsageError(f"{exc}; choose another with --port") from None


OUTPUT_OPTION = click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("output"),
    show_default=True,
    help="Folder that holds one sub-folder per run.",
)


@cli.command()
@click.argument("target", type=click.Path(path_type=Path, exists=True))
@OUTPUT_OPTION
@click.option("--limit", type=int, default=20, show_default=True, help="Failures to list.")
def status(target: Path, output: Path, limit: int) -> None:
    """Counts by status, why each failed or unknown job is so, and QA findings (MANIFEST, RUN
    or STATE)."""
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
        for i, job in enumerate(store.unknown_in_job_order()):
            if i == limit:
                click.echo(f"... and {counts[JobStatus.UNKNOWN] - limit} more unknown")
                break
            click.echo(f"unknown {job.row_id} ({job.job_id}): {job.last_error}")
        if counts[JobStatus.UNKNOWN]:
            click.echo("to resolve an unknown job: " + UNKNOWN_ADVICE.format(row="ROW"))
        for line in summarize(store, limit).lines():
            click.echo(line)


@cli.command()
@MANIFEST
@OUTPUT_OPTION
@click.option("--failed", "all_failed", is_flag=True, help="Retry every failed job.")
@click.option(
    "--unknown",
    "all_unknown",
    is_flag=True,
    help="Send every unknown job again (each may then be paid twice).",
)
@click.option("--job", "job_ids", multiple=True, help="Retry this job (id or row id); repeatable.")
@click.option("--yes", is_flag=True, help="Do not ask before sending unknown jobs again.")
def retry(
    manifest: Path,
    output: Path,
    all_failed: bool,
    all_unknown: bool,
    job_ids: tuple[str, ...],
    yes: bool,
) -> None:
    """Put failed (or unknown) jobs of MANIFEST's run back to pending; the next `run` sends
    them. A failed job whose paid task is still at the provider is followed again instead."""
    if not (all_failed or all_unknown or job_ids):
        raise click.UsageError("say which jobs: --failed, --unknown, or --job ID (repeatable)")
    state = _state_of(manifest, output)
    with runlock.holding(state, "retry"), Store.open(state) as store:
        chosen = store.resolve_job_ids(job_ids) if job_ids else None
        failed = store.reset_for_retry(chosen) if all_failed or job_ids else 0
        unknown = 0
        if all_unknown or job_ids:
            unknown = _resend_unknown(store, chosen, yes)
    again = f"`batchgen run {manifest}{_output_flag(output)}`"
    click.echo(f"{failed + unknown} job(s) will be tried again by the next {again}")
    if job_ids and not failed + unknown:
        click.echo("(only failed and unknown jobs can be retried; see `batchgen status`)")


def _resend_unknown(store: Store, chosen: list[str] | None, yes: bool) -> int:
    risk = resend_risk(store, chosen)
    if not risk.jobs:
        return 0
    money = f"${risk.usd:,.2f}" + (f" (+{risk.unpriced} unpriced)" if risk.unpriced else "")
    click.echo(
        f"{risk.jobs} unknown job(s) may already have been accepted by the provider: sending "
        f"them again may pay twice for them, up to {money} more at the price table.",
        err=True,
    )
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("not sent again: confirm with --yes (no terminal to ask on)")
        if not click.confirm("Send them again?", err=True):
            click.echo("nothing changed", err=True)
            return 0
    return store.reset_unknown(chosen)


def _output_flag(output: Path) -> str:
    return "" if output == Path("output") else f" -o {output}"


@cli.command()
@MANIFEST
@click.option("--job", "job", required=True, help="The job (row id or job id) the task is for.")
@click.option(
    "--task", "task_id", required=True, help="The provider's task id, as its dashboard shows it."
)
@run_options
def adopt(manifest: Path, job: str, task_id: str, **flags: Any) -> None:
    """Record a task you found at the provider as the task of an unknown job; the next `run`
    downloads it. The task is asked for first; its external id, where echoed, must match."""
    settings = settings_from(**flags)
    pipeline.credentials(settings)
    with pipeline.prepare(manifest, settings, "adopt") as prepared:
        item = pipeline.run_async(pipeline.adopt_task, prepared.store, settings, job, task_id)
    click.echo(
        f"adopted {item.row_id}: task {item.task_id} ({item.task_status}); "
        f"`batchgen run {manifest}{_output_flag(settings.output)}` downloads it"
    )


@cli.command()
@MANIFEST
@run_options
def reconcile(manifest: Path, **flags: Any) -> None:
    """Adopt tasks the provider has for MANIFEST's run that the state does not know."""
    settings = settings_from(**flags)
    pipeline.credentials(settings)
    with pipeline.prepare(manifest, settings, "reconcile") as prepared:
        adopted = pipeline.run_async(pipeline.reconcile_run, prepared, settings)
    for item in adopted:
        click.echo(f"adopted {item.row_id}: task {item.task_id} ({item.task_status})")
    click.echo(
        f"{len(adopted)} task(s) adopted; "
        f"`batchgen run {manifest}{_output_flag(settings.output)}` downloads them"
    )


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
    """Dry run: jobs by model, tier and duration, low / expected / high cost and wall time.
    Submits nothing."""
    table = load_prices(prices)
    resolved = resolve_manifest(_existing(manifest))
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
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds to wait for one API answer (with --repair).",
)
@provider_flags
def verify(
    run_dir: Path,
    state: Path | None,
    as_json: bool,
    repair: bool,
    **flags: Any,
) -> None:
    """Re-hash every video of RUN against the index and the state (exit 1 if any is missing,
    corrupted or unexpected)."""
    found = verify_run(run_dir, state)
    if repair and jobs_to_repair(found):
        state_path = state or run_dir / STATE_NAME
        settings = settings_from(output=run_dir.parent, state=state_path, **flags)
        pipeline.credentials(settings)
        with runlock.holding(state_path, "verify --repair"), Store.open(state_path) as store:
            outcome = pipeline.run_async(
                pipeline.repair, store, run_dir, jobs_to_repair(found), settings
            )
        click.echo(_summary(outcome, run_dir, []), err=True)
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
    terminate_like_interrupt()
    try:
        code = _exit_code(argv)
    except BrokenPipeError:  # the reader of our output went away: nothing more to say
        _silence_stderr()
        code = EXIT_INTERRUPTED
    sys.exit(code)


def _exit_code(argv: list[str] | None) -> int:
    try:
        cli.main(args=argv, prog_name="batchgen", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return EXIT_INTERRUPTED
    except ManifestInvalid as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        more = exc.total - len(exc.problems)
        if more > 0:
            click.echo(f"... and {more} more problem(s)", err=True)
        click.echo(f"{exc}; nothing was submitted", err=True)
        return exc.exit_code
    except BatchgenError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _silence_stderr() -> None:
    """Point stderr at /dev/null, so that nothing more (the interpreter's last flush
    included) fails on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stderr.fileno())
    os.close(devnull)


if __name__ == "__main__":
    main()
