"""The connection to a state: the seam where a database plugs in.

`Database` is all the rest of state/ speaks to. Statements are written once, with `?`
placeholders, in the SQL both databases understand; what differs (placeholders, PRAGMAs,
`BEGIN IMMEDIATE`, column types, the few functions below, the errors a driver raises) is each
implementation's business: sqlite.py (the default, one file in WAL mode) and postgres.py (one
schema of a PostgreSQL database). connect.py opens either.

Every write either commits before it returns or, once a run groups its updates
(`group_commits`), joins one open transaction that the run commits every few milliseconds and
always before a create is sent. A commit survives a killed process; a write that must also
survive a power cut (`submitting` before a create is sent) is made inside `durably()`. A write
that finds no room (a full disk, a file too large) is a StorageError; one refused for any other
reason (a read-only file, a lock another program holds, a lost server) is a StateError naming
the state, never a password. The schema is built and moved forward by the named migrations of
migrations.py, on either database.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

Row = tuple[Any, ...]


class Database(ABC):
    """One connection to one state (a run's, or any other set of tables on the same seam)."""

    dialect: ClassVar[str]  #: "sqlite" or "postgresql"

    def __init__(self, path: Path, shown: str) -> None:
        self.path = path  #: the SQLite file, or on PostgreSQL the file the run would have had
        self.shown = shown  #: how messages name the state (never with a password)
        self._grouped = False
        self._durable = False  # inside `durably()`: a nested one joins it

    @abstractmethod
    def close(self) -> None:
        """Commit what is grouped, then close the connection."""

    def location(self) -> tuple[Path, str | None]:
        """What another process opens this state with (connect.open_state): the state's
        path, and on PostgreSQL the database's URL."""
        return self.path, None

    # -- reading ----------------------------------------------------------------------------

    @abstractmethod
    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""

    @abstractmethod
    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        """Every row of a query, as they are iterated."""

    @abstractmethod
    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Every row of a query, as a list."""

    @abstractmethod
    def integrity_ok(self) -> bool:
        """Whether the database finds its own files sound."""

    @abstractmethod
    def has_table(self, name: str) -> bool:
        """Whether the state has a table `name`."""

    @abstractmethod
    def columns(self, table: str) -> list[str]:
        """The columns of `table` in their order (those both databases have)."""

    # -- writing ----------------------------------------------------------------------------

    @abstractmethod
    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement that changes rows (inside the open group, if grouping); returns
        how many rows it changed."""

    @abstractmethod
    def write_returning(self, sql: str, params: Sequence[Any]) -> Row:
        """Run one statement that changes one row and returns it (`... RETURNING`)."""

    @abstractmethod
    def write_all(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """Run one statement that changes rows and returns them (`... RETURNING`), any
        number of them (none included)."""

    @abstractmethod
    def write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run one statement for each of `rows`; returns how many rows the database changed."""

    def merge_rows(
        self,
        table: str,
        columns: Sequence[str],
        key: str,
        rows: Sequence[Sequence[Any]],
        update: Sequence[str] = (),
    ) -> int:
        """Insert those of `rows` (values of `columns`) whose `key` column `table` does not
        hold yet (one of any rows that share a key), and in the rows it holds set the `update`
        columns to the values given, where any of them differs; returns how many rows were
        inserted. (No update is made when every row was inserted.)"""
        marks = ", ".join("?" for _ in columns)
        inserted = self.write_many(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({key}) DO NOTHING",
            rows,
        )
        if update and inserted < len(rows):
            places = [columns.index(name) for name in update]
            at = columns.index(key)
            sets = ", ".join(f"{name} = ?" for name in update)
            differs = " OR ".join(f"{name} IS NOT ?" for name in update)
            self.write_many(
                f"UPDATE {table} SET {sets} WHERE {key} = ? AND ({differs})",
                [(*(row[i] for i in places), row[at], *(row[i] for i in places)) for row in rows],
            )
        return inserted

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Group writes into one commit, or none if the block raises (nested ones join the
        outer)."""

    @abstractmethod
    def durably(self, *, synced: bool = True) -> contextlib.AbstractContextManager[None]:
        """A transaction whose commit survives a power cut; any grouped updates before it are
        committed first. One opened inside another joins it: the outer commit syncs both (the
        write-ahead records of creates leaving together share one synced commit). `synced`
        False: the commit survives a killed process at once and a power cut once `sync()`
        returns, which the caller awaits (off its event loop) before it acts on the write."""

    @abstractmethod
    def sync(self) -> None:
        """Make every commit made so far survive a power cut (see `durably`)."""

    @abstractmethod
    def script(self, sql: str) -> None:
        """Run several statements (no parameters) in one transaction: a migration."""

    @abstractmethod
    def commit(self) -> None:
        """Commit the open group of writes, if any."""

    @abstractmethod
    def fold_counts(self) -> None:
        """Sum the changes of the kept counts recorded so far, where they are recorded apart
        (PostgreSQL: kept_counts.py); on SQLite the triggers keep the counts themselves."""

    def loading(self) -> contextlib.AbstractContextManager[None]:
        """While a manifest's jobs are written in one transaction: on SQLite, a page cache
        large enough for the job index (sqlite.py); a server keeps its own."""
        return contextlib.nullcontext()

    # -- group commit -----------------------------------------------------------------------

    def group_commits(self) -> None:
        """From now on writes gather in one open transaction until `commit`. A crash loses at
        most the updates since the last commit, each of which resume redoes safely."""
        self._grouped = True

    def end_grouping(self) -> None:
        self.commit()
        self._grouped = False

    # -- the SQL that differs -----------------------------------------------------------------

    @abstractmethod
    def number(self, expr: str) -> str:
        """SQL reading the text `expr` as a float: its leading number, 0 if it has none."""

    @abstractmethod
    def json_text(self, expr: str, key: str) -> str:
        """SQL for the field `key` of the JSON object in `expr`, as text."""

    @abstractmethod
    def json_elements(self, expr: str, alias: str) -> str:
        """A FROM item: one row per element of the JSON array in `expr`, each `alias.value`."""

    @abstractmethod
    def texts_of(self, param: str) -> str:
        """A subquery of the strings in the JSON array bound at `param`, for `x IN` it: a
        list of any length in one parameter, matched by the database."""

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
