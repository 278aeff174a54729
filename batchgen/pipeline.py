"""The library's front: load a manifest into a run's state and run it. The CLI calls these."""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx

from batchgen import fingerprint, runlock
from batchgen.budget import Budget, Ledger, check_priced, groups
from batchgen.errors import ManifestInvalid, Problem, StateError, UsageError
from batchgen.events import Listener, Notice
from batchgen.jobs import JobSpec
from batchgen.limits import RateLimiter
from batchgen.lockfile import LOCK_NAME, LockCheck, write_lock
from batchgen.policy import PollConfig
from batchgen.pricing import Key, check_max_cost, cost_of, job_key, load_prices
from batchgen.providers import Auth, Provider, auth_for, connect
from batchgen.reconcile import Adopted, reconcile
from batchgen.resolve import ResolvedManifest, ResolveOptions, resolve_manifest
from batchgen.runner import RunConfig, Runner, RunOutcome
from batchgen.runner.receiver import Listen
from batchgen.settings import Settings, callback_path, listen_address
from batchgen.status import JobStatus
from batchgen.store import Store
from batchgen.unknown import adopt_by_task_id

T = TypeVar("T")
MAX_PROBLEMS = 200
# httpcore checks every pooled connection on each request, so a big pool costs CPU per call;
# API answers are quick, and a few connections carry a run's creates and polls.
API_CONNECTIONS = 16
CALLBACK_BACKUP_AFTER = 1.2  # with callbacks, polls catch the ends that never came


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
    """A manifest loaded into its state, which this process holds (see runlock.py) until
    `close` (or the end of a `with` block)."""

    manifest: ResolvedManifest
    run_dir: Path
    store: Store
    loaded: Loaded
    held: ExitStack = field(default_factory=ExitStack)

    def close(self) -> None:
        self.held.close()

    def __enter__(self) -> PreparedRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_manifest(path: Path, settings: Settings) -> ResolvedManifest:
    if not path.is_file():
        raise UsageError(f"manifest not found: {path}")
    options = ResolveOptions(
        inline_urls=settings.inline_urls,
        skip_invalid=settings.skip_invalid,
        max_problems=MAX_PROBLEMS,
    )
    return resolve_manifest(path, options)


def prepare(path: Path, settings: Settings, command: str = "run") -> PreparedRun:
    """Validate every row and record the jobs in the state, which this process then holds.
    Raises ManifestInvalid (and changes nothing) if any row is invalid, unless `skip_invalid`;
    a refusal leaves no state behind where there was none. A manifest that has not changed
    since its jobs were loaded is not resolved again (see fingerprint.py)."""
    manifest = open_manifest(path, settings)
    run_dir = settings.run_dir(manifest.name)
    state = settings.state_path(manifest.name)
    fresh = _absent(state, runlock.lock_path(state), run_dir, state.parent, settings.output)
    held = ExitStack()
    try:
        held.enter_context(runlock.holding(state, command))
        store = held.enter_context(Store.open(state))
        _check_owner(store, manifest.name)
        loaded = _load_or_reuse(manifest, path, store, run_dir, settings)
        store.set_meta("run_name", manifest.name)
        store.set_meta("manifest", str(path))
        store.set_meta("provider", settings.provider)
    except BaseException:
        held.close()
        _remove(fresh)
        raise
    return PreparedRun(manifest, run_dir, store, loaded, held)


def _load_or_reuse(
    manifest: ResolvedManifest, path: Path, store: Store, run_dir: Path, settings: Settings
) -> Loaded:
    options = {"inline_urls": settings.inline_urls, "skip_invalid": settings.skip_invalid}
    before = None if settings.locked else fingerprint.unchanged(store, path, options)
    if before is not None:
        return _reuse(manifest, before, settings)
    loaded = _load(manifest, store, run_dir, settings)
    fingerprint.record(
        store, manifest, options, jobs=loaded.jobs, skipped=loaded.skipped_total, kinds=loaded.kinds
    )
    return loaded


