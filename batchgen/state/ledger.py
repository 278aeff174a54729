"""The account ledger: one file per user that every run on the machine shares, keyed by the
account (providers/account.py). It records every create any run sends, before it leaves (the
claim is synced, as the state's `submitting` is), with the state that sent it, its task once
known, its outcome, and for a finished job the video's sha256 and where it lies; the runs it
has seen; and each account's slot cap (leases.py holds the slots themselves).

A generation's external id is the hash of its request and sample index, the same in every
manifest and folder: a second state that meets it finds the first one's claim and follows,
reuses or points at it instead of paying again (runner/sharing.py decides which).

Where it lies: `BATCHGEN_LEDGER`, else `$XDG_STATE_HOME/batchgen/ledger.sqlite`, else
`~/.local/state/batchgen/ledger.sqlite`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.state.connect import open_database
from batchgen.state.db import Database
from batchgen.state.migrations import LEDGER_MIGRATIONS

LEDGER_SCHEMA = "batchgen_account"  # on PostgreSQL, the schema every run of the database shares

LEDGER_ENV = "BATCHGEN_LEDGER"


def ledger_path(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the ledger lies (see the module docstring)."""
    if environ.get(LEDGER_ENV):
        return Path(environ[LEDGER_ENV]).expanduser()
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "batchgen" / "ledger.sqlite"


@dataclass(frozen=True, slots=True)
class Send:
    """One create the account was sent, as the ledger holds it."""

    external_id: str  #: the id the create carried (the same for a generation everywhere)
    state_id: str  #: the state that sent it
    job_id: str  #: its job there
    status: str  #: submitting, accepted, done, failed or unknown
    task_id: str | None  #: the provider's task, once known
    sent_at: float  #: when the claim was written (before the create left)
    video_sha256: str | None  #: of the finished video
    video_path: str | None  #: the finished video, an absolute path
    note: str | None  #: the outcome's reason (failed, unknown)
    facts: str | None = None  #: what the provider said of the finished task (JSON)


@dataclass(frozen=True, slots=True)
class RunEntry:
    """One state the ledger has seen, and what it last reported."""

    state_id: str  #: the id the state holds in its meta
    account: str  #: the account it sends to
    name: str  #: the run's name
    manifest: str  #: the manifest, as given
    state_path: str  #: the state, an absolute path
    run_dir: str  #: its output folder, an absolute path
    created_at: float  #: when the ledger first saw it
    last_active: float  #: its last start, heartbeat or end
    running: bool  #: a run of it had started and not ended (or was killed)
    host: str  #: the machine it last ran on
    pid: int | None  #: the process that last ran it
    counts: dict[str, int]  #: its jobs per status, at its last start or end
    spent_usd: float  #: what it had spent, at its last start or end


_SEND_COLUMNS = (
    "external_id, state_id, job_id, status, task_id, sent_at, video_sha256, video_path, note, facts"
)
_RUN_COLUMNS = (
    "state_id, account, name, manifest, state_path, run_dir, created_at, last_active, running, "
    "host, pid, counts, spent_usd"
)


