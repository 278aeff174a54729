"""The library's front: load a manifest into a run's state and run it. The CLI calls these."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx

from batchgen import output
from batchgen.errors import UsageError
from batchgen.events import Listener, Notice
from batchgen.load import PreparedRun, prepare
from batchgen.media import CheckWorkers
from batchgen.media.qa import DECODE_OF, QaDepth
from batchgen.money.budget import Budget
from batchgen.money.pricing import load_prices
from batchgen.money.spent import money_of, tally_of
from batchgen.output import KeptInputs
from batchgen.providers import Auth, Provider, auth_for, connect
from batchgen.providers.account import Account, account_of
from batchgen.runner import RunConfig, Runner, RunOutcome
from batchgen.runner.config import Listen
from batchgen.runner.generation_times import Typical
from batchgen.runner.in_place import check_all_in_place, owed_checks
from batchgen.runner.limits import RateLimiter
from batchgen.runner.policy import PollConfig
from batchgen.runner.sharing import SharedAccount, register
from batchgen.settings import Settings, callback_path, listen_address
from batchgen.settle import Adopted, Reconciled, adopt_by_task_id, reconcile
from batchgen.state.changes import Advanced
from batchgen.state.claims import JobClaims
from batchgen.state.leases import DEFAULT_LEASE_SECONDS
from batchgen.state.ledger import Ledger
from batchgen.state.store import Store
from batchgen.status import JobStatus
from batchgen.wire import download_client

T = TypeVar("T")
MAX_PROBLEMS = 200
# httpcore checks every pooled connection on each request, so a big pool costs CPU per call;
# API answers are quick, and a few connections carry a run's creates and polls.
API_CONNECTIONS = 16
CALLBACK_BACKUP_AFTER = 1.2  # with callbacks, polls catch the ends that never came


def credentials(settings: Settings) -> Auth:
    """The provider's credentials from the settings, checked before anything is done."""
    return auth_for(
        settings.profile,
        api_key=_secret(settings.api_key),
        access_key=_secret(settings.access_key),
        kling_api_key=_secret(settings.kling_api_key),
        secret_key=_secret(settings.secret_key),
    )


def _secret(value: Any) -> str | None:
    return None if value is None else str(value.get_secret_value())


@asynccontextmanager
async def provider_clients(settings: Settings) -> AsyncIterator[tuple[Provider, httpx.AsyncClient]]:
    """The provider client (with the credentials) and a separate download client (never
    sends them)."""
    limiter = RateLimiter(settings.rpm) if settings.rpm else None
    provider = connect(
        settings.profile,
        credentials(settings),
        settings.api_base_url,
        timeout=settings.request_timeout,
        max_connections=API_CONNECTIONS,
        limiter=limiter,
    )
    downloads = download_client(
        httpx.Timeout(settings.request_timeout * 4, connect=10.0), settings.download_workers
    )
    async with downloads:
        try:
            yield provider, downloads
        finally:
            await provider.aclose()


def run_config(settings: Settings, **tuning: Any) -> RunConfig:
    """The runner's configuration from the settings; `tuning` overrides RunConfig fields."""
    listening: dict[str, Any] = {}
    poll = poll_config(settings)
    if settings.callback_url and settings.listen:
        host, port = listen_address(settings.listen)
        secret = _secret(settings.callback_secret)
        listening = {
            "callback_url": settings.callback_url,
            "listen": Listen(host, port, callback_path(settings.callback_url), secret),
            # Polling stays as the safety net, at a slower pace.
            "poll": dataclasses.replace(poll, backup_after=CALLBACK_BACKUP_AFTER),
        }
    return RunConfig(
        concurrency=settings.concurrency,
        task_timeout=settings.task_timeout,
        resend_unfound=settings.resend_unfound,
        retry_moderation=settings.retry_moderation,
        download_workers=settings.download_workers,
        max_video_bytes=int(settings.max_video_mb * 2**20),
        qa=settings.qa,
        seed=settings.seed,
        **{"poll": poll, **listening, **tuning},
    )


def poll_config(settings: Settings) -> PollConfig:
    """The poll schedule's start: the table of typical generation times, or the range the
    settings know every generation takes (then believed from the first poll: no climb)."""
    if settings.known_generation is None:
        return PollConfig()
    low, high = settings.known_generation
    known = Typical(low, high, "known: the settings' generation time range")
    return PollConfig(expected=lambda kind: known, hedge=False)


def account(settings: Settings) -> Account:
    """The account the settings' credentials name (providers/account.py)."""
    return account_of(settings.provider, settings.api_base_url, credentials(settings))


LEASE_ENV = "BATCHGEN_LEASE"


def lease_seconds() -> float:
    """How long an account slot lease lasts unless renewed: `BATCHGEN_LEASE` seconds
    (a killed run's slots come back after it), default 60."""
    text = os.environ.get(LEASE_ENV, "")
    if not text:
        return DEFAULT_LEASE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.5 <= value <= 3600:
        raise UsageError(f"{LEASE_ENV} must be seconds from 0.5 to 3600, not {text!r}")
    return value


@contextmanager
def shared_account(prepared: PreparedRun, settings: Settings) -> Iterator[SharedAccount]:
    """The run's place in the account ledger (in the PostgreSQL database of the run's state,
    when it has one, so that every machine shares it): the state recorded there (what it sent
    before, the first time), its slots leased there; the ledger closed at the end."""
    ttl = lease_seconds()
    with Ledger.open(settings.database) as ledger:
        named = account(settings)
        entry = {
            "name": prepared.manifest.name,
            "manifest": str(Path(prepared.store.get_meta("manifest") or "").resolve()),
            "run_dir": str(prepared.run_dir),
        }
        state_id = register(ledger, prepared.store, named, entry)
        shared = SharedAccount(ledger, named, state_id, settings.concurrency, lease_seconds=ttl)
        try:
            yield shared
        finally:
            counts = {s.value: n for s, n in prepared.store.counts().items()}
            spent = money_of(prepared.store.spending.priced_groups(), settings.provider)
            shared.ended(counts, spent.spent)


