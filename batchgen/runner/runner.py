"""A run: every unfinished job of a state taken to an end, in one task group.

    recovery   what an earlier run left: tasks to follow, downloads, lost creates
    rebuild    paid tasks the run folder names and the state lost, taken back before any create
    feed       pending jobs → slots → creates (feed.py); lost answers → recovery.py
    poll       followed tasks → their end (poll.py)
    download   finished tasks → videos → `done` (downloads.py)

The feed ends when nothing is pending or waiting (or the run stops); the poll stage ends when
the feed has ended and nothing is followed or being submitted, and closes the download queue;
the download workers end when the queue is empty. A first Ctrl-C (or SIGTERM) stops
submitting and drains what is paid for; one that comes while the run is stopping (a second
one, or the first after a budget, an account or a storage stop) ends it at once, the state
consistent. A provider that can no longer be reached, or refuses the queries a drain needs,
ends the run at once too (exit 3).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import httpx
from anyio.abc import TaskStatus

from batchgen import output
from batchgen.events import Heartbeat, Listener, Notice, RunFinished, RunStarted
from batchgen.money.budget import Budget
from batchgen.providers import Provider
from batchgen.runner.config import RunConfig, RunOutcome
from batchgen.runner.context import PayloadFn, RunContext
from batchgen.runner.downloads import Downloader
from batchgen.runner.feed import Feeder
from batchgen.runner.poll import Poller
from batchgen.runner.rebuild import Rebuild
from batchgen.runner.receiver import CallbackReceiver
from batchgen.runner.recovery import Recovery
from batchgen.runner.sharing import SharedAccount
from batchgen.state.claims import JobClaims
from batchgen.state.store import Store
from batchgen.status import JobStatus

COMMIT_INTERVAL = 0.05  # seconds of job updates a crash may lose (each safe to redo)
HEARTBEAT_INTERVAL = 1.0
# Finished jobs from which the run says it is writing the index as it ends (some 2 s at
# 50,000 on these machines; before, a stopped run was silent for it).
INDEX_NOTICE = 50_000


class Runner:
    """Runs every unfinished job of a store to an end. Use `await Runner(...).run()`."""

    def __init__(
        self,
        store: Store,
        provider: Provider,
        downloads: httpx.AsyncClient,
        payload: PayloadFn,
        run_dir: Path,
        config: RunConfig | None = None,
        listeners: Sequence[Listener] = (),
        wall_clock: Callable[[], float] = time.time,
        budget: Budget | None = None,
        shared: SharedAccount | None = None,
    ) -> None:
        self.ctx = RunContext(
            store,
            provider,
            downloads,
            payload,
            run_dir,
            config or RunConfig(),
            listeners,
            wall_clock,
            budget,
            shared,
        )
        listen = self.ctx.config.listen
        self.poller = Poller(self.ctx)
        self.receiver = None if listen is None else CallbackReceiver(self.ctx, listen, self.poller)

    async def run(self) -> RunOutcome:
        ctx = self.ctx
        started = time.monotonic()
        calls_before = ctx.provider.calls
        ctx.provider.transport.observer = ctx.observe_exchange
        if ctx.store.claims is None:
            # A worker commits each write at once: a worker paused with a transaction open
            # would hold the rows it wrote from the others.
            ctx.store.db.group_commits()
        try:
            if self.receiver is not None:
                await self.receiver.bind()
            async with anyio.create_task_group() as background:
                ctx.cancel_run = background.cancel_scope.cancel
                if ctx.config.handle_signals:
                    await background.start(self._watch_signals)
                counts = ctx.store.counts()
                ctx.emit(RunStarted(sum(counts.values()), counts))
                background.start_soon(self._commit_often)
                if ctx.shared is not None:
                    ctx.shared.started()
                    background.start_soon(self._keep_leases, ctx.shared)
                if ctx.store.claims is not None:
                    background.start_soon(self._keep_claims, ctx.store.claims)
                if self.receiver is not None:
                    background.start_soon(self.receiver.serve, background)
                await self._stages()
                background.cancel_scope.cancel()
        finally:
            ctx.queue.close()
            ctx.queued.close()
            ctx.provider.transport.observer = None
            ctx.store.db.end_grouping()
            if ctx.shared is not None:
                ctx.shared.slots.leave()
        ended = ctx.store.counts()
        done = ended[JobStatus.DONE]
        if done >= INDEX_NOTICE:
            ctx.emit(Notice(f"writing index.jsonl from the state: {done:,} finished jobs"))
        output.write_indexes(ctx.store, ctx.run_dir, output.index_parts(done))
        outcome = RunOutcome(
            counts=ended,  # (writing the indexes changes no job)
            wall_seconds=time.monotonic() - started,
            api_calls=ctx.provider.calls - calls_before,
            stopped=ctx.stopping,
            stop_reason=ctx.stop_reason,
            interrupted=ctx.interrupted,
            concurrency=ctx.config.concurrency,
            busy_seconds=ctx.busy_seconds,
            adopted=ctx.adopted,
            callbacks=dict(self.receiver.counts) if self.receiver is not None else {},
            touched=len(ctx.touched),
        )
        ctx.emit(RunFinished(outcome.counts, outcome.wall_seconds, outcome.stopped))
        return outcome

    async def _stages(self) -> None:
        ctx = self.ctx
        poller = self.poller
        recovery = Recovery(ctx, poller)
        feeder = Feeder(ctx, recovery)
        downloader = Downloader(ctx)
        feeding_done, checks_done = anyio.Event(), anyio.Event()
        alone = recovery.recover_at_start()
        if ctx.config.submit:
            if alone:  # with other workers on the run, its state is not lost
                await Rebuild(ctx, poller).from_run_folder()
            await recovery.sweep()
        async with ctx.queued, downloader.checks, anyio.create_task_group() as stages:
            if ctx.config.submit:
                stages.start_soon(recovery.sweep_while_feeding, feeding_done)
            for _ in range(ctx.config.download_workers):
                stages.start_soon(downloader.worker, ctx.queued.clone())
            stages.start_soon(poller.run, feeding_done, checks_done)
            stages.start_soon(downloader.check_done_videos, checks_done)
            await feeder.run(stages, feeding_done)

    async def _commit_often(self) -> None:
        ctx = self.ctx
        beat = anyio.current_time()
        while True:
            await anyio.sleep(COMMIT_INTERVAL)
            ctx.store.db.commit()
            now = anyio.current_time()
            if now - beat >= HEARTBEAT_INTERVAL:
                beat = now
                ctx.emit(Heartbeat(ctx.slots.cap, *ctx.gate.waits(now), stopping=ctx.stopping))

    async def _keep_leases(self, shared: SharedAccount) -> None:
        """Renew this run's slot leases and say it is alive, a few times a lease."""
        while True:
            await anyio.sleep(shared.lease_seconds / 4)
            shared.heartbeat()

    async def _keep_claims(self, claims: JobClaims) -> None:
        """A worker renews the leases of the jobs it holds, a few times a lease."""
        while True:
            await anyio.sleep(claims.ttl / 4)
            claims.heartbeat()

    async def _watch_signals(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """SIGINT/SIGTERM: stop submitting and drain, or stop at once if the run is stopping
        already (RunContext.interrupt). In place before the run says anything (a closed pipe
        is answered with an interrupt)."""
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for _ in signals:
                if self.ctx.interrupt():
                    return
