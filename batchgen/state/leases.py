"""An account's slots shared by every run on the machine, leased in the ledger.

Each run holding or wanting slots of an account is a holder: how many slots it holds
(`held`), whether it waits for one (`wanting`), and until when its lease lasts (`expires_at`,
renewed by its heartbeat). A killed run stops renewing, and its slots come back once its lease
has expired. The cap is what the user set (`batchgen account --slots`), else what 1303s taught
(lowered on a refusal; raised as creates hold, and one at a time when it held a run back and
tasks then ended cleanly), else none.
Runs sharing a cap take turns: while another holder waits, a run takes a slot only below its
fair share (the cap over the holders, rounded up).
A run's held slots are its tasks in flight and, while it is the account's only run and within
the cap, the slots its ended tasks left for its next creates: a slot goes back to the ledger
as its task ends only when another run is there (or the cap fell), so that the one run of an
account takes and gives back its slots without a transaction a task. What is held never
exceeds the cap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from batchgen.state.db import Database

DEFAULT_LEASE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Holder:
    """A run holding (or waiting for) an account's slots."""

    holder: str  #: the run process's id
    state_id: str  #: the state it runs
    share: int  #: its --concurrency
    held: int  #: the slots it holds: its tasks in flight, and those kept for its next creates
    wanting: bool  #: it waits for a slot
    expires_at: float  #: when its lease ends unless renewed


class SlotLeases:
    """One run's leases on an account's slots (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        account: str,
        holder: str,
        state_id: str,
        share: int,
        *,
        ttl: float = DEFAULT_LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.account = account
        self.holder = holder
        self.state_id = state_id
        self.share = share
        self.ttl = ttl
        self.clock = clock
        self.held = 0  # slots held in the ledger
        self.using = 0  # of which tasks in flight (or creates about to leave)
        self._clean = 0
        self._pressed = False  # the learned cap refused this run a slot since it last rose

    def try_take(self) -> bool:
        """Take a slot if the cap and the turns allow (else say this run waits)."""
        return self.take(1, waiting=True) == 1

    def take(self, wanted: int, *, waiting: bool = False) -> int:
        """Take up to `wanted` slots the cap and the turns allow; how many were taken. Slots
        this run kept are taken first, without a transaction. `waiting`: a run short of its
        slots says it waits (the others then give theirs back as their tasks end)."""
        kept = min(wanted, self.held - self.using)
        self.using += kept
        if kept == wanted:
            return kept
        with self.db.transaction():
            self._lock_account()
            self._renew_row()
            cap = self.cap()
            holders = self._holders()
            granted = _grantable(self.holder, holders, cap, wanted - kept)
            short = kept + granted < wanted
            if short and cap is not None and sum(h.held for h in holders) + granted >= cap:
                self._pressed = True
            self.held += granted
            self.using += granted
            self._set(wanting=int(short) if waiting or not short else None)
        return kept + granted

    def adopt(self) -> None:
        """Count a task the provider already holds for this run (found on resume)."""
        self.using += 1
        if self.using <= self.held:
            return
        with self.db.transaction():
            self._renew_row()
            self.held += 1
            self._set()

    def give_back(self, *, finished: bool = True) -> None:
        """A task ended (`finished`) or a slot was not used. The slot is kept for this run's
        next create while it is the account's only run and within the cap; else it goes back.
        A learned cap that held this run back is tried one higher after as many clean ends as
        it has slots."""
        self.using = max(0, self.using - 1)
        if finished and self._pressed:
            self._clean += 1
            learned = self._learned()
            if learned is not None and self._clean >= learned:
                self._clean, self._pressed = 0, False
                with self.db.transaction():
                    self._write_learned(learned + 1)
        if self.held > self.using and not self._may_keep():
            self.trim()

    def trim(self) -> None:
        """Give back the slots this run kept beyond its tasks in flight."""
        if self.held <= self.using:
            return
        with self.db.transaction():
            self.held = self.using
            self._renew_row()

    def _may_keep(self) -> bool:
        """Whether this run is the account's only live one and holds no more than the cap."""
        row = self.db.one(
            "SELECT (SELECT coalesce(slots, learned_slots) FROM accounts WHERE account = ?), "
            "(SELECT count(*) FROM holders WHERE account = ? AND holder <> ? "
            "AND expires_at >= ?)",
            (self.account, self.account, self.holder, self.clock()),
        )
        assert row is not None
        cap, others = row
        return int(others) == 0 and (cap is None or self.held <= int(cap))

    def renew(self) -> None:
        """The heartbeat: the lease lasts another `ttl` seconds."""
        with self.db.transaction():
            self._renew_row()

    def leave(self) -> None:
        self.db.write(
            "DELETE FROM holders WHERE account = ? AND holder = ?", (self.account, self.holder)
        )
        self.held = self.using = 0

    def throttled(self) -> None:
        """The provider refused a create for lack of slots (1303) while this create's slot was
        held: the account's tasks in flight, less that one, are what it holds."""
        with self.db.transaction():
            self._lock_account()
            self.held = self.using  # (what it kept is not in flight)
            self._renew_row()
            total = sum(h.held for h in self._holders())
            learned = self._learned()
            lowered = max(1, total - 1)
            if learned is None or lowered < learned:
                self._write_learned(lowered)
            self._clean = 0

    def accepted(self) -> None:
        """A create was accepted: the tasks in flight now are known to fit."""
        learned = self._learned()
        if learned is None:
            return
        others = sum(h.held for h in self._holders() if h.holder != self.holder)
        total = others + self.using
        if total > learned:
            self._write_learned(total)

    def _lock_account(self) -> None:
        """One run at a time decides on the account's slots (on SQLite the write transaction
        is enough; on PostgreSQL the account's row is locked until the commit)."""
        if self.db.dialect == "postgresql":
            self.db.one("SELECT 1 FROM accounts WHERE account = ? FOR UPDATE", (self.account,))

    def cap(self) -> int | None:
        row = self.db.one(
            "SELECT coalesce(slots, learned_slots) FROM accounts WHERE account = ?",
            (self.account,),
        )
        return None if row is None or row[0] is None else int(row[0])

    def _learned(self) -> int | None:
        row = self.db.one("SELECT learned_slots FROM accounts WHERE account = ?", (self.account,))
        return None if row is None or row[0] is None else int(row[0])

    def _write_learned(self, value: int) -> None:
        self.db.write(
            "UPDATE accounts SET learned_slots = ? WHERE account = ?", (value, self.account)
        )

    def _holders(self) -> list[Holder]:
        return holders_of(self.db, self.account, self.clock())

    def _renew_row(self) -> None:
        """This run's row, its lease renewed (made again with what it holds if it expired
        while the run was paused), and every expired lease of the account dropped."""
        now = self.clock()
        self.db.write(
            "DELETE FROM holders WHERE account = ? AND expires_at < ?", (self.account, now)
        )
        self.db.write(
            "INSERT INTO holders (account, holder, state_id, share, held, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, holder) "
            "DO UPDATE SET expires_at = excluded.expires_at, held = excluded.held",
            (self.account, self.holder, self.state_id, self.share, self.held, now + self.ttl),
        )

    def _set(self, wanting: int | None = None) -> None:
        extra = "" if wanting is None else f", wanting = {int(wanting)}"
        self.db.write(
            f"UPDATE holders SET held = ?{extra} WHERE account = ? AND holder = ?",
            (self.held, self.account, self.holder),
        )


