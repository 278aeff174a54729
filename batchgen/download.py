"""Downloads that cannot leave a corrupt video behind.

Bytes go to `<name>.part` while being hashed, and the disk is asked to take them as they come
(not a sync: it leaves the one fsync at the end little to wait for); the length is checked
against Content-Length, the file is fsynced once and renamed over the final name, and the
folder is synced. A short read is
resumed with a Range request where the server allows it. Only then does the caller record
the job as done. A body larger than `max_bytes` (announced, or as it comes: an endless one)
is refused as no video of this run and its part removed, so that no resume fills the disk.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import shutil
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import anyio
import httpx

from batchgen.errors import NotAVideo, RetryableError, UrlExpired
from batchgen.media.sniff import container_of, describe_other, read_head

CHUNK = 1 << 20  # bytes read at a time from a file being hashed
BATCH = 4 << 20  # bytes received before they are written, in one hand-over to a writer thread
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writing the range out, do not wait
PART_SUFFIX = ".part"
# Hashing and writing happen here, beside the event loop; a download has one batch in flight.
_WRITERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="batchgen-write")


REJECTED_SUFFIX = ".rejected"  # a download that was no video, kept beside its name to be seen


def rejected_path(path: Path) -> Path:
    return path.with_name(path.name + REJECTED_SUFFIX)


@dataclass(frozen=True, slots=True)
class Downloaded:
    path: Path
    sha256: str
    size: int


def part_path(path: Path, tag: str = "") -> Path:
    """Where `path` is written before it is complete; `tag` (a worker's own, when several
    processes of one run may fetch the same video) keeps their bytes apart."""
    return path.with_name(path.name + tag + PART_SUFFIX)


async def download(
    http: httpx.AsyncClient,
    url: str,
    dest: Path,
    *,
    resume_tries: int = 3,
    make_room: Callable[[str], Awaitable[None]] | None = None,
    max_bytes: int | None = None,
    deadline: float | None = None,
    tag: str = "",
) -> Downloaded:
    """Fetch `url` into `dest` atomically. `make_room` runs once the complete file is synced
    and before it replaces `dest` (to keep whatever `dest` held), given its sha256. Raises
    UrlExpired, RetryableError (also when the bytes are not all there within `deadline`
    seconds, however they trickle), or NotAVideo when the bytes are no video: they never
    replace `dest`, and are kept at `<dest>.rejected` to be looked at (a body past `max_bytes`
    is not kept)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest, tag)
    digest = hashlib.sha256()
    written = 0
    expected: int | None = None
    try:
        # Creating a file can wait on the journal behind other downloads' fsyncs: not on the loop.
        with await anyio.to_thread.run_sync(open, part, "w+b") as out:
            with anyio.move_on_after(math.inf if deadline is None else deadline) as timer:
                for _ in range(resume_tries + 1):
                    try:
                        expected, written = await _fetch_into(
                            http, url, out, digest, written, expected, max_bytes
                        )
                    except _ShortRead as short:
                        written = short.written
                        if not short.resumable:
                            raise RetryableError(short.message) from None
                        continue
                    break
                else:
                    raise RetryableError(f"download still short after {resume_tries} resumes")
            if timer.cancelled_caught:
                raise RetryableError(f"download not complete after {deadline:g} s")
            await anyio.to_thread.run_sync(_sync_file, out)
        await anyio.to_thread.run_sync(_refuse_other_files, part, dest, written)
        if make_room is not None:
            await make_room(digest.hexdigest())
        await anyio.to_thread.run_sync(_install, part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return Downloaded(dest, digest.hexdigest(), written)


def local_video_url(path: str, sha256: str) -> str:
    """The URL a video another run of the account downloaded is taken from (`copy_verified`)."""
    return f"{Path(path).as_uri()}#sha256={sha256}"


async def copy_verified(
    url: str,
    dest: Path,
    make_room: Callable[[str], Awaitable[None]] | None = None,
    tag: str = "",
) -> Downloaded:
    """Take the video a `local_video_url` names into `dest` as a download would: hard-linked
    (copied and synced across file systems) to `<dest>.part`, its sha256 checked against the
    one the URL carries, then renamed into place. UrlExpired when the file is gone or is no
    longer those bytes (the task's own URL is asked for instead)."""
    location, _, digest = url.partition("#sha256=")
    source = Path(urlsplit(location).path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest, tag)
    try:
        await anyio.to_thread.run_sync(_link_or_copy, source, part)
        found = await anyio.to_thread.run_sync(file_sha256, part)
        if found != digest:
            raise UrlExpired(f"the video at {source} is no longer the one its run recorded")
        if make_room is not None:
            await make_room(found)
        await anyio.to_thread.run_sync(_install, part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return Downloaded(dest, found, part_size(dest))


def part_size(path: Path) -> int:
    return path.stat().st_size


def _link_or_copy(source: Path, part: Path) -> None:
    part.unlink(missing_ok=True)
    try:
        os.link(source, part)
    except FileNotFoundError:
        raise UrlExpired(f"the video at {source} is gone") from None
    except OSError:
        try:
            shutil.copyfile(source, part)
        except FileNotFoundError:
            raise UrlExpired(f"the video at {source} is gone") from None
        with open(part, "rb+") as out:
            _sync_file(out)


class _ShortRead(Exception):
    def __init__(self, message: str, written: int, resumable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.written = written
        self.resumable = resumable


async def _fetch_into(
    http: httpx.AsyncClient,
    url: str,
    out: BinaryIO,
    digest: hashlib._Hash,
    offset: int,
    expected: int | None,
    max_bytes: int | None = None,
) -> tuple[int | None, int]:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    written = offset
    try:
        async with http.stream("GET", url, headers=headers) as response, _Sink(out, digest) as sink:
            _check_status(response, offset)
            if expected is None:
                expected = _content_length(response)
            _refuse_size(expected or 0, max_bytes)
            async for chunk in response.aiter_raw():
                _refuse_size(written + len(chunk), max_bytes)
                await sink.write(chunk)
                written += len(chunk)
    except httpx.HTTPError as exc:
        raise _ShortRead(f"download interrupted ({type(exc).__name__})", written, True) from None
    if expected is not None and written != expected:
        raise _ShortRead(f"download short: {written} of {expected} bytes", written, True)
    return expected, written


class _Sink:
    """Writes and hashes in a worker thread, a batch of BATCH bytes at a time, while the next
    batch arrives (one batch in flight); the chunks are handed over as they came, not joined.
    Every byte given to `write` is stored, even when the block exits with an error (a resumed
    download starts where the file ends); a write that fails (a full disk) raises its OSError
    here."""

    def __init__(self, out: BinaryIO, digest: hashlib._Hash) -> None:
        self.out = out
        self.digest = digest
        self._batch: list[bytes] = []
        self._size = 0
        self._writing: Future[None] | None = None

    async def __aenter__(self) -> _Sink:
        return self

    async def write(self, chunk: bytes) -> None:
        self._batch.append(chunk)
        self._size += len(chunk)
        if self._size >= BATCH:
            await self._flush()

    async def __aexit__(self, *exc: Any) -> None:
        with anyio.CancelScope(shield=True):
            await self._flush()
            await self._written()

    async def _flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch, self._size = self._batch, [], 0
        await self._written()
        self._writing = _WRITERS.submit(self._store, batch)

    async def _written(self) -> None:
        """Wait for the batch in flight; its error, if any, is raised here."""
        pending, self._writing = self._writing, None
        if pending is not None:
            await anyio.to_thread.run_sync(pending.result)

    def _store(self, batch: list[bytes]) -> None:
        start = self.out.tell()
        self.out.writelines(batch)
        self.out.flush()
        _start_writeback(self.out.fileno(), start, self.out.tell() - start)
        for chunk in batch:
            self.digest.update(chunk)


def _writeback_call() -> Callable[[int, int, int], None] | None:
    """Linux's sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE), else None."""
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (AttributeError, OSError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)

    def start(fd: int, offset: int, length: int) -> None:
        call(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a hint: its failure changes nothing

    return start


_WRITEBACK = _writeback_call()


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the disk take the bytes just written while the next ones arrive, so that the one
    fsync at the end has little left to wait for. Not a sync: nothing is promised until it."""
    if _WRITEBACK is not None:
        _WRITEBACK(fd, offset, length)


def _refuse_size(size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise NotAVideo(
            f"the video URL serves more than {max_bytes / 2**20:g} MB, the most a video of this "
            "run may be (--max-video-mb): not kept"
        )


def _check_status(response: httpx.Response, offset: int) -> None:
    status = response.status_code
    if status in (403, 404, 410):
        raise UrlExpired(f"video URL answered HTTP {status}", http_status=status)
    if offset and status != 206:
        raise _ShortRead("the server does not resume downloads (no Range support)", 0, False)
    if status >= 400 or (not offset and status != 200):
        raise _ShortRead(f"video URL answered HTTP {status}", offset, False)


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


def _refuse_other_files(part: Path, dest: Path, size: int) -> None:
    """NotAVideo, the file moved to `<dest>.rejected`, unless its first bytes are a video's."""
    head = read_head(str(part))
    if container_of(head) is not None:
        return
    kept = rejected_path(dest)
    os.replace(part, kept)
    raise NotAVideo(
        f"the video URL answered with {describe_other(head, size)}, not a video "
        f"(kept as {kept.parent.name}/{kept.name})"
    )


def _sync_file(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())


def _install(part: Path, dest: Path) -> None:
    """Rename the complete file into place and make the rename durable; a page an earlier
    download of it was refused for goes."""
    os.replace(part, dest)
    rejected_path(dest).unlink(missing_ok=True)
    sync_folder(dest.parent)


def sync_folder(folder: Path) -> None:
    """Make the renames and links in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
