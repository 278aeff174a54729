"""A state in one SQLite file, in WAL mode: the default database.

`synchronous=NORMAL` keeps commits across a killed process; `durably()` commits with
`synchronous=FULL` (power cuts included). Writers take the file with `BEGIN IMMEDIATE`, so a
transaction never fails half-way on a lock another connection took meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from batchgen.errors import StateError, StorageError
from batchgen.state.db import Database, Row
from batchgen.state.migrations import MIGRATIONS, Migration, migrate, record_sql

# The page cache while jobs are loaded (allocated as used; SQLite's own, 2 MB, the rest of the
# time). The default holds a small part of a large run's job index, whose pages a load writes
# in random order (the ids are hashes): 200,000 jobs loaded in 4.4-5.3 s with it, 3.0-3.6 s
# with this. A resume gains nothing from it and would keep the memory.
LOADING_CACHE_KIB = 64 * 1024


class SqliteDatabase(Database):
    """One state file's connection. Open with `SqliteDatabase.open(path)`."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        super().__init__(path, str(path))
        self._conn = conn

    @classmethod
    def open(cls, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> SqliteDatabase:
        """Open (creating if needed) and migrate the state file."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the folder {path.parent}: {exc.strerror}") from None
        try:
            with _migrating(path):  # (the switch to WAL too: it is not retried when busy)
                conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA busy_timeout=5000")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                db = cls(conn, path)
                _adopt_numbered(db, migrations)
                migrate(db, migrations)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open state file {path}: {exc}") from None
        return db

    def close(self) -> None:
        self.commit()
        self._conn.close()

    # -- reading ----------------------------------------------------------------------------

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        with self._intact():
            row: Row | None = self._conn.execute(sql, params).fetchone()
        return row

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        with self._intact():
            cursor = self._conn.execute(sql, params)
        return self._rows_of(cursor)

    def _rows_of(self, cursor: sqlite3.Cursor) -> Iterator[Row]:
        with self._intact():
            # (not `yield from`: closing this would close the cursor too, after the
            # connection, where a caller stopped reading early)
            for row in cursor:  # noqa: UP028
                yield row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._intact():
            return self._conn.execute(sql, params).fetchall()

    def integrity_ok(self) -> bool:
        return bool(self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def has_table(self, name: str) -> bool:
        found = self.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return found is not None

    def columns(self, table: str) -> list[str]:
        return [str(row[1]) for row in self._conn.execute(f"PRAGMA table_info({table})")]

    # -- writing ----------------------------------------------------------------------------

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._writing():
            self._begin_grouped()
            return int(self._conn.execute(sql, params).rowcount)

    def write_returning(self, sql: str, params: Sequence[Any]) -> Row:
        with self._writing():
            self._begin_grouped()
            rows = self._conn.execute(sql, params).fetchall()
        assert len(rows) == 1, sql
        found: Row = rows[0]
        return found

    def write_all(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self._writing():
            self._begin_grouped()
            return self._conn.execute(sql, params).fetchall()

    def write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        with self._writing():
            return int(self._conn.executemany(sql, rows).rowcount)  # triggers' rows not counted

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._writing(), _Transaction(self._conn):
            yield

    @contextlib.contextmanager
    def loading(self) -> Iterator[None]:
        (before,) = self._conn.execute("PRAGMA cache_size").fetchone()
        self._conn.execute(f"PRAGMA cache_size=-{LOADING_CACHE_KIB}")
        try:
            yield
        finally:
            self._conn.execute(f"PRAGMA cache_size={int(before)}")

    @contextlib.contextmanager
    def durably(self, *, synced: bool = True) -> Iterator[None]:
        if self._durable:  # (one synced commit for every write-ahead record of a group)
            yield
            return
        self.commit()
        if synced:
            self._conn.execute("PRAGMA synchronous=FULL")
        self._durable = True
        try:
            with self.transaction():
                yield
        finally:
            self._durable = False
            if synced:
                self._conn.execute("PRAGMA synchronous=NORMAL")

    def fold_counts(self) -> None:
        pass  # (the triggers keep the counts themselves: one writer at a time)

    def sync(self) -> None:
        # In WAL mode a commit is the frames appended to the -wal file: syncing that file is
        # what `synchronous=FULL` does at each commit (a checkpoint syncs the database file
        # itself before it lets the log be reused). fdatasync, as SQLite's own sync: the data
        # and the size it needs to be read back, not the times.
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:
            return  # (nothing written since the last checkpoint that removed it)
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise StorageError(f"cannot sync the state {self.path}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def script(self, sql: str) -> None:
        self._conn.executescript(f"BEGIN; {sql}; COMMIT;")

    def commit(self) -> None:
        if self._conn.in_transaction:
            with self._writing():
                self._conn.execute("COMMIT")

    def _begin_grouped(self) -> None:
        if self._grouped and not self._conn.in_transaction:
            self._conn.execute("BEGIN")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A write that finds the disk full (or the file too large) is a StorageError; one
        refused otherwise (read-only, locked) a StateError."""
        try:
            with self._intact():
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

    @contextlib.contextmanager
    def _intact(self) -> Iterator[None]:
        """A file SQLite finds damaged (or no database at all) is a StateError naming it."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:
                raise  # (locked, read-only, full, a constraint: each said where it is met)
            raise StateError(
                f"the file {self.path} is damaged ({exc}); keep a copy of it, move it aside, "
                f"and see what `sqlite3 {self.path} .recover` can save of it"
            ) from None

    # -- the SQL that differs -----------------------------------------------------------------

    def number(self, expr: str) -> str:
        return f"CAST({expr} AS REAL)"

    def json_text(self, expr: str, key: str) -> str:
        return f"json_extract({expr}, '$.{key}')"

    def json_elements(self, expr: str, alias: str) -> str:
        return f"json_each({expr}) {alias}"

    def texts_of(self, param: str) -> str:
        return f"(SELECT value FROM json_each({param}))"


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


@contextlib.contextmanager
def _migrating(path: Path) -> Iterator[None]:
    """Hold the migration lock of the file's folder (a `flock` on the folder, apart from
    SQLite's own locks): two processes opening a new file at once (the account ledger, which
    every run shares) build it once. Never a descriptor of the database file itself: closing
    one drops every POSIX lock the process holds on it, SQLite's included, and another process
    then takes itself for the last one and deletes the log this one is writing."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _adopt_numbered(db: SqliteDatabase, migrations: Sequence[Migration]) -> None:
    """Make the `_migrations` table of a state made before migrations had names, recording as
    applied the first `user_version` migrations it counted (one transaction)."""
    if db.has_table("_migrations"):
        return
    numbered = db.one("PRAGMA user_version")
    count = 0 if numbered is None else int(numbered[0])
    if count == 0:
        return
    names = ", ".join(f"('{m.name}', 0)" for m in migrations[:count])
    db.script(
        f"{record_sql(db.dialect)}; INSERT INTO _migrations VALUES {names}; PRAGMA user_version = 0"
    )


def _out_of_room(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "disk is full" in text or "disk i/o error" in text or "too large" in text