def holders_of(db: Database, account: str, now: float) -> list[Holder]:
    """The account's holders whose leases have not expired."""
    rows = db.all(
        "SELECT holder, state_id, share, held, wanting, expires_at FROM holders "
        "WHERE account = ? AND expires_at >= ? ORDER BY holder",
        (account, now),
    )
    return [
        Holder(str(h), str(s), int(share), int(n), bool(w), float(e))
        for h, s, share, n, w, e in rows
    ]


def _grantable(me: str, holders: list[Holder], cap: int | None, wanted: int) -> int:
    """How many of `wanted` more slots `me` may take, one after another."""
    granted = 0
    while granted < wanted:
        now = [h if h.holder != me else replace(h, held=h.held + granted) for h in holders]
        if not any(h.holder == me for h in holders):
            now.append(Holder(me, "", 0, granted, False, 0.0))
        if not _may_take(me, now, cap):
            break
        granted += 1
    return granted


def _may_take(me: str, holders: list[Holder], cap: int | None) -> bool:
    """Whether `me` may take one more slot of an account with `cap`, given its holders."""
    if cap is None:
        return True
    if sum(h.held for h in holders) >= cap:
        return False
    active = [h for h in holders if h.held > 0 or h.wanting or h.holder == me]
    mine = next((h.held for h in holders if h.holder == me), 0)
    others_wait = any(h.wanting for h in holders if h.holder != me)
    fair = math.ceil(cap / max(1, len(active)))
    return mine < fair or not others_wait
