"""The download stage: finished tasks' videos into the run folder, and `done`.

Each video streams to `.part`, is checked to be a video (a page served in its place is kept as
`.rejected` and the job stays `downloading`, to be fetched again from a fresh URL), synced,
probed and judged (media/, in worker processes: several videos at once), renamed to
`videos/<row id>.mp4`, and given its sidecar; only then is the job `done`. A row edited since
its earlier job was paid for keeps its id, so the earlier video is moved aside first, to
`videos/<job id>.mp4` (hard link, then the state, then the new file over the old name), and so
is a paid video the state does not know that its sidecar vouches for (output.keep_paid_file):
no paid video is ever overwritten. Done jobs whose file went missing are downloaded again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from batchgen import output
from batchgen.download import Downloaded, InstallSteps, copy_verified, download, part_path
from batchgen.errors import (
    AccountError,
    LeaseLost,
    NotAVideo,
    ProviderError,
    ProviderUnreachable,
    RetryableError,
    TaskNotFound,
    ThrottledError,
    UrlExpired,
    VideoTooLarge,
)
from batchgen.events import Notice
from batchgen.media import CheckWorkers, VideoCheck
from batchgen.media.qa import DECODE_OF
from batchgen.runner.context import RunContext
from batchgen.runner.in_place import check_all_in_place
from batchgen.state.changes import (
    Advanced,
    Done,
    VideoMoved,
    VideoUrl,
    Waiting,
    WatermarkMoved,
    WatermarkSaved,
)
from batchgen.state.records import JobRecord
from batchgen.state.store import DoneVideo
from batchgen.status import JobStatus

DONE_CHECK_BATCH = 2000
MISSING = "video missing or changed; downloading again"
TOO_LARGE = "too_large"  # error kind of a video past --max-video-mb, left for a larger cap


class Downloader:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._installing = _Installing()  # one job at a time installs a given video path
        # The probe + QA, off the loop; the run enters and leaves it (with --qa off, unused).
        self.checking = ctx.config.qa != "off"
        self.checks = CheckWorkers(decode=DECODE_OF.get(ctx.config.qa, "I/P"))

    async def worker(self, jobs: MemoryObjectReceiveStream[str]) -> None:
        async with jobs:
            async for job_id in jobs:
                try:
                    await self.download_job(job_id)
                except LeaseLost:
                    self.ctx.let_go(job_id)

    async def check_done_videos(self, done: anyio.Event) -> None:
        """Download again the done jobs whose video is gone or has another size (`verify`
        re-hashes), and check those no check has looked at (a run with --qa off) unless this
        one checks none. Runs beside the first submissions, so a large run starts at once."""
        ctx = self.ctx
        after, checked = -1, 0
        unchecked = self._unchecked_done() if self.checking else 0
        owed = unchecked > 0
        if owed:
            said = f"{unchecked} done videos have no check: checking them where they are"
            ctx.emit(Notice(f"{said}, beside this run"))
        try:
            while batch := ctx.store.done_videos(after, DONE_CHECK_BATCH):
                after = batch[-1][0]
                gone = await anyio.to_thread.run_sync(_videos_not_intact, ctx.run_dir, batch)
                for job_id in gone:
                    try:
                        job = ctx.record(job_id, Advanced(JobStatus.DOWNLOADING, MISSING))
                    except LeaseLost:
                        continue  # another worker holds it, and downloads it
                    ctx.emit(
                        Notice(f"{job.row_id}: video missing or changed; downloading it again")
                    )
                    ctx.enqueue_download(job_id)
                if owed and ctx.stopping is None:
                    missing = set(gone)
                    intact = [job_id for _, job_id, _, _ in batch if job_id not in missing]
                    never = ctx.store.checks.unchecked(intact)
                    made = await check_all_in_place(
                        ctx.store, ctx.run_dir, self.checks, never, self._stopping
                    )
                    checked += len(made)
        finally:
            if checked:
                ctx.emit(Notice(f"checked {checked} done videos no check had looked at"))
            done.set()
            ctx.wake_poll.set()

    def _stopping(self) -> bool:
        return self.ctx.stopping is not None

    def _unchecked_done(self) -> int:
        """How many done videos of the manifest have no check (the kept counts say)."""
        checked, _, _ = self.ctx.store.checks.counts()
        return self.ctx.store.counts()[JobStatus.DONE] - checked

    async def download_job(self, job_id: str) -> None:
        ctx = self.ctx
        for attempt in range(1, ctx.config.download_attempts + 1):
            job = ctx.job(job_id)
            try:
                url = job.video_url or await self._fresh_url(job)
                await self._fetch(job, url)
                return
            except UrlExpired:
                ctx.record(job_id, VideoUrl(None))
            except VideoTooLarge as error:
                # Paid, and the same size from any URL of the task: it waits for a run with a
                # larger --max-video-mb rather than being fetched again in this one.
                job = ctx.record(job_id, Waiting(0, error.describe(), TOO_LARGE))
                ctx.emit(Notice(f"{job.row_id}: {error}; raise it and run again", "warning"))
                return
            except NotAVideo as error:
                # Paid, and still at the provider: it stays downloading, from a fresh URL.
                job = ctx.record(job_id, Waiting(0, error.describe(), "not_a_video"))
                ctx.emit(Notice(f"{job.row_id}: {error}", "warning"))
                ctx.record(job_id, VideoUrl(None))
                await anyio.sleep(ctx.config.retry.backoff(attempt, ctx.rng))
            except (RetryableError, ThrottledError, TaskNotFound) as error:
                ctx.record(job_id, Waiting(0, error.describe(), "download"))
                await anyio.sleep(ctx.config.retry.backoff(attempt, ctx.rng))
            except (AccountError, ProviderUnreachable) as error:
                kind = "account" if isinstance(error, AccountError) else "unreachable"
                ctx.stop(kind, error.describe(), at_once=True)
                return
            except ProviderError as error:
                ctx.record(job_id, Waiting(0, error.describe(), "download"))
                return
            except OSError as error:
                where = error.filename or ctx.run_dir
                ctx.stop(
                    "storage",
                    f"cannot write {where}: {error.strerror or error}. Nothing paid is lost: "
                    "make room, then run the same command again",
                )
                return
        ctx.emit(
            Notice(
                f"{ctx.job(job_id).row_id}: download did not complete; run again to resume it",
                "warning",
            )
        )

    async def _fresh_url(self, job: JobRecord) -> str:
        info = await self.ctx.provider.get(job.task_id or "")
        if not info.video_url:
            raise RetryableError(f"task {job.task_id} has no video URL")
        self.ctx.record(job, VideoUrl(info.video_url))
        return info.video_url

    async def _fetch(self, job: JobRecord, url: str) -> None:
        ctx = self.ctx
        dest = (
            ctx.run_dir / job.output_path
            if job.output_path  # downloaded before: it goes back where the state says
            else output.video_path(ctx.run_dir, job.row_id)
        )
        relative = dest.relative_to(ctx.run_dir).as_posix()
        install = _Install(job, ctx.run_dir, relative, self.checking)

        async def make_room(new_sha256: str) -> None:
            # The complete, synced part is judged before the lock: videos are checked at once.
            if self.checking:
                part = part_path(dest, ctx.part_tag)
                image_size = ctx.store.inputs.image_size
                install.check = await self.checks.check_download(job.request, part, image_size)
            await self._installing.acquire(relative)
            install.holding = True
            await self._keep_earlier_videos(job, relative)

        try:
            local = job.reused_from is not None and url.startswith("file:")
            result = await self._download(url, dest, make_room, install.steps(), local=local)
            if install.kept is not None:
                kept = f"{job.row_id}: kept the paid video found at {relative} as {install.kept}"
                ctx.emit(Notice(kept))
            check = install.checked()
            if check is not None:
                ctx.store.checks.record(
                    job.job_id, result.sha256, check.probe.as_json(), check.findings_json()
                )
            if job.watermark_url:  # the sidecar names the copy: it is written once that is there
                job = await self._fetch_watermarked(job, job.watermark_url, dest)
                await anyio.to_thread.run_sync(install.write_sidecar, result, job)
            ctx.record(job, Done(relative, result.sha256, result.size, ctx.wall()))
        finally:
            if install.holding:
                self._installing.release(relative)

    async def _download(
        self,
        url: str,
        dest: Path,
        make_room: Callable[[str], Awaitable[None]] | None = None,
        steps: InstallSteps | None = None,
        *,
        local: bool = False,
    ) -> Downloaded:
        """`download`, within the run's limits on a video's size and time (or, for a video
        another run of the account downloaded, `copy_verified`)."""
        tag = self.ctx.part_tag
        if local:
            return await copy_verified(url, dest, make_room, tag, steps)
        config = self.ctx.config
        return await download(
            self.ctx.downloads,
            url,
            dest,
            make_room=make_room,
            steps=steps,
            max_bytes=config.max_video_bytes,
            deadline=config.download_deadline,
            tag=tag,
        )

    async def _fetch_watermarked(self, job: JobRecord, url: str, dest: Path) -> JobRecord:
        """The watermarked copy (the provider's `url` for it) beside the video; the job as it
        then is."""
        copy = output.watermarked_path(dest)
        await self._download(url, copy)
        relative = copy.relative_to(self.ctx.run_dir).as_posix()
        return self.ctx.record(job, WatermarkSaved(relative))

    async def _keep_earlier_videos(self, job: JobRecord, relative: str) -> None:
        """Move aside every other done job's video recorded at `relative` (an edited row that
        kept its id): linked to its job id's name, recorded there, then free to replace."""
        ctx = self.ctx
        for other in ctx.store.done_at_path(relative):
            if other.job_id == job.job_id:
                continue
            kept = await anyio.to_thread.run_sync(
                output.keep_as,
                ctx.run_dir / relative,
                output.superseded_path(ctx.run_dir, other.job_id),
                other.sha256,
            )
            kept_relative = kept.relative_to(ctx.run_dir).as_posix()
            if other.watermark_path:
                copy = await anyio.to_thread.run_sync(
                    output.keep_as,
                    ctx.run_dir / other.watermark_path,
                    output.watermarked_path(kept),
                )
                other = ctx.record(other, WatermarkMoved(copy.relative_to(ctx.run_dir).as_posix()))
            await anyio.to_thread.run_sync(
                output.write_sidecar,
                ctx.run_dir,
                other,
                kept_relative,
                other.sha256 or "",
                other.bytes or 0,
            )
            ctx.record(other, VideoMoved(kept_relative))
            ctx.emit(
                Notice(f"{job.row_id}: kept the earlier paid video of this row at {kept_relative}")
            )


