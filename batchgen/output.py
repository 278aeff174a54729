"""The run folder: videos named after their rows, a sidecar JSON beside each, and the indexes.

<output>/<run>/
    state.sqlite            the run's state (see store.py)
    videos/<row id>.mp4     one video per finished job
    videos/<row id>.json    sidecar: what produced that video, its probe and QA findings
    videos/<job id>.mp4     an earlier paid video of a row edited since (with its sidecar), or
                            one its sidecar named where a new video was about to go
    inputs/<sha256>.jpg     every image sent (input, end frame, masks), as the bytes sent, named
                            by the hex of its `sha256:` ref; kept the first time it is sent
    index.jsonl             one line per finished job of the manifest, sorted by job id; written
                            from the state when a run ends (the state is current before that)
    failed.jsonl            one line per failed or unknown job, with its reason and what to do

A finished job's `probe` (container, codec, width, height, fps, frames, duration_s, ...) and
`qa` (findings, each {code, message}; empty when clean) are None while it is unchecked.

No paid video is overwritten: before a new video takes a name, `keep_paid_file` moves aside
the file there when its sidecar vouches for it (it names a job, and the file has the size and
sha256 it records) and it holds other bytes than the new one, whether or not the state knows
that job (a lost state, another state's run).
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from itertools import chain
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, BinaryIO

from batchgen.download import file_sha256, sync_folder
from batchgen.export.columns import Kind, cast, typed_variant
from batchgen.jobs import SHA_PREFIX, canonical_json
from batchgen.media.spawning import spawn_context
from batchgen.media.workers import cores
from batchgen.state.connect import open_state
from batchgen.state.lookups import Sighting
from batchgen.state.records import CheckRecord, JobRecord
from batchgen.state.store import Store
from batchgen.status import JobStatus

INDEX_NAME = "index.jsonl"
INDEX_PART_JOBS = 200_000  # an index is written by a process per core for every this many jobs
FAILED_NAME = "failed.jsonl"
VIDEOS_DIR = "videos"
INPUTS_DIR = "inputs"
IMAGE_SIGNATURES = {b"\xff\xd8\xff": ".jpg", b"\x89PNG\r\n\x1a\n": ".png"}
KEPT_SUFFIXES = (".jpg", ".png", ".img")  # .img: bytes of neither signature (never sent today)

PROVIDER_FIELDS = ("task_id", "task_created_at", "task_updated_at", "final_unit_deduction")


def video_path(run_dir: Path, row_id: str) -> Path:
    return run_dir / VIDEOS_DIR / f"{row_id}.mp4"


def watermarked_path(video: Path) -> Path:
    """Where a video's watermarked copy goes: beside it, `<name>.watermark.mp4`."""
    return video.with_name(f"{video.stem}.watermark{video.suffix}")


def superseded_path(run_dir: Path, job_id: str) -> Path:
    """Where a paid video goes when a later job of its (edited) row takes the row's name."""
    return run_dir / VIDEOS_DIR / f"{job_id}.mp4"


def kept_input(run_dir: Path, ref: str) -> Path | None:
    """The file holding the bytes sent for the content ref `ref`, if the run kept them."""
    if not ref.startswith(SHA_PREFIX):
        return None
    stem = run_dir / INPUTS_DIR / ref.removeprefix(SHA_PREFIX)
    return next((p for p in map(stem.with_suffix, KEPT_SUFFIXES) if p.is_file()), None)