class Ledger:
    """The ledger file. Open with `Ledger.open()`; every write commits before it returns."""

    def __init__(self, db: Database, clock: Any = time.time) -> None:
        self.db = db
        self.clock = clock

    @classmethod
    def open(cls, target: Path | str | None = None) -> Ledger:
        """The ledger file (`ledger_path()` by default), or on a PostgreSQL database (a URL)
        the schema every machine using that database shares."""
        found = ledger_path() if target is None else target
        return cls(open_database(found, schema=LEDGER_SCHEMA, migrations=LEDGER_MIGRATIONS))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- accounts ---------------------------------------------------------------------------

    def note_account(self, account: str, provider: str, base_url: str) -> None:
        now = self.clock()
        self.db.write(
            "INSERT INTO accounts (account, provider, base_url, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET last_seen = ?",
            (account, provider, base_url, now, now, now),
        )

    def set_slots(self, account: str, slots: int | None) -> None:
        """The account's cap on tasks in flight, as the user sets it (None: learned)."""
        self.db.write("UPDATE accounts SET slots = ? WHERE account = ?", (slots, account))

    def accounts(self) -> list[tuple[str, str, str, int | None, int | None]]:
        """(account, provider, base URL, slots set, slots learned) for every account seen."""
        return [
            (str(a), str(p), str(b), s, learned)
            for a, p, b, s, learned in self.db.all(
                "SELECT account, provider, base_url, slots, learned_slots FROM accounts "
                "ORDER BY last_seen DESC"
            )
        ]

    # -- runs -------------------------------------------------------------------------------

    def knows_state(self, state_id: str) -> bool:
        return self.db.one("SELECT 1 FROM runs WHERE state_id = ?", (state_id,)) is not None

    def note_run(self, entry: RunEntry) -> None:
        """Record (or bring up to date) a state and its last start."""
        self.db.write(
            f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * 13)}) "
            "ON CONFLICT (state_id) DO UPDATE SET account = excluded.account, "
            "name = excluded.name, manifest = excluded.manifest, "
            "state_path = excluded.state_path, run_dir = excluded.run_dir, "
            "last_active = excluded.last_active, running = excluded.running, "
            "host = excluded.host, pid = excluded.pid, counts = excluded.counts, "
            "spent_usd = excluded.spent_usd",
            _run_values(entry),
        )

    def run_active(self, state_id: str, *, running: bool | None = None) -> None:
        """A heartbeat of a state's run (or its start or end, with `running`)."""
        if running is None:
            self.db.write(
                "UPDATE runs SET last_active = ? WHERE state_id = ?", (self.clock(), state_id)
            )
            return
        self.db.write(
            "UPDATE runs SET last_active = ?, running = ? WHERE state_id = ?",
            (self.clock(), int(running), state_id),
        )

    def run_ended(self, state_id: str, counts: Mapping[str, int], spent_usd: float) -> None:
        self.db.write(
            "UPDATE runs SET last_active = ?, running = 0, counts = ?, spent_usd = ? "
            "WHERE state_id = ?",
            (self.clock(), json.dumps(dict(counts), sort_keys=True), spent_usd, state_id),
        )

    def runs(self) -> list[RunEntry]:
        """Every state the ledger has seen, the most recently active first."""
        rows = self.db.all(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY last_active DESC")
        return [_run_entry(row) for row in rows]

    def run(self, state_id: str) -> RunEntry | None:
        row = self.db.one(f"SELECT {_RUN_COLUMNS} FROM runs WHERE state_id = ?", (state_id,))
        return None if row is None else _run_entry(row)

    # -- sends ------------------------------------------------------------------------------

    def claim(
        self, account: str, external_id: str, state_id: str, job_id: str, cost_usd: float | None
    ) -> Send | None:
        """Claim a create before it leaves, synced: None when it is this state's to send (new,
        or claimed by this state before), else the other state's claim, left as it is."""
        return self.claim_all(account, state_id, [(external_id, job_id, cost_usd)])[0]

    def claim_all(
        self,
        account: str,
        state_id: str,
        creates: Sequence[tuple[str, str, float | None]],
        *,
        synced: bool = True,
    ) -> list[Send | None]:
        """`claim` for each (external id, job id, cost) of creates about to leave together,
        in one synced commit; in their order. `synced` False: synced by `sync()` (see
        Database.durably), which the caller awaits before the creates leave."""
        now = self.clock()
        found: list[Send | None] = []
        with self.db.durably(synced=synced):
            for external_id, job_id, cost_usd in creates:
                found.append(self._claim(account, external_id, state_id, job_id, cost_usd, now))
        return found

    def _claim(
        self,
        account: str,
        external_id: str,
        state_id: str,
        job_id: str,
        cost_usd: float | None,
        now: float,
    ) -> Send | None:
        self.db.write(
            "INSERT INTO sends (account, external_id, state_id, job_id, status, sent_at, "
            "updated_at, cost_usd) VALUES (?, ?, ?, ?, 'submitting', ?, ?, ?) "
            "ON CONFLICT (account, external_id) DO NOTHING",
            (account, external_id, state_id, job_id, now, now, cost_usd),
        )
        found = self.send(account, external_id)
        assert found is not None
        if found.state_id != state_id:
            return found
        if found.status != "submitting":
            self.db.write(
                "UPDATE sends SET status = 'submitting', updated_at = ? "
                "WHERE account = ? AND external_id = ?",
                (now, account, external_id),
            )
        return None

    def sync(self) -> None:
        """Every claim so far survives a power cut once this returns."""
        self.db.sync()

    def take_over(self, account: str, external_id: str, state_id: str, job_id: str) -> None:
        """The user chose to send again a create another state sent (`retry --unknown` there
        found nothing): from now on it is this state's, synced before the create leaves."""
        with self.db.durably():
            self.db.write(
                "UPDATE sends SET state_id = ?, job_id = ?, status = 'submitting', "
                "task_id = NULL, updated_at = ? WHERE account = ? AND external_id = ?",
                (state_id, job_id, self.clock(), account, external_id),
            )

    def send(self, account: str, external_id: str) -> Send | None:
        row = self.db.one(
            f"SELECT {_SEND_COLUMNS} FROM sends WHERE account = ? AND external_id = ?",
            (account, external_id),
        )
        return None if row is None else Send(*row)

    def sent(self, account: str, state_id: str, **fields: Any) -> None:
        """Bring this state's claim of `fields['external_id']` up to date with its job."""
        external_id = fields.pop("external_id")
        fields["updated_at"] = self.clock()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.db.write(
            f"UPDATE sends SET {assignments} "
            "WHERE account = ? AND external_id = ? AND state_id = ?",
            (*fields.values(), account, external_id, state_id),
        )

    def release(self, account: str, external_id: str, state_id: str) -> None:
        """This state's create was not carried out (refused, to be sent again later): its
        claim goes, so that any state of the account may send it."""
        self.db.write(
            "DELETE FROM sends WHERE account = ? AND external_id = ? AND state_id = ? "
            "AND task_id IS NULL",
            (account, external_id, state_id),
        )

    def record_sends(self, account: str, state_id: str, sends: Iterable[Send]) -> int:
        """Record what a state sent before the ledger knew of it (claims already there stay);
        returns how many were new."""
        now = self.clock()
        rows = (
            (
                account,
                s.external_id,
                state_id,
                s.job_id,
                s.status,
                s.task_id,
                s.sent_at,
                now,
                s.video_sha256,
                s.video_path,
                s.note,
                s.facts,
            )
            for s in sends
        )
        with self.db.transaction():
            return self.db.write_many(
                "INSERT INTO sends (account, external_id, state_id, job_id, status, task_id, "
                "sent_at, updated_at, video_sha256, video_path, note, facts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (account, external_id) DO NOTHING",
                rows,
            )

    def sent_elsewhere(self, account: str, state_id: str, limit: int) -> list[str] | None:
        """The external ids other states of the account have sent, or None where they are
        more than `limit`."""
        rows = self.db.all(
            "SELECT external_id FROM sends WHERE account = ? AND state_id != ? LIMIT ?",
            (account, state_id, limit + 1),
        )
        return None if len(rows) > limit else [str(row[0]) for row in rows]

    def held_elsewhere(self, account: str, state_id: str, external_ids: Iterable[str]) -> int:
        """How many of `external_ids` other states of the account have sent."""
        found = 0
        for chunk in _chunks(list(external_ids), 500):
            marks = ", ".join("?" * len(chunk))
            row = self.db.one(
                f"SELECT count(*) FROM sends WHERE account = ? AND state_id != ? "
                f"AND external_id IN ({marks})",
                (account, state_id, *chunk),
            )
            found += int(row[0]) if row else 0
        return found

    def spent(self, account: str, since: float = 0.0) -> tuple[float, int]:
        """(dollars, tasks) the account was sent since `since` that the provider took and did
        not fail, priced from the table when each was claimed."""
        row = self.db.one(
            "SELECT coalesce(sum(cost_usd), 0), count(*) FROM sends WHERE account = ? "
            "AND task_id IS NOT NULL AND status != 'failed' "
            "AND coalesce(accepted_at, sent_at) >= ?",
            (account, since),
        )
        assert row is not None
        return float(row[0]), int(row[1])


def _run_values(entry: RunEntry) -> tuple[Any, ...]:
    return (
        entry.state_id,
        entry.account,
        entry.name,
        entry.manifest,
        entry.state_path,
        entry.run_dir,
        entry.created_at,
        entry.last_active,
        int(entry.running),
        entry.host,
        entry.pid,
        json.dumps(entry.counts, sort_keys=True),
        entry.spent_usd,
    )


def _run_entry(row: tuple[Any, ...]) -> RunEntry:
    values = list(row)
    values[8] = bool(values[8])
    values[11] = json.loads(values[11])
    return RunEntry(*values)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
