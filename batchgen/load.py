"""A manifest into a run's state: open and validate it, load its jobs (or reuse them when
nothing they came from has changed), check the lock file and `--max-cost`, and hold the state
for this process. Nothing is sent to a provider here.

`--max-cost` caps what this run may newly spend: the jobs it will send (new or pending), not
those an earlier run has done, has in flight or left failed or unknown."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from batchgen.errors import ManifestInvalid, Problem, StateError, StateInUse, UsageError
from batchgen.jobs import JobSpec
from batchgen.manifest import fingerprint
from batchgen.manifest.lockfile import LOCK_NAME, LockCheck, write_lock
from batchgen.manifest.resolve import ResolvedManifest, ResolveOptions, resolve_manifest
from batchgen.money.pricing import Key, check_max_cost, cost_of, job_key, load_prices
from batchgen.settings import Settings
from batchgen.state import runlock
from batchgen.state.claims import live_workers
from batchgen.state.store import Store

MAX_PROBLEMS = 200


@dataclass(frozen=True, slots=True)
class Loaded:
    """What loading a manifest into the state found."""

    jobs: int
    new: int
    known: int
    skipped: list[Problem]
    skipped_total: int  # problems of the rows left out (--skip-invalid)
    kinds: dict[Key, int]  # jobs per (model, mode, duration)
    reused: bool = False  # the manifest had not changed: the state's jobs were taken as they are
    skipped_rows: int = 0  # rows left out (--skip-invalid), each with one problem or more


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
        url_deadline=settings.url_timeout,
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
    files = [runlock.folder_lock_path(run_dir)]
    files += [runlock.lock_path(state)] if settings.database is None else []
    fresh = _absent(state, files, [run_dir, state.parent, settings.output])
    held = ExitStack()
    joins = settings.database is not None and command == "run"  # a worker: others may be too
    try:
        held.enter_context(runlock.holding(state, command, settings.database, shared=joins))
        held.enter_context(runlock.holding_folder(run_dir, state, command, shared=joins))
        store = held.enter_context(Store.open(state, settings.database))
        _check_owner(store, manifest.name)
        with runlock.loading(state, settings.database):
            if joins:
                _check_same_manifest(store, path, settings)
            loaded = _load_or_reuse(manifest, path, store, run_dir, settings)
        store.set_meta("run_name", manifest.name)
        store.set_meta("manifest", str(path))
        store.set_meta("provider", settings.provider)
        store.set_meta("base_url", settings.base_url or "")
    except BaseException:
        held.close()
        _remove(fresh)
        raise
    return PreparedRun(manifest, run_dir, store, loaded, held)


def _load_or_reuse(
    manifest: ResolvedManifest, path: Path, store: Store, run_dir: Path, settings: Settings
) -> Loaded:
    options = {"inline_urls": settings.inline_urls, "skip_invalid": settings.skip_invalid}
    if not settings.locked:
        before = fingerprint.unchanged(store.inputs.fingerprint(), path, options)
        if before is not None:
            return _reuse(manifest, before, store, settings)
    loaded = _load(manifest, store, run_dir, settings)
    taken = fingerprint.take(
        manifest, options, jobs=loaded.jobs, skipped=loaded.skipped_total, kinds=loaded.kinds
    )
    store.inputs.record_fingerprint(taken.files, taken.document)
    return loaded


def _check_owner(store: Store, run_name: str) -> None:
    """Refuse a state made for another run (a --state pointing at someone else's)."""
    owner = store.get_meta("run_name")
    if owner is not None and owner != run_name:
        manifest = store.get_meta("manifest") or "another manifest"
        raise StateError(
            f"{store.db.shown} is the state of run {owner!r} ({manifest}), not of {run_name!r}; "
            "give this run its own --state (or none)"
        )


def _check_same_manifest(store: Store, path: Path, settings: Settings) -> None:
    """A worker joins a run its live workers run only with the manifest they loaded."""
    live = live_workers(store.db, time.time())
    if not live:
        return
    options = {"inline_urls": settings.inline_urls, "skip_invalid": settings.skip_invalid}
    if fingerprint.unchanged(store.inputs.fingerprint(), path, options) is None:
        hosts = ", ".join(sorted({f"{host} pid {pid}" for _, host, pid, _, _ in live}))
        raise StateInUse(
            f"run {store.get_meta('run_name')!r} in {store.db.shown} is being run by "
            f"{len(live)} worker(s) ({hosts}) from another manifest, or one that changed "
            "since they loaded it; a worker joins a run only with the same manifest"
        )


def _absent(state: Path, files: list[Path], folders: list[Path]) -> list[Path]:
    """Those of the state (with its -wal and -shm files), `files` and `folders` that do not
    exist yet, files first."""
    candidates = [state, Path(f"{state}-wal"), Path(f"{state}-shm"), *files, *folders]
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
        cost_check=lambda loaded: _check_cost(loaded, settings),
    )
    if lock is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_lock(lock_path, manifest.name, store.lock_rows())
    return loaded


def _reuse(
    manifest: ResolvedManifest,
    before: fingerprint.LoadedBefore,
    store: Store,
    settings: Settings,
) -> Loaded:
    _check_cost(store, settings)
    for ref, path in before.images.items():
        manifest.catalog.add_file(ref, path)
    return Loaded(before.jobs, 0, before.jobs, [], before.skipped, before.kinds, reused=True)


def _check_cost(store: Store, settings: Settings) -> None:
    """CostLimitExceeded if the jobs this run will send may cost more than `--max-cost`."""
    if settings.max_cost is None:
        return
    kinds: Counter[Key] = Counter()
    for fields, jobs in store.spending.to_send_pricing_fields():
        kinds[job_key(fields)] += jobs
    check_max_cost(cost_of(kinds, load_prices(settings.prices)), settings.max_cost)


def load_jobs(
    manifest: ResolvedManifest,
    store: Store,
    *,
    skip_invalid: bool,
    lock: LockCheck | None = None,
    cost_check: Callable[[Store], None] | None = None,
) -> Loaded:
    """Stream the manifest's valid jobs into the state in one transaction; if any row is
    invalid (and not `skip_invalid`), the lock does not match or `cost_check` raises (given
    the state with the jobs loaded), nothing is changed."""
    problems: list[Problem] = []
    invalid_rows: set[str] = set()
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
            invalid_rows.add(item.row)
            if len(problems) < MAX_PROBLEMS:
                problems.append(item)
        if counter["problems"] and not skip_invalid:
            raise ManifestInvalid(problems, counter["problems"])
        if lock is not None:
            lock.verify()

    with store.transaction():
        new, known = store.add_jobs(valid_jobs())
        if cost_check is not None:
            cost_check(store)
    store.inputs.record_images(manifest.catalog.described())
    rows = ((p.row, p.line, p.field, p.message) for p in problems)
    store.inputs.replace_skipped(rows, len(invalid_rows))
    if counter["jobs"] == 0 and not problems:
        raise UsageError(f"manifest {manifest.path} has no rows")
    return Loaded(
        counter["jobs"],
        new,
        known,
        problems,
        counter["problems"],
        dict(kinds),
        skipped_rows=len(invalid_rows),
    )