def _videos_not_intact(run_dir: Path, done: list[DoneVideo]) -> list[str]:
    """Job ids among (seq, job id, video path, bytes) whose file is missing or of another size."""
    gone = []
    for _, job_id, video, size in done:
        try:
            intact = video is not None and (run_dir / video).stat().st_size == size
        except OSError:
            intact = False
        if not intact:
            gone.append(job_id)
    return gone


class _Install:
    """What installing one job's video takes beside the rename, done in the rename's own
    thread call (download.InstallSteps): a paid file the state does not know moved aside first
    (output.keep_paid_file), the sidecar written after, unless a watermarked copy is still to
    come (it is named in the sidecar, which then waits for it)."""

    def __init__(self, job: JobRecord, run_dir: Path, relative: str, checking: bool) -> None:
        self.job = job
        self.run_dir = run_dir
        self.relative = relative
        self.checking = checking  # False: the run checks no video (--qa off)
        self.check: VideoCheck | None = None  # the QA check of the synced part
        self.holding = False  # the path's install lock
        self.kept: str | None = None  # where a paid file found at the path was kept

    def steps(self) -> InstallSteps:
        after = None if self.job.watermark_url else self._sidecar_of_job
        return InstallSteps(before=self.keep_paid_file, after=after)

    def checked(self) -> VideoCheck | None:
        """The video's check; None only where the run checks none."""
        if self.check is None and self.checking:
            raise AssertionError("a video was installed unchecked")
        return self.check

    def keep_paid_file(self, new_sha256: str) -> None:
        self.kept = output.keep_paid_file(self.run_dir, self.relative, new_sha256)

    def write_sidecar(self, result: Downloaded, job: JobRecord) -> None:
        check = self.checked()
        found = None if check is None else check.as_json()
        output.write_sidecar(self.run_dir, job, self.relative, result.sha256, result.size, found)

    def _sidecar_of_job(self, result: Downloaded) -> None:
        self.write_sidecar(result, self.job)


class _Installing:
    """A lock for each video path being installed: a job holds its path from making room for
    its video (the earlier video, or a paid file the state does not know, moved aside) to its
    `done`, so that a file and the state agree; jobs of other paths go on meanwhile."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[anyio.Lock, int]] = {}  # path → its lock, jobs at it

    async def acquire(self, path: str) -> None:
        lock, jobs = self._held.get(path, (anyio.Lock(), 0))
        self._held[path] = (lock, jobs + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._leave(path)
            raise

    def release(self, path: str) -> None:
        self._held[path][0].release()
        self._leave(path)

    def _leave(self, path: str) -> None:
        lock, jobs = self._held[path]
        if jobs == 1:
            del self._held[path]
        else:
            self._held[path] = (lock, jobs - 1)
