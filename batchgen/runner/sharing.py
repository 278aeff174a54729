"""What a run shares with the other runs of its account, through the ledger (state/ledger.py):
the creates each has sent, and the account's slots (state/leases.py).

Before a create leaves, its external id is claimed in the ledger. A generation another state
of the account has already sent is never sent again from here (`decide`):

    its video is there (sha256 recorded)    → copied from there (hard link), checked, $0
    its task is known and did not fail      → followed from here, downloaded here, $0
    it failed there                         → failed here, saying where (`retry` sends a new one)
    it is being sent by a run alive now     → waited for
    it is unknown there                     → unknown here, pointing at the other state
    unknown there and `retry --unknown` here → taken over and sent (the user's choice)

Every change of this state's own sends is copied into the ledger as the run records it.
"""

from __future__ import annotations

import enum
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from batchgen.providers.account import Account
from batchgen.state.changes import (
    Accepted,
    Change,
    Done,
    Failed,
    Recovered,
    Retrying,
    Unknown,
    VideoMoved,
)
from batchgen.state.leases import SlotLeases
from batchgen.state.ledger import Ledger, RunEntry, Send
from batchgen.state.records import JobRecord
from batchgen.state.store import Store
from batchgen.status import JobStatus

STATE_ID = "state_id"  # the state's meta key of its id in the ledger
WAIT_FOR_OTHER = 2.0  # seconds before a create another live run is sending is looked at again
# Pending jobs up to which `held_elsewhere` asks the ledger about each (about 3 ms a thousand);
# past it, reading the ledger's sends of other states once costs less.
ASKED_EACH = 20_000


class Claimed(enum.Enum):
    """What to do with a pending job whose create is about to leave."""

    SEND = "send"
    TAKE_OVER = "take_over"
    REUSE_VIDEO = "reuse_video"
    FOLLOW = "follow"
    FAILED = "failed"
    WAIT = "wait"
    UNKNOWN = "unknown"


def decide(send: Send | None, state_id: str, *, other_alive: bool, resent: bool) -> Claimed:
    """What this state does with a create whose ledger entry is `send` (see the module
    docstring); `other_alive`: the state that sent it has a run going now; `resent`: the user
    chose to send it again here (`retry --unknown`)."""
    if send is None or send.state_id == state_id:
        return Claimed.SEND
    if send.video_path and send.video_sha256 and Path(send.video_path).is_file():
        return Claimed.REUSE_VIDEO
    if send.task_id and send.status != "failed":
        return Claimed.FOLLOW
    if send.status == "failed":
        return Claimed.FAILED
    if other_alive:
        return Claimed.WAIT
    return Claimed.TAKE_OVER if resent else Claimed.UNKNOWN


@dataclass(frozen=True, slots=True)
class Claim:
    """The ledger's answer for one create: what to do, and the other state's entry."""

    action: Claimed
    send: Send | None = None
    other: RunEntry | None = None

    def where(self) -> str:
        """The other state, as a person finds it."""
        if self.other is None:
            return f"another state ({self.send.state_id if self.send else '?'})"
        return f"run {self.other.name} (state {self.other.state_path})"


