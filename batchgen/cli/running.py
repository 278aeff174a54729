"""The commands that run jobs or settle them: run, demo, retry, adopt, reconcile."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from batchgen import load, pipeline
from batchgen.cli import command_summary
from batchgen.cli.next_steps import NextSteps
from batchgen.cli.options import (
    Finite,
    compose,
    database_option,
    latency_option,
    manifest_argument,
    output_option,
    prices_option,
    provider_choice,
    run_options,
    settings_from,
    settle_options,
    target_argument,
)
from batchgen.cli.summary import FetchedAgain, run_summary
from batchgen.demo import DEMO_MANIFEST, demo_settings, demo_simulator
from batchgen.errors import EXIT_JOBS_FAILED, UsageError
from batchgen.events import Listener
from batchgen.money.pricing import load_prices
from batchgen.progress import LineProgress, progress_for, say
from batchgen.providers.task import task_id_problem
from batchgen.results.overview import evidence_lines
from batchgen.results.report import build_report, write_report
from batchgen.results.targets import resolve_target
from batchgen.runner import RunOutcome
from batchgen.runner.sharing import SharedAccount
from batchgen.settings import ProviderName, Settings
from batchgen.settle import nothing_to_retry, resend_risk
from batchgen.state import runlock
from batchgen.state.store import Store

RUN_LOG = "run.log"  # every run appends its progress lines and notices here

money_options = compose(
    click.option(
        "--max-cost",
        type=Finite(min=0),
        metavar="USD",
        help="Refuse to start if the batch's estimated cost is above this.",
    ),
    click.option(
        "--budget",
        type=Finite(min=0),
        metavar="USD",
        help="Submit only while spent + committed money stays within this; then finish what is "
        "paid for and stop (exit 3). A larger budget resumes.",
    ),
    prices_option,
)

callback_options = compose(
    click.option(
        "--callback-url",
        metavar="URL",
        help="Sent with every create: the provider POSTs each status change there. Needs "
        "--listen; expose the listener at this URL with a reverse proxy or a tunnel.",
    ),
    click.option(
        "--listen",
        metavar="HOST:PORT",
        help="Receive the callbacks here, inside this run (nothing listens unless asked).",
    ),
    click.option(
        "--callback-secret",
        envvar="BATCHGEN_CALLBACK_SECRET",
        show_envvar=True,
        help="Refuse callbacks without this secret's Standard-Webhooks signature.",
    ),
)


@click.command(short_help=command_summary("run"))
@manifest_argument
@run_options
@money_options
@click.option(
    "--locked",
    is_flag=True,
    help="Refuse to run unless the manifest resolves to the jobs in RUN/manifest.lock.json.",
)
@callback_options
def run(manifest: Path, **flags: Any) -> int:
    """Validate every row of MANIFEST, then submit, follow and download every job, resuming
    where an earlier run stopped."""
    return run_manifest(manifest, settings_from(**flags))


@click.command(short_help=command_summary("demo"))
@click.argument("manifest", required=False, type=click.Path(path_type=Path, dir_okay=False))
@output_option()
@provider_choice
@latency_option("Simulated generation time range in seconds (min max).")
@click.option(
    "--slots",
    type=click.IntRange(1, 1000),
    default=4,
    show_default=True,
    help="Simulated account concurrency (all of it used).",
)
def demo(
    manifest: Path | None,
    output: Path,
    provider: str,
    latency: tuple[float, float],
    slots: int,
) -> int:
    """Run MANIFEST (default: the packaged demo, six clips from three images) against the
    built-in simulator of the provider, started and stopped here; the videos land in
    OUTPUT/NAME/videos/."""
    from batchgen.simulator import running_simulator

    profile: ProviderName = "kling" if provider == "kling" else "cometapi"
    with running_simulator(demo_simulator(profile, latency, slots)) as sim:
        click.echo(f"simulator listening on {sim.base_url}", err=True)
        settings = demo_settings(sim.base_url, output, profile, slots, latency)
        return run_manifest(manifest or DEMO_MANIFEST, settings)


def run_manifest(manifest: Path, settings: Settings) -> int:
    """Run `manifest`, say what was loaded and how the run ended; the run's exit code."""
    pipeline.credentials(settings)
    if settings.prices is not None:
        load_prices(settings.prices)  # a malformed price file is refused before anything
    with (
        load.prepare(manifest, settings) as prepared,
        pipeline.shared_account(prepared, settings) as shared,
    ):
        if settings.progress != "quiet":
            click.echo(_header(prepared, shared), err=True)
        fetched = FetchedAgain()
        outcome = _execute_logged(prepared, settings, [fetched], shared)
        write_report(prepared.run_dir, build_report(prepared.store, outcome))
        unknown = [job.row_id for job in prepared.store.unknown_in_job_order()]
    steps = NextSteps.of_settings(manifest, settings)
    # A reader that went away cannot be told; the run's own exit code still stands.
    say(run_summary(outcome, prepared.run_dir, steps, unknown, fetched.rows), sys.stderr)
    return outcome.exit_code


