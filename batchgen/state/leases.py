"""An account's slots shared by every run on the machine, leased in the ledger.

Each run holding or wanting slots of an account is a holder: how many tasks it has in flight
at the provider (`held`), whether it waits for one (`wanting`), and until when its lease
lasts (`expires_at`, renewed by its heartbeat). A killed run stops renewing, and its slots
come back once its lease has expired. The cap is what the user set (`batchgen account
--slots`), else what 1303s taught (lowered on a refusal; raised as creates hold, and one at a
time when it held a run back and tasks then ended cleanly), else none.
Runs sharing a cap take turns: while another holder waits, a run takes a slot only below its
fair share (the cap over the holders, rounded up).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from batchgen.state.db import Database

DEFAULT_LEASE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Holder:
    """A run holding (or waiting for) an account's slots."""

    holder: str  #: the run process's id
    state_id: str  #: the state it runs
    share: int  #: its --concurrency
    held: int  #: its tasks in flight at the provider
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
        self.held = 0
        self._clean = 0
        self._pressed = False  # the learned cap refused this run a slot since it last rose

    def try_take(self) -> bool:
        """Take a slot if the cap and the turns allow (else say this run waits)."""
        with self.db.transaction():
            self._lock_account()
            self._renew_row()
            cap = self.cap()
            holders = self._holders()
            if not _may_take(self.holder, holders, cap):
                self._pressed = self._pressed or sum(h.held for h in holders) >= (cap or 0)
                self._set(wanting=1)
                return False
            self.held += 1
            self._set(wanting=0)
            return True

    def adopt(self) -> None:
        """Count a task the provider already holds for this run (found on resume)."""
        with self.db.transaction():
            self._renew_row()
            self.held += 1
            self._set()

    def give_back(self, *, finished: bool = True) -> None:
        """A task ended (`finished`) or a slot was not used. A learned cap that held this run
        back is tried one higher after as many clean ends as it has slots."""
        with self.db.transaction():
            self._renew_row()
            self.held = max(0, self.held - 1)
            self._set()
            if finished and self._pressed:
                self._clean += 1
                learned = self._learned()
                if learned is not None and self._clean >= learned:
                    self._clean, self._pressed = 0, False
                    self._write_learned(learned + 1)

    def renew(self) -> None:
        """The heartbeat: the lease lasts another `ttl` seconds."""
        with self.db.transaction():
            self._renew_row()

    def leave(self) -> None:
        self.db.write(
            "DELETE FROM holders WHERE account = ? AND holder = ?", (self.account, self.holder)
        )
        self.held = 0

    def throttled(self) -> None:
        """The provider refused a create for lack of slots (1303) while this create's slot was
        held: the account's tasks in flight, less that one, are what it holds."""
        with self.db.transaction():
            self._lock_account()
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
        total = sum(h.held for h in self._holders())
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