class SharedAccount:
    """A run's place among the runs of its account (see the module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        account: Account,
        state_id: str,
        share: int,
        *,
        lease_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.account = account
        self.state_id = state_id
        self.holder = uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._real_folders: dict[Path, str] = {}  # (each run folder, resolved once)
        self.slots = SlotLeases(
            ledger.db,
            account.fingerprint,
            self.holder,
            state_id,
            share,
            ttl=lease_seconds,
            clock=clock,
        )

    # -- creates ----------------------------------------------------------------------------

    def claim(self, job: JobRecord, external_id: str, cost_usd: float | None) -> Claim:
        """Claim `external_id` for this state before its create leaves (synced), or say why it
        is not sent from here."""
        return self.claim_all([(job, external_id, cost_usd)])[0]

    def claim_all(
        self, creates: Sequence[tuple[JobRecord, str, float | None]], *, synced: bool = True
    ) -> list[Claim]:
        """`claim` for creates about to leave together: one synced commit for them all
        (`synced` False: see Ledger.claim_all)."""
        account = self.account.fingerprint
        claims = [(ext, job.job_id, cost) for job, ext, cost in creates]
        others = self.ledger.claim_all(account, self.state_id, claims, synced=synced)
        return [
            self._claimed(job, ext, other)
            for (job, ext, _), other in zip(creates, others, strict=True)
        ]

    def _claimed(self, job: JobRecord, external_id: str, other: Send | None) -> Claim:
        if other is None:
            return Claim(Claimed.SEND)
        run = self.ledger.run(other.state_id)
        action = decide(
            other, self.state_id, other_alive=self._alive(run), resent=job.error_kind == "resent"
        )
        if action == Claimed.TAKE_OVER:
            account = self.account.fingerprint
            self.ledger.take_over(account, external_id, self.state_id, job.job_id)
        return Claim(action, other, run)

    def recheck(self, external_id: str) -> Claim:
        """What another state's entry for a create this state holds as unknown now says
        (nothing is claimed)."""
        other = self.ledger.send(self.account.fingerprint, external_id)
        if other is None or other.state_id == self.state_id:
            return Claim(Claimed.UNKNOWN, other)
        run = self.ledger.run(other.state_id)
        action = decide(other, self.state_id, other_alive=self._alive(run), resent=False)
        return Claim(action, other, run)

    def accepted_elsewhere(self, job: JobRecord, task_id: str) -> None:
        """A create of this state was accepted but its job is another worker's now: the task
        goes into the ledger, where that worker finds it (`own_task`)."""
        if job.external_task_id is not None:
            self.ledger.sent(
                self.account.fingerprint,
                self.state_id,
                external_id=job.external_task_id,
                task_id=task_id,
                status="accepted",
                accepted_at=self.clock(),
            )

    def own_task(self, external_id: str) -> str | None:
        """The task the ledger holds for a create of this state, if one is recorded."""
        send = self.ledger.send(self.account.fingerprint, external_id)
        if send is None or send.state_id != self.state_id:
            return None
        return send.task_id

    def _alive(self, run: RunEntry | None) -> bool:
        if run is None or not run.running:
            return False
        return run.last_active >= self.clock() - self.lease_seconds

    def recorded(self, job: JobRecord, change: Change, run_dir: Path) -> None:
        """Copy a change of one of this state's own sends into the ledger."""
        ext = job.external_task_id
        if ext is None or job.reused_from is not None:
            return
        account = self.account.fingerprint
        if isinstance(change, Retrying) and job.task_id is None:
            self.ledger.release(account, ext, self.state_id)  # the create was not carried out
            return
        fields = _ledger_fields(job, change, self._real_folder(run_dir), self.clock())
        if fields is not None:
            self.ledger.sent(account, self.state_id, external_id=ext, **fields)

    def _real_folder(self, run_dir: Path) -> str:
        """The run folder's absolute path, links resolved, as this run first saw it (a
        video's path in the ledger is it and the video's own path in the run): resolved once
        a run, not once a video, a dozen system calls each."""
        folder = self._real_folders.get(run_dir)
        if folder is None:
            folder = self._real_folders[run_dir] = str(run_dir.resolve())
        return folder

    def held_elsewhere(self, store: Store) -> int:
        """How many of the pending jobs of `store`'s manifest other states of the account have
        sent. Up to ASKED_EACH pending jobs, each one's external id is asked of the ledger
        (a few indexed queries); past that, the ledger's sends of other states are read (one
        pass over the account's sends) and, while they are fewer than the pending jobs, asked
        of the state."""
        account = self.account.fingerprint
        pending = store.counts()[JobStatus.PENDING]
        if pending > ASKED_EACH:
            others = self.ledger.sent_elsewhere(account, self.state_id, limit=pending)
            if others is not None:
                return store.pending_sent_as(others) if others else 0
        return self.ledger.held_elsewhere(account, self.state_id, store.pending_external_ids())

    # -- the run ----------------------------------------------------------------------------

    def heartbeat(self) -> None:
        self.slots.renew()
        self.ledger.run_active(self.state_id)

    def started(self) -> None:
        self.ledger.run_active(self.state_id, running=True)

    def ended(self, counts: dict[str, int], spent_usd: float) -> None:
        self.slots.leave()
        self.ledger.run_ended(self.state_id, counts, spent_usd)