def _header(prepared: load.PreparedRun, shared: SharedAccount) -> str:
    """What was loaded, where the state is, and how much of it the account already has."""
    line = f"{prepared.manifest.name}: {_loaded(prepared.loaded)}; state {_state_shown(prepared)}"
    elsewhere = shared.held_elsewhere(prepared.store)
    if elsewhere:
        line += (
            f"\n  the account ledger holds {elsewhere} of its jobs from other runs: they are "
            "followed or reused from there, not paid again"
        )
    else:
        line += "; the account ledger holds none of its jobs from other runs"
    return line


def _state_shown(prepared: load.PreparedRun) -> str:
    """The state's absolute path (or, on PostgreSQL, its schema and database)."""
    db = prepared.store.db
    return str(Path(db.path).resolve()) if db.dialect == "sqlite" else db.shown


def _loaded(loaded: load.Loaded) -> str:
    if loaded.reused:
        return f"{loaded.jobs} jobs (manifest unchanged since it was loaded)"
    return f"{loaded.jobs} jobs ({loaded.new} new, {loaded.known} known)"


def _execute_logged(
    prepared: load.PreparedRun,
    settings: Settings,
    listeners: Sequence[Listener],
    shared: SharedAccount | None = None,
) -> RunOutcome:
    """Run the prepared jobs with progress on stderr, appended to RUN/run.log too."""
    prepared.run_dir.mkdir(parents=True, exist_ok=True)
    with open(prepared.run_dir / RUN_LOG, "a", encoding="utf-8") as log:
        progress = progress_for(settings.progress, verbose=settings.verbose)
        shown: list[Listener] = [LineProgress(log), progress, *listeners]
        return pipeline.run_async(
            lambda: pipeline.execute(prepared, settings, shown, shared=shared)
        )


@click.command(short_help=command_summary("retry"))
@target_argument
@output_option()
@click.option("--failed", "all_failed", is_flag=True, help="Retry every failed job.")
@click.option(
    "--unknown",
    "all_unknown",
    is_flag=True,
    help="Send every unknown job again (each may then be paid twice).",
)
@click.option(
    "--job",
    "job_ids",
    metavar="ROW",
    multiple=True,
    help="Retry this job (row id or job id); repeatable.",
)
@click.option(
    "--regenerate",
    "regenerate_ids",
    metavar="ROW",
    multiple=True,
    help="Ask for a new generation of this done (or failed) job, paid again, under a new "
    "external id: the account ledger does not reuse the earlier video for it, which is kept "
    "as videos/<job id>.mp4; repeatable.",
)
@click.option("--yes", is_flag=True, help="Do not ask before sending unknown jobs again.")
@database_option
def retry(
    target: Path,
    output: Path,
    all_failed: bool,
    all_unknown: bool,
    job_ids: tuple[str, ...],
    regenerate_ids: tuple[str, ...],
    yes: bool,
    database: str | None,
) -> None:
    """Put failed (or unknown) jobs of a run back to pending; the next `run` sends them. A
    failed job whose paid task is still at the provider is followed again instead. With
    --regenerate, a done job is generated anew."""
    if not (all_failed or all_unknown or job_ids or regenerate_ids):
        raise click.UsageError(
            "say which jobs: --failed, --unknown, --job ID or --regenerate ROW (repeatable)"
        )
    found = resolve_target(target, output, database=database)
    state = found.existing_state()
    with runlock.holding(state, "retry", database), found.open_state() as store:
        regenerated = store.regenerate(store.resolve_job_ids(regenerate_ids))
        chosen = store.resolve_job_ids(job_ids) if job_ids else None
        for reason in nothing_to_retry(store, chosen or []):
            click.echo(reason)
        failed = store.reset_for_retry(chosen) if all_failed or job_ids else 0
        unknown = _resend_unknown(store, chosen, yes) if all_unknown or job_ids else 0
        steps = NextSteps.of_state(found, store)
    if regenerate_ids:
        click.echo(f"{regenerated} job(s) will be generated anew (and paid) by the next run")
    click.echo(
        f"{failed + unknown + regenerated} job(s) will be tried again by the next {steps.run()}"
    )