async def execute(
    prepared: PreparedRun,
    settings: Settings,
    listeners: Sequence[Listener] = (),
    *,
    config: RunConfig | None = None,
    shared: SharedAccount | None = None,
) -> RunOutcome:
    config = config or run_config(settings)
    loaded = prepared.loaded
    notices = [Notice(f"skipped invalid {problem}", "warning") for problem in loaded.skipped]
    if loaded.skipped_total > len(loaded.skipped):
        more = loaded.skipped_total - len(loaded.skipped)
        notices.append(
            Notice(f"{more} more invalid row(s) skipped: `batchgen validate` lists them")
        )
    for notice in notices:
        for listener in listeners:
            listener(notice)
    budget = budget_for(prepared.store, settings)
    with working(prepared.store, config):
        async with provider_clients(settings) as (provider, downloads):
            runner = Runner(
                prepared.store,
                provider,
                downloads,
                KeptInputs(prepared.manifest.catalog.payload, prepared.run_dir),
                prepared.run_dir,
                config,
                listeners,
                budget=budget,
                shared=shared,
            )
            outcome = await runner.run()
    return dataclasses.replace(outcome, skipped_invalid=loaded.skipped_rows)


@contextmanager
def working(store: Store, config: RunConfig) -> Iterator[None]:
    """On PostgreSQL, a run that submits is one of the run's workers (claims.py): it joins,
    holds the jobs it claims, and lets go of them at the end."""
    if store.db.dialect != "postgresql" or not config.submit:
        yield
        return
    claims = JobClaims(store.db, ttl=lease_seconds())
    claims.join()
    store.claims = claims
    try:
        yield
    finally:
        store.claims = None
        claims.leave()


def budget_for(store: Store, settings: Settings) -> Budget | None:
    """The run's `--budget`, starting from what the state has spent and committed; UsageError
    if a job that may be paid for has no known price."""
    if settings.budget is None:
        return None
    table = load_prices(settings.prices)
    priced = store.spending.priced_groups()
    return Budget(settings.budget, tally_of(priced, table, settings.provider, check=True))


async def repair(
    store: Store,
    run_dir: Path,
    job_ids: Sequence[str],
    settings: Settings,
    listeners: Sequence[Listener] = (),
) -> RunOutcome:
    """Download these done jobs' videos again from the provider (fresh URLs where the old
    ones expired); nothing is submitted."""
    for job_id in job_ids:
        store.apply(job_id, Advanced(JobStatus.DOWNLOADING, "downloading again"))
    config = run_config(settings, submit=False)
    async with provider_clients(settings) as (provider, downloads):
        runner = Runner(store, provider, downloads, _no_payload, run_dir, config, listeners)
        return await runner.run()


async def recheck(
    store: Store, run_dir: Path, qa: QaDepth, skip: Collection[str] = ()
) -> tuple[int, int]:
    """Check where they are (no download, no API call) the run's done videos that no check
    as deep as `qa` looked at, but those of the jobs in `skip` (videos missing or changed);
    rewrite the index. (videos checked, of which flagged)."""
    decode = DECODE_OF[qa]
    owed = [job_id for job_id in owed_checks(store, decode) if job_id not in skip]
    async with CheckWorkers(decode=decode) as checks:
        made = await check_all_in_place(store, run_dir, checks, owed, shared=False)
    store.db.commit()
    output.write_indexes(store, run_dir)
    return len(made), sum(bool(check.findings) for check in made)


def _no_payload(ref: str) -> str:
    raise UsageError(f"image {ref} is not needed when nothing is submitted")


async def reconcile_run(prepared: PreparedRun, settings: Settings) -> Reconciled:
    async with provider_clients(settings) as (provider, _):
        return await reconcile(prepared.store, provider)


async def adopt_task(store: Store, settings: Settings, job: str, task_id: str) -> Adopted:
    """Record the provider's task `task_id` as the task of `job` (a job id or row id)."""
    async with provider_clients(settings) as (provider, _):
        return await adopt_by_task_id(store, provider, job, task_id)


def run_async(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`anyio.run` on uvloop where it is installed (less CPU per request), else asyncio."""
    options = {"use_uvloop": True} if importlib.util.find_spec("uvloop") else {}
    terminate = signal.getsignal(signal.SIGTERM)
    try:
        result: T = anyio.run(func, *args, backend_options=options)
    finally:
        # The event loop resets a signal it handled to the default, not to what was there.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, terminate)
    return result


def run(
    manifest: Path | str,
    settings: Settings | None = None,
    listeners: Sequence[Listener] = (),
    **tuning: Any,
) -> RunOutcome:
    """Run a manifest to the end (or to a stop) and return the outcome. `tuning` overrides
    RunConfig fields (poll schedule, retry policy...). No signal handling: embedders stop a
    run by cancelling it."""
    settings = settings or Settings()
    config = run_config(settings, handle_signals=False, **tuning)
    credentials(settings)
    with (
        prepare(Path(manifest), settings) as prepared,
        shared_account(prepared, settings) as shared,
    ):
        return run_async(
            lambda: execute(prepared, settings, listeners, config=config, shared=shared)
        )