def _ledger_fields(
    job: JobRecord, change: Change, folder: str, now: float
) -> dict[str, object] | None:
    """The ledger's columns a change of an own send sets (None: nothing to copy)."""
    if isinstance(change, Accepted | Recovered):
        fields: dict[str, object] = {"task_id": job.task_id, "status": "accepted"}
        fields["accepted_at"] = now
        if job.status == JobStatus.DONE:
            fields.update(_video_fields(job, folder))
        return fields
    if isinstance(change, Done | VideoMoved):
        return _video_fields(job, folder)
    if isinstance(change, Failed):
        return {"status": "failed", "note": change.reason}
    if isinstance(change, Unknown):
        return {"status": "unknown", "note": change.reason}
    return None


def _video_fields(job: JobRecord, folder: str) -> dict[str, object]:
    """`folder`: the run folder's absolute path."""
    path = os.path.join(folder, job.output_path) if job.output_path else None
    facts = json.dumps({name: getattr(job, name) for name in TASK_FACTS})
    return {
        "status": "done",
        "task_id": job.task_id,  # (a task adopted by hand reaches the ledger here)
        "video_sha256": job.sha256,
        "video_path": path,
        "facts": facts,
    }


# What the provider said of a finished task, carried to a state that reuses its video.
TASK_FACTS = ("task_created_at", "task_updated_at", "unit_deduction", "video_duration")


def task_facts(send: Send) -> dict[str, object]:
    """The job columns a reused video's task facts set (none if the ledger has none)."""
    found = json.loads(send.facts) if send.facts else {}
    return {name: found[name] for name in TASK_FACTS if name in found}


# -- joining ----------------------------------------------------------------------------------


def state_id_of(store: Store) -> str:
    """The state's id in the ledger, given to it the first time it is asked."""
    found = store.get_meta(STATE_ID)
    if found is None:
        found = uuid.uuid4().hex
        store.set_meta(STATE_ID, found)
        store.db.commit()
    return found


def register(
    ledger: Ledger,
    store: Store,
    account: Account,
    entry: dict[str, str],
) -> str:
    """Record the state in the ledger (what it sent before the ledger knew it, the first
    time), and note its start; returns the state's id."""
    state_id = state_id_of(store)
    ledger.note_account(account.fingerprint, account.provider, account.base_url)
    first_time = not ledger.knows_state(state_id)
    now = ledger.clock()
    known = ledger.run(state_id)
    ledger.note_run(
        RunEntry(
            state_id=state_id,
            account=account.fingerprint,
            name=entry["name"],
            manifest=entry["manifest"],
            state_path=str(Path(store.path).resolve()),
            run_dir=str(Path(entry["run_dir"]).resolve()),
            created_at=known.created_at if known else now,
            last_active=now,
            running=False,
            host=socket.gethostname(),
            pid=os.getpid(),
            counts={status.value: n for status, n in store.counts().items()},
            spent_usd=known.spent_usd if known else 0.0,
        )
    )
    if first_time:
        run_dir = Path(entry["run_dir"])
        ledger.record_sends(account.fingerprint, state_id, _sends_of(store, run_dir))
    return state_id


def _sends_of(store: Store, run_dir: Path) -> list[Send]:
    """What a state sent, as ledger entries (jobs that never left are not sends)."""
    folder = str(run_dir.resolve())
    sends = []
    for job in store.sent_jobs():
        if job.reused_from is not None or job.external_task_id is None:
            continue
        if job.status == JobStatus.PENDING and job.task_id is None:
            continue
        status = _LEDGER_STATUS.get(job.status, "accepted")
        video = _video_fields(job, folder) if job.status == JobStatus.DONE else {}
        sends.append(
            Send(
                external_id=job.external_task_id,
                state_id="",
                job_id=job.job_id,
                status=status,
                task_id=job.task_id,
                sent_at=job.submitted_at or 0.0,
                video_sha256=job.sha256 if video else None,
                video_path=str(video.get("video_path")) if video else None,
                note=job.last_error if status in ("failed", "unknown") else None,
                facts=str(video.get("facts")) if video else None,
            )
        )
    return sends


_LEDGER_STATUS = {
    JobStatus.SUBMITTING: "submitting",
    JobStatus.DONE: "done",
    JobStatus.FAILED: "failed",
    JobStatus.UNKNOWN: "unknown",
}
