"""Workers of one run: several processes (on one machine or many) running one state kept in
PostgreSQL, each job held by one of them at a time.

A worker claims the jobs it works on: pending ones as it feeds them, and those in flight
whose holder's lease ran out (a worker killed, cut off, or paused too long). A claim sets the
job's `owner`, raises its `epoch` (the fencing token) and sets `lease_until`, in one
statement that skips rows another worker is claiming (`FOR UPDATE SKIP LOCKED`). A worker
renews the leases of every job it holds with its heartbeat. Every change a worker writes to a
job it claimed is fenced: it applies only while the job still has that owner and epoch
(store.py); a worker that lost a job writes nothing more for it (LeaseLost) and lets it go.
A job taken over in `submitting` is recovered exactly as after a crash: looked up, never sent
again blindly.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable

from batchgen.state.db import Database
from batchgen.state.records import JOB_COLUMNS, JobRecord, job_record
from batchgen.status import JobStatus

DEFAULT_JOB_LEASE = 60.0
# The statuses of a job a worker holds while it works on it: pending, and in flight. A change
# that moves a job to any other (done, failed, unknown) lets go of it in the same write
# (store.py), so that a worker's heartbeat and its leaving touch only the jobs it is working
# on, not every job it ever finished.
_WORKED_ON = (
    JobStatus.PENDING,
    JobStatus.SUBMITTING,
    JobStatus.SUBMITTED,
    JobStatus.RUNNING,
    JobStatus.DOWNLOADING,
)
HOLDING = frozenset(_WORKED_ON)
IN_FLIGHT = "(" + ", ".join(f"'{status.value}'" for status in _WORKED_ON[1:]) + ")"
# A job a worker may hold: the words of the `jobs_held` index's condition (migrations.py), so
# that the database reads the held jobs from it instead of every job of the run.
HELD = f"owner IS NOT NULL AND status IN ('pending', {IN_FLIGHT[1:-1]})"


class JobClaims:
    """One worker's hold on the jobs of a run (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        ttl: float = DEFAULT_JOB_LEASE,
        clock: Callable[[], float] = time.time,
        worker: str | None = None,
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.clock = clock
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.epochs: dict[str, int] = {}  # job → the epoch this worker claimed it at
        self._skip = " FOR UPDATE SKIP LOCKED" if db.dialect == "postgresql" else ""

    def join(self) -> None:
        now = self.clock()
        self.db.write(
            "INSERT INTO workers (worker, host, pid, started_at, heartbeat_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (self.worker, socket.gethostname(), os.getpid(), now, now),
        )
        self.db.commit()

    def heartbeat(self) -> None:
        """Renew this worker's leases (and say it is alive); then fold the kept counts
        (Database.fold_counts)."""
        now = self.clock()
        with self.db.transaction():
            self.db.write(
                "UPDATE workers SET heartbeat_at = ? WHERE worker = ?", (now, self.worker)
            )
            self.db.write(
                f"UPDATE jobs SET lease_until = ? WHERE owner = ? AND {HELD}",
                (now + self.ttl, self.worker),
            )
        self.db.commit()
        self.db.fold_counts()

    def leave(self) -> None:
        """Let go of every job this worker holds (others may take them at once): those it
        was working on; the ones it finished were let go of as they finished."""
        with self.db.transaction():
            self.db.write(
                "UPDATE jobs SET owner = NULL, lease_until = 0 WHERE owner = ?", (self.worker,)
            )
            self.db.write("DELETE FROM workers WHERE worker = ?", (self.worker,))
        self.db.commit()
        self.epochs.clear()

    def claim_pending(self, now: float, limit: int, after_seq: int = -1) -> list[JobRecord]:
        """Claim up to `limit` pending jobs due now, in manifest order after `after_seq`, that
        no live worker holds."""
        free = "(owner IS NULL OR owner = ? OR lease_until < ?)"
        pick = (
            f"SELECT job_id FROM jobs WHERE status = 'pending' AND seq > ? AND not_before <= ? "
            f"AND {free} ORDER BY seq LIMIT ?{self._skip}"
        )
        return self._claim(pick, (after_seq, now, self.worker, now, limit))

    def take_over(self, now: float) -> list[JobRecord]:
        """Claim the jobs in flight whose holder's lease has run out (or that none holds, or
        whose holder was a process of this machine that is gone); those left `submitting` are
        due for a look-up at once."""
        self._reap_local(now)
        pick = (
            f"SELECT job_id FROM jobs WHERE status IN {IN_FLIGHT} "
            f"AND (owner IS NULL OR (owner != ? AND lease_until < ?)){self._skip}"
        )
        return self._claim(pick, (self.worker, now))

    def _reap_local(self, now: float) -> None:
        """Workers of this machine whose process is gone (killed) hold nothing any more: no
        need to wait for their leases to run out."""
        host = socket.gethostname()
        gone = [
            worker
            for worker, where, pid, _, _ in self.workers(now)
            if where == host and worker != self.worker and not _alive(pid)
        ]
        for worker in gone:
            with self.db.transaction():
                self.db.write("UPDATE jobs SET lease_until = 0 WHERE owner = ?", (worker,))
                self.db.write("DELETE FROM workers WHERE worker = ?", (worker,))
            self.db.commit()

    def _claim(self, pick: str, params: tuple[object, ...]) -> list[JobRecord]:
        now = self.clock()
        with self.db.transaction():
            rows = self.db.write_all(
                "UPDATE jobs SET owner = ?, epoch = epoch + 1, lease_until = ?, not_before = "
                "CASE WHEN status = 'submitting' THEN 0 ELSE not_before END "
                f"WHERE job_id IN ({pick}) RETURNING {JOB_COLUMNS}, epoch",
                (self.worker, now + self.ttl, *params),
            )
        self.db.commit()
        jobs = []
        for row in rows:
            job = job_record(row[:-1])
            self.epochs[job.job_id] = int(row[-1])
            jobs.append(job)
        return sorted(jobs, key=lambda job: job.seq)

    def in_flight_elsewhere(self, now: float) -> int:
        """Jobs in flight (or pending and held) under another live worker's lease: this worker
        stays to take them over should that worker die."""
        row = self.db.one(
            f"SELECT count(*) FROM jobs WHERE {HELD} AND owner != ? AND lease_until >= ?",
            (self.worker, now),
        )
        return int(row[0]) if row else 0

    def workers(self, now: float) -> list[tuple[str, str, int, float, int]]:
        """(worker, host, pid, last heartbeat, jobs held) of every worker seen alive."""
        return live_workers(self.db, now, self.ttl)


def live_workers(
    db: Database, now: float, ttl: float = DEFAULT_JOB_LEASE
) -> list[tuple[str, str, int, float, int]]:
    """(worker, host, pid, last heartbeat, jobs held) of every worker of the run whose
    heartbeat is younger than `ttl`."""
    rows = db.all(
        "SELECT w.worker, w.host, w.pid, w.heartbeat_at, "
        f"(SELECT count(*) FROM jobs WHERE owner = w.worker AND {HELD}) "
        "FROM workers w WHERE w.heartbeat_at >= ? ORDER BY w.worker",
        (now - ttl,),
    )
    return [(str(w), str(h), int(p), float(b), int(n)) for w, h, p, b, n in rows]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
