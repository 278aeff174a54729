"""The library's front: load a manifest into a run's state and run it. The CLI calls these."""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx

from batchgen import fingerprint
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

T = TypeVar("T")
MAX_PROBLEMS = 200
# httpcore checks every pooled connection on each request, so a big pool costs CPU per call;
# API answers are quick, and a few connections carry a run's creates and polls.
API_CONNECTIONS = 16


@dataclass(frozen=True, slots=True)
class Loaded:
    """What loading a manifest into the state found."""

    jobs: int
    new: int
    known: int
    skipped: list[Problem]
    skipped_total: int
    kinds: dict[Key, int]  # jobs per (model, mode, duration)
    reused: bool = False  # the manifest had not changed: the state's jobs were taken as they are


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
    changes nothing) if any row is invalid, unless `skip_invalid`. A manifest that has not
    changed since its jobs were loaded is not resolved again (see fingerprint.py)."""
    manifest = open_manifest(path, settings)
    run_dir = settings.run_dir(manifest.name)
    store = Store.open(settings.state_path(manifest.name))
    options = {"inline_urls": settings.inline_urls, "skip_invalid": settings.skip_invalid}
    try:
        before = None if settings.locked else fingerprint.unchanged(store, path, options)
        if before is not None:
            loaded = _reuse(manifest, before, settings)
        else:
            loaded = _load(manifest, store, run_dir, settings)
            fingerprint.record(
                store,
                manifest,
                options,
                jobs=loaded.jobs,
                skipped=loaded.skipped_total,
                kinds=loaded.kinds,
            )
        store.set_meta("run_name", manifest.name)
        store.set_meta("manifest", str(path))
    except BaseException:
        store.close()
        raise
    return PreparedRun(manifest, run_dir, store, loaded)


def _load(manifest: ResolvedManifest, store: Store, run_dir: Path, settings: Settings) -> Loaded:
    lock_path = run_dir / LOCK_NAME
    lock = LockCheck(lock_path) if settings.locked else None
    loaded = load_jobs(
        manifest,
        store,
        skip_invalid=settings.skip_invalid,
        lock=lock,
        cost_check=lambda kinds: _check_cost(kinds, settings),
    )
    if lock is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_lock(lock_path, manifest.name, store.lock_rows())
    return loaded


def _reuse(
    manifest: ResolvedManifest, before: fingerprint.LoadedBefore, settings: Settings
) -> Loaded:
    _check_cost(before.kinds, settings)
    for ref, path in before.images.items():
        manifest.catalog.add_file(ref, path)
    return Loaded(before.jobs, 0, before.jobs, [], before.skipped, before.kinds, reused=True)


def _check_cost(kinds: Mapping[Key, int], settings: Settings) -> None:
    if settings.max_cost is not None:
        check_max_cost(cost_of(kinds, load_prices(settings.prices)), settings.max_cost)


def load_jobs(
    manifest: ResolvedManifest,
    store: Store,
    *,
    skip_invalid: bool,
    lock: LockCheck | None = None,
    cost_check: Callable[[Mapping[Key, int]], None] | None = None,
) -> Loaded:
    """Stream the manifest's valid jobs into the state in one transaction; if any row is
    invalid (and not `skip_invalid`), the lock does not match or `cost_check` raises (given
    the jobs per kind), nothing is changed."""
    problems: list[Problem] = []
    counter = {"problems": 0, "jobs": 0}
    kinds: Counter[Key] = Counter()

    def valid_jobs() -> Iterator[JobSpec]:
        for item in manifest.iter_jobs():
            if isinstance(item, JobSpec):
                counter["jobs"] += 1
                if lock is not None:
                    lock.see(item)
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
        if cost_check is not None:
            cost_check(kinds)

    new, known = store.add_jobs(valid_jobs())
    store.record_images(manifest.catalog.described())
    if counter["jobs"] == 0 and not problems:
        raise UsageError(f"manifest {manifest.path} has no rows")
    return Loaded(counter["jobs"], new, known, problems, counter["problems"], dict(kinds))


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
        max_connections=API_CONNECTIONS,
        limiter=limiter,
    )
    downloads = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.request_timeout * 4, connect=10.0),
        follow_redirects=True,
        limits=httpx.Limits(max_connections=settings.download_workers),
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


def run_async(func: Callable[..., Awaitable[T]], *args: Any) -> T:
    """`anyio.run` on uvloop where it is installed (less CPU per request), else asyncio."""
    options = {"use_uvloop": True} if importlib.util.find_spec("uvloop") else {}
    result: T = anyio.run(func, *args, backend_options=options)
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
    prepared = prepare(Path(manifest), settings)
    try:
        return run_async(lambda: execute(prepared, settings, listeners, config=config))
    finally:
        prepared.store.close()
