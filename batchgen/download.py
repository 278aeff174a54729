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
from urllib.parse import urlsplit

import anyio
import httpx

from batchgen.errors import NotAVideo, RetryableError, UrlExpired, VideoTooLarge
from batchgen.media.sniff import HEAD_BYTES, container_of, describe_other

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


@dataclass(frozen=True, slots=True)
class InstallSteps:
    """Blocking steps a caller has done in the thread call that renames a checked video into
    place, so that they cost the event loop no hop of their own: `before` (given the new
    video's sha256) just before the rename, `after` once the rename is durable."""

    before: Callable[[str], None] | None = None
    after: Callable[[Downloaded], None] | None = None


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
    steps: InstallSteps | None = None,
    max_bytes: int | None = None,
    deadline: float | None = None,
    tag: str = "",
) -> Downloaded:
    """Fetch `url` into `dest` atomically. `make_room` runs once the complete file is synced
    and before it replaces `dest` (to keep whatever `dest` held), given its sha256; `steps`
    run in the rename's own thread call, around it. Raises UrlExpired, RetryableError (also
    when the bytes are not all there within `deadline` seconds, however they trickle), or
    NotAVideo when the bytes are no video: they never replace `dest`, and are kept at
    `<dest>.rejected` to be looked at (a body past `max_bytes` is not kept)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest, tag)
    sink = _Sink(part)
    try:
        with anyio.move_on_after(math.inf if deadline is None else deadline) as timer:
            await _fetch_resuming(http, url, sink, resume_tries, max_bytes)
        if timer.cancelled_caught:
            raise RetryableError(f"download not complete after {deadline:g} s")
        await sink.finish(dest)
        done = Downloaded(dest, sink.digest.hexdigest(), sink.size)
        if make_room is not None:
            await make_room(done.sha256)
        await anyio.to_thread.run_sync(_install, part, done, steps)
    except BaseException:
        await sink.aclose()
        part.unlink(missing_ok=True)
        raise
    return done


def local_video_url(path: str, sha256: str) -> str:
    """The URL a video another run of the account downloaded is taken from (`copy_verified`)."""
    return f"{Path(path).as_uri()}#sha256={sha256}"


async def copy_verified(
    url: str,
    dest: Path,
    make_room: Callable[[str], Awaitable[None]] | None = None,
    tag: str = "",
    steps: InstallSteps | None = None,
) -> Downloaded:
    """Take the video a `local_video_url` names into `dest` as a download would: hard-linked
    (copied and synced across file systems) to `<dest>.part`, its sha256 checked against the
    one the URL carries, then renamed into place (`steps` around the rename, as `download`'s).
    UrlExpired when the file is gone or is no longer those bytes (the task's own URL is asked
    for instead)."""
    location, _, digest = url.partition("#sha256=")
    source = Path(urlsplit(location).path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest, tag)
    try:
        found, size = await anyio.to_thread.run_sync(_linked_with_digest, source, part)
        if found != digest:
            raise UrlExpired(f"the video at {source} is no longer the one its run recorded")
        done = Downloaded(dest, found, size)
        if make_room is not None:
            await make_room(found)
        await anyio.to_thread.run_sync(_install, part, done, steps)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return done


def _linked_with_digest(source: Path, part: Path) -> tuple[str, int]:
    """`source` linked (or copied) to `part`; the part's sha256 and size."""
    _link_or_copy(source, part)
    return file_sha256(part), part.stat().st_size


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
            _sync_fd(out.fileno())


class _ShortRead(Exception):
    def __init__(self, message: str, resumable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.resumable = resumable


async def _fetch_resuming(
    http: httpx.AsyncClient,
    url: str,
    sink: _Sink,
    resume_tries: int,
    max_bytes: int | None,
) -> None:
    """The whole body of `url` into `sink`, a short read resumed with a Range request from
    where its bytes end, up to `resume_tries` times."""
    expected: int | None = None
    for _ in range(resume_tries + 1):
        try:
            expected = await _fetch_into(http, url, sink, expected, max_bytes)
        except _ShortRead as short:
            if not short.resumable:
                raise RetryableError(short.message) from None
            continue
        return
    raise RetryableError(f"download still short after {resume_tries} resumes")


async def _fetch_into(
    http: httpx.AsyncClient,
    url: str,
    sink: _Sink,
    expected: int | None,
    max_bytes: int | None = None,
) -> int | None:
    """The rest of the body (from `sink.size` on) into `sink`; its whole length, if known."""
    offset = sink.size
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        async with http.stream("GET", url, headers=headers) as response:
            _check_status(response, offset)
            if expected is None:
                expected = _content_length(response)
            _refuse_size(expected or 0, max_bytes)
            async for chunk in response.aiter_raw():
                _refuse_size(sink.size + len(chunk), max_bytes)
                await sink.write(chunk)
    except httpx.HTTPError as exc:
        raise _ShortRead(f"download interrupted ({type(exc).__name__})", True) from None
    if expected is not None and sink.size != expected:
        raise _ShortRead(f"download short: {sink.size} of {expected} bytes", True)
    return expected


class _Sink:
    """The `.part` a download's bytes go to, hashed as they are written. Bytes are held until
    BATCH of them have come, then written and hashed in a worker thread while the next batch
    arrives (one batch in flight; the file is created by the first), the chunks handed over as
    they came, not joined. `finish` writes the rest, fsyncs and closes the file and judges
    its first bytes (kept as they came: not read back), in one thread call: a body smaller
    than BATCH (most videos) costs the event loop that one hop. Every byte given to `write`
    is kept for the file (a resumed download goes on from the last of them); a write that
    fails (a full disk) raises its OSError in `write` or `finish`."""

    def __init__(self, part: Path) -> None:
        self.part = part
        self.digest = hashlib.sha256()
        self.size = 0  # bytes given to `write`
        self.head = b""  # the first HEAD_BYTES of them: what the file is, read off the wire
        self._fd: int | None = None  # the part, once created
        self._stored = 0  # bytes written to it
        self._batch: list[bytes] = []
        self._batched = 0
        self._writing: Future[None] | None = None

    async def write(self, chunk: bytes) -> None:
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self._batch.append(chunk)
        self._batched += len(chunk)
        self.size += len(chunk)
        if self._batched >= BATCH:
            await self._written()
            self._writing = _WRITERS.submit(self._store, self._taken())

    async def finish(self, dest: Path) -> None:
        """Every byte in the file, synced; NotAVideo (the file kept at `<dest>.rejected`)
        unless its first bytes are a video's."""
        await anyio.to_thread.run_sync(self._finish, self._taken(), dest)

    async def aclose(self) -> None:
        """After an error: the batch in flight let finish, and the file closed."""
        if self._writing is not None or self._fd is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._close)

    async def _written(self) -> None:
        """Wait for the batch in flight (off the loop unless it is done); its error is raised
        here."""
        pending, self._writing = self._writing, None
        if pending is not None and not pending.done():
            await anyio.to_thread.run_sync(pending.result)
        elif pending is not None:
            pending.result()

    def _taken(self) -> list[bytes]:
        batch, self._batch, self._batched = self._batch, [], 0
        return batch

    def _finish(self, batch: list[bytes], dest: Path) -> None:
        self._wait_writing()
        self._store(batch, writeback=False)  # (the sync that follows writes it out)
        assert self._fd is not None
        _sync_fd(self._fd)
        self._close()
        _refuse_other_files(self.part, dest, self.size, self.head)

    def _close(self) -> None:
        try:
            self._wait_writing()
        finally:
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)

    def _wait_writing(self) -> None:
        pending, self._writing = self._writing, None
        if pending is not None:
            pending.result()

    def _store(self, batch: list[bytes], *, writeback: bool = True) -> None:
        """Write `batch` at the end of the part (created by the first batch) with raw system
        calls, a few chunks to each, and hash it."""
        fd = self._fd if self._fd is not None else self._create()
        start = self._stored
        self._stored += _write_all(fd, batch)
        if writeback:
            _start_writeback(fd, start, self._stored - start)
        for chunk in batch:
            self.digest.update(chunk)

    def _create(self) -> int:
        # Creating a file can wait on the journal behind other downloads' fsyncs: not on the loop.
        self._fd = os.open(self.part, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        return self._fd


_IOV_MAX = 1024  # chunks one writev takes (POSIX's least is 16; Linux's, 1024)


def _write_all(fd: int, chunks: list[bytes]) -> int:
    """Every byte of `chunks` to `fd`, in order; how many. A short write goes on from where
    it stopped."""
    pending = [memoryview(chunk) for chunk in chunks if chunk]
    total = sum(len(chunk) for chunk in pending)
    while pending:
        written = os.writev(fd, pending[:_IOV_MAX])
        while pending and written >= len(pending[0]):
            written -= len(pending.pop(0))
        if written:
            pending[0] = pending[0][written:]
    return total


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
        raise VideoTooLarge(
            f"the video URL serves more than {max_bytes / 2**20:g} MB, the most a video of this "
            "run may be (--max-video-mb): not kept"
        )


def _check_status(response: httpx.Response, offset: int) -> None:
    status = response.status_code
    if status in (403, 404, 410):
        raise UrlExpired(f"video URL answered HTTP {status}", http_status=status)
    if offset and status != 206:
        raise _ShortRead("the server does not resume downloads (no Range support)", False)
    if status >= 400 or (not offset and status != 200):
        raise _ShortRead(f"video URL answered HTTP {status}", False)


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


def _refuse_other_files(part: Path, dest: Path, size: int, head: bytes) -> None:
    """NotAVideo, the file moved to `<dest>.rejected`, unless its first bytes (`head`) are a
    video's."""
    if container_of(head) is not None:
        return
    kept = rejected_path(dest)
    os.replace(part, kept)
    raise NotAVideo(
        f"the video URL answered with {describe_other(head, size)}, not a video "
        f"(kept as {kept.parent.name}/{kept.name})"
    )


def _sync_fd(fd: int) -> None:
    os.fsync(fd)


def _install(part: Path, done: Downloaded, steps: InstallSteps | None) -> None:
    """Rename the complete file into place and make the rename durable, `steps` around it; a
    page an earlier download of it was refused for goes."""
    steps = steps or InstallSteps()
    if steps.before is not None:
        steps.before(done.sha256)
    os.replace(part, done.path)
    rejected_path(done.path).unlink(missing_ok=True)
    sync_folder(done.path.parent)
    if steps.after is not None:
        steps.after(done)


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