SHOWN_EVIDENCE = 10  # unknown jobs whose evidence retry --unknown shows before asking


def _resend_unknown(store: Store, chosen: list[str] | None, yes: bool) -> int:
    """Put the unknown jobs back to pending once the user knows (and accepts) what it risks."""
    risk = resend_risk(store, chosen)
    if not risk.jobs:
        return 0
    money = f"${risk.usd:,.2f}" + (f" (+{risk.unpriced} unpriced)" if risk.unpriced else "")
    click.echo(
        f"{risk.jobs} unknown job(s) may already have been accepted by the provider: sending "
        f"them again may pay twice for them, up to {money} more at the price table.",
        err=True,
    )
    for job in list(store.unknown_in_job_order())[:SHOWN_EVIDENCE]:
        if chosen is None or job.job_id in chosen:
            click.echo(f"{job.row_id}: what its look-ups answered:", err=True)
            for line in evidence_lines(store.lookups.of(job.job_id, 3)):
                click.echo(f"  {line}", err=True)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("not sent again: confirm with --yes (no terminal to ask on)")
        if not click.confirm("Send them again?", err=True):
            click.echo("nothing changed", err=True)
            return 0
    return store.reset_unknown(chosen)


@click.command(short_help=command_summary("adopt"))
@manifest_argument
@click.option(
    "--job", "job", metavar="ROW", required=True, help="The job (row id or job id) the task is for."
)
@click.option(
    "--task",
    "task_id",
    metavar="TASK_ID",
    required=True,
    help="The provider's task id, as its dashboard shows it.",
)
@settle_options
def adopt(manifest: Path, job: str, task_id: str, **flags: Any) -> None:
    """Record a task you found at the provider as the task of an unknown job; the next `run`
    downloads it. The task is asked for first; its external id, where echoed, must match."""
    problem = task_id_problem(task_id)
    if problem:
        raise click.BadParameter(problem, param_hint="'--task'")
    settings = settings_from(**flags)
    pipeline.credentials(settings)
    with load.prepare(manifest, settings, "adopt") as prepared:
        item = pipeline.run_async(pipeline.adopt_task, prepared.store, settings, job, task_id)
    next_run = NextSteps.of_settings(manifest, settings).run()
    click.echo(
        f"adopted {item.row_id}: task {item.task_id} ({item.task_status}); {next_run} downloads it"
    )


@click.command(short_help=command_summary("reconcile"))
@manifest_argument
@settle_options
def reconcile(manifest: Path, **flags: Any) -> None:
    """Adopt the tasks the provider has for MANIFEST's run that its state does not know: from
    the task list where the provider has one, and by looking each lost create up by its
    external id in every form. Exits 1 when unknown jobs remain."""
    settings = settings_from(**flags)
    pipeline.credentials(settings)
    with load.prepare(manifest, settings, "reconcile") as prepared:
        found = pipeline.run_async(pipeline.reconcile_run, prepared, settings)
    for item in found.adopted:
        click.echo(f"adopted {item.row_id}: task {item.task_id} ({item.task_status})")
    steps = NextSteps.of_settings(manifest, settings)
    click.echo(f"{len(found.adopted)} task(s) adopted; {steps.run()} downloads them")
    if found.still_unknown:
        rows = ", ".join(found.still_unknown[:10])
        more = f" and {len(found.still_unknown) - 10} more" if len(found.still_unknown) > 10 else ""
        click.echo(
            f"no look-up found the task of {len(found.still_unknown)} unknown job(s) ({rows}"
            f"{more}): `batchgen status` shows what each look-up answered; adopt a task id "
            f"from the provider's dashboard with `batchgen adopt`, or send them again with "
            f"`batchgen retry --unknown` (they may be paid twice)",
            err=True,
        )
        raise SystemExit(EXIT_JOBS_FAILED)