def keep_input(run_dir: Path, ref: str, data: bytes) -> Path:
    """Keep `data`, the bytes sent for `ref`, as RUN/inputs/<hex><suffix> (once: a file already
    there is left as it is); written whole, then renamed into place."""
    found = kept_input(run_dir, ref)
    if found is not None:
        return found
    suffix = next((s for sig, s in IMAGE_SIGNATURES.items() if data.startswith(sig)), ".img")
    path = run_dir / INPUTS_DIR / (ref.removeprefix(SHA_PREFIX) + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


class KeptInputs:
    """A run's payload function (content ref -> the base64 sent) that also keeps the bytes of
    each image in RUN/inputs/ the first time it is sent, so the dataset carries its inputs. An
    image that cannot be written there (a full disk) is still sent; the run's own writes will
    stop it soon enough if there is no room."""

    def __init__(self, payload: Callable[[str], str], run_dir: Path) -> None:
        self.payload = payload
        self.run_dir = run_dir
        self.kept: set[str] = set()

    def __call__(self, ref: str) -> str:
        encoded = self.payload(ref)
        if ref not in self.kept:
            try:
                keep_input(self.run_dir, ref, base64.b64decode(encoded))
                self.kept.add(ref)
            except OSError:
                pass
        return encoded


def keep_paid_file(run_dir: Path, relative: str, new_sha256: str) -> str | None:
    """Before a video with `new_sha256` replaces `relative`: keep the file there if its sidecar
    vouches for it as a paid video with other bytes, at `videos/<its job id>.mp4` (another name
    if that one holds other bytes), with its sidecar. Returns where it was kept, or None."""
    dest = run_dir / relative
    vouched = _vouched(dest)
    if vouched is None:
        return None
    job_id, entry = vouched
    digest = file_sha256(dest)
    if digest != entry["sha256"] or digest == new_sha256:
        return None
    kept = keep_as(dest, superseded_path(run_dir, job_id), digest)
    kept_relative = kept.relative_to(run_dir).as_posix()
    write_json_atomic(kept.with_suffix(".json"), {**entry, "video": kept_relative})
    return kept_relative


def keep_as(source: Path, target: Path, sha256: str | None = None) -> Path:
    """Make `target` a twin of `source` (a hard link where the file system has them, else a
    copy), synced, and return it; where `target` already holds other bytes, a name beside it
    (`<stem>.<sha256[:12]>`) is used instead: nothing is replaced. A `source` that is gone
    leaves nothing to keep."""
    if not source.is_file():
        return target
    digest = sha256 or file_sha256(source)
    for candidate in (target, target.with_name(f"{target.stem}.{digest[:12]}{target.suffix}")):
        if not (candidate.exists() or candidate.is_symlink()):
            _link_or_copy(source, candidate)
            sync_folder(candidate.parent)
            return candidate
        if _same_bytes(source, candidate, digest):
            return candidate
    raise FileExistsError(f"{target} and the name beside it hold other bytes than {source}")


def _same_bytes(source: Path, candidate: Path, digest: str) -> bool:
    if candidate.is_symlink() or not candidate.is_file():
        return False
    return os.path.samefile(source, candidate) or file_sha256(candidate) == digest


def _vouched(video: Path) -> tuple[str, dict[str, Any]] | None:
    """(job id, sidecar) when `video` is a regular file whose sidecar names a job and records
    its size and a sha256; else None."""
    try:
        found = os.lstat(video)  # (one call: most often there is no file at all)
        if not stat.S_ISREG(found.st_mode):
            return None  # (a link, a folder, ...)
        entry = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    size = found.st_size
    if not isinstance(entry, dict):
        return None
    job_id, sha = entry.get("job_id"), entry.get("sha256")
    if not isinstance(job_id, str) or not job_id.isalnum() or not isinstance(sha, str):
        return None
    return (job_id, entry) if entry.get("bytes") == size else None


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


class StoredJson(str):
    """A value of an index entry as the state stores it: canonical JSON text (jobs.py's
    `canonical_json`, which every writer of the state uses), written into a line as it is,
    instead of read and written again."""

    __slots__ = ()


def index_entry(
    job: JobRecord, check: Mapping[str, Any] | None = None, *, as_stored: bool = False
) -> dict[str, Any]:
    """The index line of a finished job: identity, file, provider facts, the request (as sent),
    and the video's probe and QA findings (`check`, {"probe": ..., "qa": [...]}) if it was
    checked. Seconds and units are numbers, of the kinds of export/columns.py. `as_stored`:
    the request, variant and metadata as JSON text (`StoredJson`), for `index_line`."""
    variant = _typed_variant_text(job.variant_json) if as_stored else typed_variant(job.variant)
    return {
        "job_id": job.job_id,
        "row_id": job.row_id,
        "video": job.output_path,
        "sha256": job.sha256,
        "bytes": job.bytes,
        "duration": cast(job.video_duration, Kind.FLOAT),
        "task_id": job.task_id,
        "task_created_at": job.task_created_at,
        "task_updated_at": job.task_updated_at,
        "final_unit_deduction": cast(job.unit_deduction, Kind.FLOAT),
        "reused_from": job.reused_from,
        "request": StoredJson(job.request_json) if as_stored else job.request,
        "variant": variant,
        "metadata": StoredJson(job.metadata_json) if as_stored else job.metadata,
        "watermark_video": job.watermark_path,
        "probe": None if check is None else check["probe"],
        "qa": None if check is None else check["qa"],
    }


UNKNOWN_ADVICE = (
    "find the task in the provider's dashboard and run `batchgen adopt MANIFEST --job {row} "
    "--task TASK_ID`, or send it again, at the risk of paying twice, with "
    "`batchgen retry MANIFEST --unknown`"
)


def failure_entry(job: JobRecord, lookups: list[Sighting] | None = None) -> dict[str, Any]:
    """The failed.jsonl line of a failed or unknown job (with what its look-ups answered)."""
    entry: dict[str, Any] = {
        "job_id": job.job_id,
        "row_id": job.row_id,
        "status": job.status.value,
        "error": job.last_error,
        "error_kind": job.error_kind,
        "task_id": job.task_id,
        "external_task_id": job.external_task_id,
        "attempts": job.attempts,
        "request": job.request,
    }
    if job.status == JobStatus.UNKNOWN:
        entry["what_to_do"] = UNKNOWN_ADVICE.format(row=job.row_id)
        entry["lookups"] = [s.as_json() for s in lookups or []]
    return entry


def skipped_entry(problem: tuple[str, int, str, str]) -> dict[str, Any]:
    """The failed.jsonl line of a row `--skip-invalid` left out."""
    row, line, field, message = problem
    return {"row_id": row, "status": "invalid", "line": line, "field": field, "error": message}


def sidecar(
    job: JobRecord, video: str, sha256: str, size: int, check: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    entry = index_entry(job, check)
    entry.update(video=video, sha256=sha256, bytes=size)
    return entry


def write_sidecar(
    run_dir: Path,
    job: JobRecord,
    video: str,
    sha256: str,
    size: int,
    check: Mapping[str, Any] | None = None,
    *,
    shared: bool = False,
) -> None:
    """The sidecar of the video at `video` (relative to `run_dir`), written beside it
    atomically (`shared`: see _write_lines_atomic)."""
    entry = sidecar(job, video, sha256, size, check)
    path = (run_dir / video).with_suffix(".json")
    write_json_atomic(path, entry, shared=shared, folder_exists=True)  # (beside its video)


def write_json_atomic(
    path: Path, value: Any, *, shared: bool = False, folder_exists: bool = False
) -> None:
    """`value` as JSON at `path`, atomically (`shared`: see _write_lines_atomic); its folder
    made first unless the caller knows it is there (`folder_exists`: a video's sidecar)."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if not folder_exists:
        path.parent.mkdir(parents=True, exist_ok=True)
    _write_bytes_atomic(path, text.encode(), shared=shared)


def _write_bytes_atomic(path: Path, data: bytes, *, shared: bool = False) -> None:
    """`data` at `path` as `_write_lines_atomic` writes lines, in fewer system calls (a
    sidecar is written for every video, from a thread that gives the event loop's thread
    the interpreter at each call)."""
    tmp = _temporary(path, shared)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_indexes(store: Store, run_dir: Path, parts: int | None = None) -> tuple[int, int]:
    """Rewrite index.jsonl and failed.jsonl from the state; returns (done, failed) counts.
    A large index is written in `parts` (default: `index_parts` of the state's done jobs) by
    as many processes, see `_write_index_in_parts`."""
    index = run_dir / INDEX_NAME
    if parts is None:
        parts = index_parts(store.counts()[JobStatus.DONE])
    if parts > 1:
        store.db.commit()  # (the other processes read the state as this one wrote it)
        done = _write_index_in_parts(store.db.location(), index, parts)
    else:
        done = _write_lines_atomic(index, _index_lines(store), shared=True)
    unknown = (
        failure_entry(job, store.lookups.of(job.job_id)) for job in store.unknown_in_job_order()
    )
    failed_entries = chain(map(failure_entry, store.failed_in_job_order()), unknown)
    failed = _write_lines_atomic(
        run_dir / FAILED_NAME,
        _jsonl(chain(failed_entries, map(skipped_entry, store.inputs.skipped()))),
        shared=True,
    )
    return done, failed


def index_parts(done: int) -> int:
    """How many processes write the index of `done` finished jobs: one per core for every
    INDEX_PART_JOBS of them, at least one."""
    return max(1, min(cores(), done // INDEX_PART_JOBS))


def _index_lines(store: Store, start: str | None = None, stop: str | None = None) -> Iterator[str]:
    return _jsonl(_index_entry(*pair) for pair in store.checks.done_with_checks(start, stop))


def _write_index_in_parts(location: tuple[Path, str | None], index: Path, parts: int) -> int:
    """index.jsonl written by `parts` processes, each the lines of one range of job ids (ids
    are hex digests, so the ranges hold about as many jobs each; any id falls in one range):
    this process the first, straight into the new index, and worker processes the others,
    each into a file of its own, which are then appended in order, so the file is the one a
    single pass would write. The lines of each range are read from the state as it is when
    that range is read (on PostgreSQL other workers may still be finishing jobs meanwhile).
    As `_write_lines_atomic`: the index replaced whole, or left as it was with no temporary
    file (a killed process aside)."""
    bounds = [f"{(n << 16) // parts:04x}" for n in range(1, parts)]
    ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
    tmp = index.with_name(f"{index.name}.{os.getpid()}.tmp")
    pieces = [index.with_name(f"{index.name}.{os.getpid()}.{n}.tmp") for n in range(1, parts)]
    try:
        with ProcessPoolExecutor(parts - 1, mp_context=spawn_context()) as pool:
            written = [
                pool.submit(_write_index_range, location, start, stop, piece)
                for (start, stop), piece in zip(ranges[1:], pieces, strict=True)
            ]
            try:
                count = _write_index_range(location, *ranges[0], tmp)
                with open(tmp, "r+b") as out:
                    for piece, done in zip(pieces, written, strict=True):
                        count += done.result()
                        _append(out, piece)
                    out.flush()
                    os.fsync(out.fileno())
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
        os.replace(tmp, index)
    except BaseException:
        for path in (tmp, *pieces):
            path.unlink(missing_ok=True)
        raise
    return count


def _write_index_range(
    location: tuple[Path, str | None], start: str | None, stop: str | None, path: Path
) -> int:
    """The index lines of the done jobs with ids in [start, stop) into `path` (not synced:
    the file they end in is); how many. Run by `_write_index_in_parts`'s processes."""
    with (
        Store(open_state(*location, create=False)) as store,
        open(path, "w", encoding="utf-8") as f,
    ):
        count = 0
        for line in _index_lines(store, start, stop):
            f.write(line + "\n")
            count += 1
    return count


def _append(out: BinaryIO, piece: Path) -> None:
    """`piece`'s bytes at the end of `out` (a file opened to read and write, at its end),
    copied by the kernel where it can."""
    out.flush()
    end = out.seek(0, os.SEEK_END)
    with open(piece, "rb") as source:
        try:
            while os.copy_file_range(source.fileno(), out.fileno(), 1 << 30):
                pass
        except OSError:  # (where the kernel cannot: copied whole through this process)
            out.seek(end)
            source.seek(0)
            shutil.copyfileobj(source, out, 1 << 20)
            out.flush()
    out.seek(0, os.SEEK_END)
    piece.unlink()


def _index_entry(job: JobRecord, check: CheckRecord | None) -> dict[str, Any]:
    stored = None
    if check is not None:
        stored = {"probe": StoredJson(check.probe_json), "qa": StoredJson(check.findings_json)}
    return index_entry(job, stored, as_stored=True)


@functools.lru_cache(maxsize=4096)
def _typed_variant_text(variant_json: str) -> StoredJson:
    """A stored variant as the index writes it (`typed_variant`), as JSON text: most jobs of a
    run share a few variants ({"sample":0}), each read and written once."""
    return StoredJson(canonical_json(typed_variant(json.loads(variant_json))))


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def _float_text(value: float) -> str:
    """A float as the json module writes it (NaN and the infinities by their JavaScript names)."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


# How each kind of value is written, by its exact type (a subclass, say an IntEnum, goes to the
# json module as a whole value): what the json module writes for it, one C call or none.
_SCALAR_TEXT: dict[type, Callable[[Any], str]] = {
    StoredJson: str.__str__,
    str: encode_basestring,
    int: int.__repr__,
    float: _float_text,
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
}


@functools.lru_cache(maxsize=64)
def _line_keys(keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The keys of an entry in the order a line writes them, each with its written prefix
    (`"key":`): the lines of one key set (every index line) share them."""
    return tuple((key, _dumps(key) + ":") for key in sorted(keys))


def index_line(entry: Mapping[str, Any]) -> str:
    """`entry` as one line of JSON, its keys sorted, compact, not ASCII-escaped; a
    `StoredJson` value written as it is (the line is the one its parsed value would make).
    A string, number, bool or None is written by the json module's own function for it, any
    other value by the json module whole."""
    text = _SCALAR_TEXT.get
    parts = []
    for key, prefix in _line_keys(tuple(entry)):
        value = entry[key]
        write = text(type(value))
        parts.append(prefix + (_dumps(value) if write is None else write(value)))
    return "{" + ",".join(parts) + "}"


def _jsonl(entries: Iterable[dict[str, Any]]) -> Iterator[str]:
    return (index_line(e) for e in entries)


def _temporary(path: Path, shared: bool) -> Path:
    """Where `path` is written before it is renamed into place; `shared`: a file every worker
    of a run writes, whose temporary name is the process's own."""
    return path.with_name(path.name + (f".{os.getpid()}.tmp" if shared else ".tmp"))


def _write_lines_atomic(path: Path, lines: Iterable[str], *, shared: bool = False) -> int:
    """Write `lines` to `path` through a temporary file renamed over it; `shared`: a file
    every worker of a run writes (the index), whose temporary name is the process's own. An
    error or an interrupt on the way (a second Ctrl-C while a large index is written) leaves
    `path` as it was and no temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path, shared)
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
                count += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count