def _check_owner(store: Store, run_name: str) -> None:
    """Refuse a state made for another run (a --state pointing at someone else's)."""
    owner = store.get_meta("run_name")
    if owner is not None and owner != run_name:
        manifest = store.get_meta("manifest") or "another manifest"
        raise StateError(
            f"{store.path} is the state of run {owner!r} ({manifest}), not of {run_name!r}; "
            "give this run its own --state (or none)"
        )


def _absent(*paths: Path) -> list[Path]:
    """Those of `paths` (and a state's -wal and -shm files) that do not exist yet, files first."""
    state = paths[0]
    candidates = [*paths[:2], Path(f"{state}-wal"), Path(f"{state}-shm"), *paths[2:]]
    return [p for p in candidates if not p.exists()]


def _remove(created: list[Path]) -> None:
    """Undo what a refused start made: new files, then new folders if left empty."""
    for path in created:
        with contextlib.suppress(OSError):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)


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
    store.replace_skipped((p.row, p.line, p.field, p.message) for p in problems)
    if counter["jobs"] == 0 and not problems:
        raise UsageError(f"manifest {manifest.path} has no rows")
    return Loaded(counter["jobs"], new, known, problems, counter["problems"], dict(kinds))


def credentials(settings: Settings) -> Auth:
    """The provider's credentials from the settings, checked before anything is done."""
    return auth_for(
        settings.profile,
        api_key=_secret(settings.api_key),
        access_key=_secret(settings.access_key),
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
    downloads = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.request_timeout * 4, connect=10.0),
        follow_redirects=True,
        limits=httpx.Limits(max_connections=settings.download_workers),
        trust_env=False,
    )
    async with downloads:
        try:
            yield provider, downloads
        finally:
            await provider.aclose()


def run_config(settings: Settings, **tuning: Any) -> RunConfig:
    """The runner's configuration from the settings; `tuning` overrides RunConfig fields."""
    listening: dict[str, Any] = {}
    if settings.callback_url and settings.listen:
        host, port = listen_address(settings.listen)
        secret = _secret(settings.callback_secret)
        listening = {
            "callback_url": settings.callback_url,
            "listen": Listen(host, port, callback_path(settings.callback_url), secret),
            # Polling stays as the safety net, at a slower pace.
            "poll": PollConfig(backup_after=CALLBACK_BACKUP_AFTER),
        }
    return RunConfig(
        concurrency=settings.concurrency,
        task_timeout=settings.task_timeout,
        download_workers=settings.download_workers,
        seed=settings.seed,
        **{**listening, **tuning},
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
    budget = budget_for(prepared.store, settings)
    async with provider_clients(settings) as (provider, downloads):
        runner = Runner(
            prepared.store,
            provider,
            downloads,
            prepared.manifest.catalog.payload,
            prepared.run_dir,
            config,
            listeners,
            budget=budget,
        )
        return await runner.run()


def budget_for(store: Store, settings: Settings) -> Budget | None:
    """The run's `--budget`, starting from what the state has spent and committed; UsageError
    if a job that may be paid for has no known price."""
    if settings.budget is None:
        return None
    return Budget(settings.budget, ledger_of(store, settings, check=True))


def ledger_of(store: Store, settings: Settings, *, check: bool = False) -> Ledger:
    """Spent and committed money of the state, at the settings' prices and provider."""
    table = load_prices(settings.prices)
    rows = groups(store.priced_groups())
    if check:
        check_priced(rows, table)
    ledger = Ledger(table, bills_in_units=settings.provider == "kling")
    ledger.load(rows)
    return ledger


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
    async with provider_clients(settings) as (provider, downloads):
        runner = Runner(store, provider, downloads, _no_payload, run_dir, config, listeners)
        return await runner.run()


def _no_payload(ref: str) -> str:
    raise UsageError(f"image {ref} is not needed when nothing is submitted")


async def reconcile_run(prepared: PreparedRun, settings: Settings) -> list[Adopted]:
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
    with prepare(Path(manifest), settings) as prepared:
        return run_async(lambda: execute(prepared, settings, listeners, config=config))
