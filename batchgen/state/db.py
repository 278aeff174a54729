"""The connection to a run's state: the seam where a database plugs in.

One SQLite file in WAL mode. Every write either commits before it returns or, once a run
groups its updates (`group_commits`), joins one open transaction that the run commits every few
milliseconds and always before a create is sent. `synchronous=NORMAL` keeps commits across a
killed process; a write that must also survive a power cut (`submitting` before a create is
sent) is made inside `durably()`, committed with `synchronous=FULL`. A write that finds the
disk full (or the file too large) is a StorageError; one refused for any other reason (a
read-only file or folder, a lock another program holds) is a StateError naming the state. The
schema is built and moved forward by the named migrations of migrations.py.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from batchgen.errors import StateError, StorageError
from batchgen.state.migrations import MIGRATIONS, Migration, migrate


class Database:
    """One state file's connection. Open with `Database.open(path)`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._grouped = False

    @classmethod
    def open(cls, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> Database:
        """Open (creating if needed) and migrate the file: a run's state, or with other
        `migrations` the account ledger."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the folder {path.parent}: {exc.strerror}") from None
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            migrate(conn, migrations)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open {path}: {exc}") from None
        return cls(conn, path)

    def close(self) -> None:
        self.commit()
        self._conn.close()

    # -- reading ----------------------------------------------------------------------------

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
        return row

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Every row of a query, read as they are iterated."""
        return iter(self._conn.execute(sql, params))

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def integrity_ok(self) -> bool:
        return bool(self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # -- writing ----------------------------------------------------------------------------

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement that changes rows (inside the open group, if grouping); returns
        how many rows it changed."""
        with self._writing():
            if self._grouped and not self._conn.in_transaction:
                self._conn.execute("BEGIN")
            return int(self._conn.execute(sql, params).rowcount)

    def write_returning(self, sql: str, params: Sequence[Any]) -> tuple[Any, ...]:
        """Run one statement that changes one row and returns it (`... RETURNING`)."""
        with self._writing():
            if self._grouped and not self._conn.in_transaction:
                self._conn.execute("BEGIN")
            rows = self._conn.execute(sql, params).fetchall()
        assert len(rows) == 1, sql
        found: tuple[Any, ...] = rows[0]
        return found

    def write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement for each of `rows`; returns how many rows the database changed."""
        with self._writing():
            before = self._conn.total_changes
            self._conn.executemany(sql, rows)
            return self._conn.total_changes - before

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one commit (nested ones join the outer)."""
        with self._writing(), _Transaction(self._conn):
            yield

    @contextlib.contextmanager
    def durably(self) -> Iterator[None]:
        """A transaction committed with `synchronous=FULL` (power cuts included); any grouped
        updates before it are committed first."""
        self.commit()
        self._conn.execute("PRAGMA synchronous=FULL")
        try:
            with self.transaction():
                yield
        finally:
            self._conn.execute("PRAGMA synchronous=NORMAL")

    # -- group commit -----------------------------------------------------------------------

    def group_commits(self) -> None:
        """From now on writes gather in one open transaction until `commit`. A crash loses at
        most the updates since the last commit, each of which resume redoes safely."""
        self._grouped = True

    def commit(self) -> None:
        if self._conn.in_transaction:
            with self._writing():
                self._conn.execute("COMMIT")

    def end_grouping(self) -> None:
        self.commit()
        self._grouped = False

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A write that finds the disk full (or the file too large) is a StorageError; one
        refused otherwise (read-only, locked) a StateError."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            if _out_of_room(exc):
                raise StorageError(f"cannot write the state {self.path}: {exc}") from None
            raise StateError(
                f"cannot write the state {self.path}: {exc} (is it, or its folder, read-only, "
                "or held by another program?)"
            ) from None

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.write(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


class _Transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._outer = False

    def __enter__(self) -> None:
        self._outer = not self._conn.in_transaction
        if self._outer:
            self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if not self._outer:
            return
        if not exc_type:
            self._conn.execute("COMMIT")
        elif self._conn.in_transaction:  # (a failed write may have rolled it back already)
            self._conn.execute("ROLLBACK")


def _out_of_room(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "disk is full" in text or "disk i/o error" in text or "too large" in text
