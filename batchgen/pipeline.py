"""The library's front: load a manifest into a run's state and run it. The CLI calls these."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

from batchgen.errors import ManifestInvalid, Problem, UsageError
from batchgen.events import Listener, Notice
from batchgen.jobs import JobSpec
from batchgen.kling import KlingClient
from batchgen.limits import RateLimiter
from batchgen.lockfile import LOCK_NAME, LockCheck, write_lock
from batchgen.pricing import Key, check_max_cost, cost_of, job_key, load_prices
from batchgen.reconcile import Adopted, reconcile
from batchgen.resolve import ResolvedManifest, ResolveOptions, resolve_manifest
from batchgen.runner import RunConfig, Runner, RunOutcome
from batchgen.settings import Settings
from batchgen.status import JobStatus
from batchgen.store import Store

MAX_PROBLEMS = 200


@dataclass(frozen=True, slots=True)
class Loaded:
    """What loading a manifest into the state found."""

    jobs: int
    new: int
    known: int
    skipped: list[Problem]
    skipped_total: int


@dataclass(slots=True)
class PreparedRun:
    manifest: ResolvedManifest
    run_dir: Path
    store: Store
    loaded: Loaded


def open_manifest(path: Path, settings: Settings) -> ResolvedManifest:
    if not path.is_file():
        raise UsageError(f"manifest not found: {path}")
    options = ResolveOptions(
        inline_urls=settings.inline_urls,
        skip_invalid=settings.skip_invalid,
        max_problems=MAX_PROBLEMS,
    )
    return resolve_manifest(path, options)


def prepare(path: Path, settings: Settings) -> PreparedRun:
    """Validate every row and record the jobs in the state. Raises ManifestInvalid (and
    changes nothing) if any row is invalid, unless `skip_invalid`."""
    manifest = open_manifest(path, settings)
    run_dir = settings.run_dir(manifest.name)
    store = Store.open(settings.state_path(manifest.name))
    lock_path = run_dir / LOCK_NAME
    try:
        lock = LockCheck(lock_path) if settings.locked else None
        loaded = load_jobs(
            manifest,
            store,
            skip_invalid=settings.skip_invalid,
            lock=lock,
            max_cost=settings.max_cost,
            prices=settings.prices,
        )
        store.set_meta("run_name", manifest.name)
        store.set_meta("manifest", str(path))
        if lock is None:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_lock(lock_path, manifest.name, store.lock_rows())
    except BaseException:
        store.close()
        raise
    return PreparedRun(manifest, run_dir, store, loaded)


def load_jobs(
    manifest: ResolvedManifest,
    store: Store,
    *,
    skip_invalid: bool,
    lock: LockCheck | None = None,
    max_cost: float | None = None,
    prices: Path | None = None,
) -> Loaded:
    """Stream the manifest's valid jobs into the state in one transaction; if any row is
    invalid (and not `skip_invalid`), the lock does not match or the batch's estimate is above
    `max_cost`, nothing is changed."""
    problems: list[Problem] = []
    counter = {"problems": 0, "jobs": 0}
    kinds: Counter[Key] = Counter()
    table = load_prices(prices) if max_cost is not None else None

    def valid_jobs() -> Iterator[JobSpec]:
        for item in manifest.iter_jobs():
            if isinstance(item, JobSpec):
                counter["jobs"] += 1
                if lock is not None:
                    lock.see(item)
                if table is not None:
                    kinds[job_key(item.request)] += 1
                yield item
                continue
            counter["problems"] += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append(item)
        if counter["problems"] and not skip_invalid:
            raise ManifestInvalid(problems, counter["problems"])
        if lock is not None:
            lock.verify()
        if table is not None:
            check_max_cost(cost_of(kinds, table), max_cost)

    new, known = store.add_jobs(valid_jobs())
    if counter["jobs"] == 0 and not problems:
        raise UsageError(f"manifest {manifest.path} has no rows")
    return Loaded(counter["jobs"], new, known, problems, counter["problems"])


@asynccontextmanager
async def provider_clients(
    settings: Settings,
) -> AsyncIterator[tuple[KlingClient, httpx.AsyncClient]]:
    """The API client (with the key) and a separate download client (never sends the key)."""
    if settings.api_key is None or not settings.api_key.get_secret_value():
        raise UsageError("no API key: set COMETAPI_KEY or pass --api-key")
    limiter = RateLimiter(settings.rpm) if settings.rpm else None
    client = KlingClient(
        settings.base_url,
        settings.api_key.get_secret_value(),
        timeout=settings.request_timeout,
        max_connections=max(16, settings.concurrency * 2),
        limiter=limiter,
    )
    downloads = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.request_timeout * 4, connect=10.0),
        follow_redirects=True,
    )
    async with downloads:
        try:
            yield client, downloads
        finally:
            await client.aclose()


def run_config(settings: Settings, **tuning: Any) -> RunConfig:
    """The runner's configuration from the settings; `tuning` overrides RunConfig fields."""
    return RunConfig(
        concurrency=settings.concurrency,
        task_timeout=settings.task_timeout,
        download_workers=settings.download_workers,
        seed=settings.seed,
        **tuning,
    )


async def execute(
    prepared: PreparedRun,
    settings: Settings,
    listeners: Sequence[Listener] = (),
    *,
    config: RunConfig | None = None,
) -> RunOutcome:
    config = config or run_config(settings)
    for problem in prepared.loaded.skipped:
        for listener in listeners:
            listener(Notice(f"skipped invalid {problem}", "warning"))
    async with provider_clients(settings) as (client, downloads):
        runner = Runner(
            prepared.store,
            client,
            downloads,
            prepared.manifest.catalog.payload,
            prepared.run_dir,
            config,
            listeners,
        )
        return await runner.run()


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
        store.mark_progress(job_id, JobStatus.DOWNLOADING)
    config = run_config(settings, submit=False)
    async with provider_clients(settings) as (client, downloads):
        runner = Runner(store, client, downloads, _no_payload, run_dir, config, listeners)
        return await runner.run()


def _no_payload(ref: str) -> str:
    raise UsageError(f"image {ref} is not needed when nothing is submitted")


async def reconcile_run(prepared: PreparedRun, settings: Settings) -> list[Adopted]:
    async with provider_clients(settings) as (client, _):
        return await reconcile(prepared.store, client)


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
    prepared = prepare(Path(manifest), settings)
    try:
        return anyio.run(lambda: execute(prepared, settings, listeners, config=config))
    finally:
        prepared.store.close()
