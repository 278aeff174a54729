"""A state in a PostgreSQL database (`--database postgresql://...`, the `postgres` extra).

Several runs share one database: each run's tables live in a schema of its own, named after
the run (`run_schema`), which is the connection's `search_path`; tables of the whole account
live in a schema of their own the same way. So the statements of state/ are the same as on
SQLite: here `?` becomes psycopg's `%s`, and migrations.py gives the columns PostgreSQL's
types. Commits are made with `synchronous_commit = off`: a killed batchgen loses nothing the
server acknowledged, and a crash of the server itself may lose the last moments of updates,
which resume redoes (as SQLite's `synchronous=NORMAL`); `durably()` commits with it on.

psycopg's errors become ours here, once: no room on the server is a StorageError, and so is a
lost connection mid-run (the same command resumes once the server is back); anything else is
a StateError. No message shows the URL's password (`shown_url`).

One process per run: `holding_run` takes a session advisory lock keyed by the run's schema, on
a connection of its own; the server drops it when that connection ends, however the process
ends.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from batchgen.errors import StateError, StateInUse, StorageError, UsageError
from batchgen.state import kept_counts
from batchgen.state.db import Database, Row
from batchgen.state.migrations import MIGRATIONS, Migration, migrate

try:
    import psycopg
    from psycopg import sql as pgsql
    from psycopg.adapt import Loader
    from psycopg.pq import TransactionStatus
except ImportError:  # the default install: PostgreSQL is an extra
    raise UsageError(
        'a PostgreSQL --database needs psycopg: pip install "batchgen[postgres]"'
    ) from None

SCHEMES = ("postgresql://", "postgres://")
IDLE_IN_TRANSACTION_MS = 30_000
LOCK_CLASS = 0x62670001  # the first key of batchgen's advisory locks ("bg", 1: a run)
_MIGRATING = 0x62670002  # the first key of the lock held while a schema is migrated
_FOLDING = 0x62670003  # the first key of the lock held while the counts are folded
MAX_NAME = 63  # PostgreSQL's longest identifier, in bytes
ROWS_AT_ONCE = 2000  # rows of a large query (`rows`) fetched from the server at a time


def run_schema(run_name: str) -> str:
    """The schema of the run `run_name`: `run_NAME` when the name is made of lowercase
    letters, digits and `_` and fits, else its first such characters and a hash of it."""
    plain = f"run_{run_name}"
    if re.fullmatch(r"[a-z0-9_]+", run_name) and len(plain) <= MAX_NAME:
        return plain
    slug = re.sub(r"[^a-z0-9_]+", "_", run_name.lower())[:40]
    digest = hashlib.sha256(run_name.encode()).hexdigest()[:12]
    return f"run_{slug}_{digest}"


def shown_url(url: str) -> str:
    """`url` without its password (in the user part or as a `password=` parameter)."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        user = f"{parts.username}@" if parts.username else ""
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "password"]
        return urlunsplit(parts._replace(netloc=user + host, query=urlencode(query, safe="/")))
    except ValueError:
        return "the --database URL"


def _secrets(url: str) -> list[str]:
    """The password `url` carries, as written and decoded (to take out of messages)."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""] + [v for k, v in parse_qsl(parts.query) if k == "password"]
    except ValueError:
        return [url]
    return [s for secret in found if secret for s in {secret, unquote(secret)}]


def scrubbed(text: str, url: str) -> str:
    """`text` with the URL's password replaced by `***`."""
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return " ".join(text.split())


class PostgresDatabase(Database):
    """A connection to one schema of a PostgreSQL database. Open with `open`."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Row], url: str, schema: str, path: Path) -> None:
        super().__init__(path, f"{schema} in {shown_url(url)}")
        self._conn = conn
        self._url = url
        self.schema = schema
        self._cursor_numbers = itertools.count()
        self._counted = False  # whether the schema keeps counts (kept_counts.py): a run's does

    def location(self) -> tuple[Path, str | None]:
        return self.path, self._url

    @classmethod
    def open(
        cls,
        url: str,
        schema: str,
        *,
        path: Path | None = None,
        create: bool = True,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> PostgresDatabase:
        """Connect, make `schema` (unless it must exist: `create` False) and migrate it."""
        conn = connect(url, "batchgen")
        db = cls(conn, url, schema, path or Path(schema))
        try:
            with db._mapped():
                db._enter_schema(create)
            with db._migrating():
                migrate(db, migrations)
            db._counted = any(migration.name == "kept_counts" for migration in migrations)
            db.fold_counts()
        except BaseException:
            conn.close()
            raise
        return db

    def _enter_schema(self, create: bool) -> None:
        name = pgsql.Identifier(self.schema)
        if create:
            self._conn.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
        elif not self._conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)
        ).fetchone():
            raise StateError(f"no state found at {self.shown}: has this run been run there?")
        self._conn.execute(pgsql.SQL("SET search_path TO {}").format(name))
        self._conn.execute("SET synchronous_commit TO off")

    @contextlib.contextmanager
    def _migrating(self) -> Iterator[None]:
        """Hold the schema's migration lock: two processes opening a new state at once build
        it once."""
        key = (_MIGRATING, self.schema)
        self.one("SELECT pg_advisory_lock(?, hashtext(?))", key)
        try:
            yield
        finally:
            self.one("SELECT pg_advisory_unlock(?, hashtext(?))", key)

    def fold_counts(self) -> None:
        """Sum the changes of the counts recorded so far into the folded counts
        (kept_counts.py), unless another process is folding them."""
        if not self._counted:
            return
        folded = 0
        with self.transaction():
            key = (_FOLDING, self.schema)
            if self.one("SELECT pg_try_advisory_xact_lock(?, hashtext(?))", key) == (True,):
                folded = sum(int(self.write_returning(fold, ())[0]) for fold in kept_counts.FOLD)
                for statement in kept_counts.EMPTIED:
                    self.write(statement)
        if folded >= kept_counts.VACUUM_AFTER and not self._in_transaction():
            with self._mapped():
                self._conn.execute(kept_counts.VACUUM)

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._conn.close()

    # -- reading ----------------------------------------------------------------------------

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        with self._mapped():
            return self._conn.execute(_pg(sql), params).fetchone()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        """The rows as they are iterated, ROWS_AT_ONCE fetched at a time: libpq takes a whole
        result into memory (every done job of a million-row run, for the index), so the query
        is a server-side cursor instead. Declared here, as SQLite runs its query at the call;
        WITH HOLD, so that commits made while it is read (or autocommit) leave it open."""
        name = f"batchgen_rows_{next(self._cursor_numbers)}"
        cursor: psycopg.ServerCursor[Row] = self._conn.cursor(name, withhold=True)
        with self._mapped():
            cursor.execute(_pg(sql), params)
        return self._fetched(cursor)

    def _fetched(self, cursor: psycopg.ServerCursor[Row]) -> Iterator[Row]:
        try:
            while True:
                with self._mapped():
                    batch = cursor.fetchmany(ROWS_AT_ONCE)
                yield from batch
                if len(batch) < ROWS_AT_ONCE:
                    return
        finally:
            if not self._conn.closed:
                with contextlib.suppress(psycopg.Error):
                    cursor.close()  # a caller that stopped early: the server's copy goes too

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._mapped():
            return self._conn.execute(_pg(sql), params).fetchall()

    def integrity_ok(self) -> bool:
        return self.one("SELECT 1") == (1,)

    def has_table(self, name: str) -> bool:
        found = self.one(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            (self.schema, name),
        )
        return found is not None

    def columns(self, table: str) -> list[str]:
        rows = self.all(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
            "AND table_name = ? AND column_name != 'rowid' ORDER BY ordinal_position",
            (self.schema, table),
        )
        return [str(row[0]) for row in rows]

    # -- writing ----------------------------------------------------------------------------

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._mapped():
            self._begin_grouped()
            return self._conn.execute(_pg(sql), params).rowcount

    def write_returning(self, sql: str, params: Sequence[Any]) -> Row:
        with self._mapped():
            self._begin_grouped()
            rows = self._conn.execute(_pg(sql), params).fetchall()
        assert len(rows) == 1, sql
        return rows[0]

    def write_all(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self._mapped():
            self._begin_grouped()
            return self._conn.execute(_pg(sql), params).fetchall()

    def write_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        values = list(rows)
        if not values:
            return 0
        with self._mapped(), self._conn.cursor() as cursor:
            self._begin_grouped()
            cursor.executemany(_pg(sql), values)
            return cursor.rowcount

    def merge_rows(
        self,
        table: str,
        columns: Sequence[str],
        key: str,
        rows: Sequence[Sequence[Any]],
        update: Sequence[str] = (),
    ) -> int:
        """COPY the rows into a temporary table of this connection, then one INSERT of those
        not in `table` and one UPDATE of the others, in one transaction (the temporary table
        empties as it commits). 200,000 jobs loaded: 2.9 s against 5.6 s with a statement
        for each row; loaded again (every job known): 4.2 s against 10.5-11.7 s."""
        if not rows:
            return 0
        names = ", ".join(columns)
        staged = f"staged_{table}"
        with self.transaction(), self._mapped(), self._conn.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {staged} ON COMMIT DELETE ROWS AS "
                f"SELECT {names} FROM {table} WITH NO DATA"
            )
            cursor.execute(f"TRUNCATE {staged}")
            with cursor.copy(f"COPY {staged} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {staged} "
                f"ON CONFLICT ({key}) DO NOTHING"
            )
            inserted = cursor.rowcount
            if update and inserted < len(rows):
                # (Without its statistics the planner reads all of `table` for each batch.)
                cursor.execute(f"ANALYZE {staged}")
                sets = ", ".join(f"{name} = s.{name}" for name in update)
                differs = " OR ".join(f"t.{name} IS DISTINCT FROM s.{name}" for name in update)
                cursor.execute(
                    f"UPDATE {table} AS t SET {sets} FROM {staged} AS s "
                    f"WHERE t.{key} = s.{key} AND ({differs})"
                )
            return inserted

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        outer = not self._in_transaction()
        if outer:
            with self._mapped():
                self._conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            if outer and self._in_transaction():
                with self._mapped():
                    self._conn.execute("ROLLBACK")
            raise
        if outer:
            with self._mapped():
                self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def durably(self, *, synced: bool = True) -> Iterator[None]:
        # (Always synced here: the server's own group commit shares the flush among sessions.)
        if self._durable:  # (one synced commit for every write-ahead record of a group)
            yield
            return
        self.commit()
        self._durable = True
        try:
            with self.transaction():
                self.write("SET LOCAL synchronous_commit TO on")
                yield
        finally:
            self._durable = False

    def sync(self) -> None:
        pass  # (every durable commit was flushed by the server as it committed)

    def script(self, sql: str) -> None:
        with self._mapped():
            self._conn.execute("BEGIN")
            self._conn.execute(sql.encode())
            self._conn.execute("COMMIT")

    def commit(self) -> None:
        if self._in_transaction():
            with self._mapped():
                self._conn.execute("COMMIT")

    def _in_transaction(self) -> bool:
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def _begin_grouped(self) -> None:
        if self._grouped and not self._in_transaction():
            self._conn.execute("BEGIN")

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[None]:
        """psycopg's errors as ours (see the module's docstring); a failed statement rolls
        its transaction back, as on SQLite."""
        try:
            yield
        except psycopg.Error as exc:
            if not self._conn.closed and self._in_transaction():
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("ROLLBACK")
            raise self._ours(exc) from None

    def _ours(self, exc: psycopg.Error) -> StateError | StorageError:
        text = scrubbed(str(exc), self._url)
        code = exc.sqlstate or ""
        if code.startswith("53"):
            return StorageError(f"cannot write the state {self.shown}: {text}")
        if self._conn.closed or code.startswith(("08", "57P")):
            return StorageError(
                f"lost the connection to the state {self.shown}: {text} (the same command "
                "resumes once the server is back)"
            )
        return StateError(f"cannot use the state {self.shown}: {text}")

    # -- the SQL that differs -----------------------------------------------------------------

    def number(self, expr: str) -> str:
        return kept_counts.leading_number(expr)

    def json_text(self, expr: str, key: str) -> str:
        return f"(({expr})::jsonb ->> '{key}')"

    def json_elements(self, expr: str, alias: str) -> str:
        return f"jsonb_array_elements(({expr})::jsonb) AS {alias}(value)"

    def texts_of(self, param: str) -> str:
        return f"(SELECT jsonb_array_elements_text(({param})::jsonb))"


def connect(url: str, purpose: str) -> psycopg.Connection[Row]:
    """A connection in autocommit mode (transactions are begun by hand, as on SQLite), named
    `purpose` in pg_stat_activity; StateError naming the server (never the password)."""
    try:
        conn = psycopg.connect(
            url,
            autocommit=True,
            application_name=purpose[:MAX_NAME],
            connect_timeout=10,
            # A process paused or cut off inside a transaction must not hold the rows it
            # locked: after this long the server ends its session (its writes then fail).
            options=f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}",
        )
    except psycopg.Error as exc:
        raise StateError(f"cannot connect to {shown_url(url)}: {scrubbed(str(exc), url)}") from None
    conn.adapters.register_loader("numeric", _NumberLoader)
    return conn


def schema_exists(url: str, schema: str) -> bool:
    """Whether the database `url` holds `schema` (StateError if it cannot be reached)."""
    conn = connect(url, "batchgen")
    try:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        return found.fetchone() is not None
    except psycopg.Error as exc:
        raise StateError(f"cannot read {shown_url(url)}: {scrubbed(str(exc), url)}") from None
    finally:
        conn.close()


class _NumberLoader(Loader):
    """`numeric` (what sum() of integers gives) as an int when whole, else a float, as SQLite
    gives them."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        return float(text) if any(c in text for c in ".eEN") else int(text)


@functools.lru_cache(maxsize=512)
def _pg(sql: str) -> str:
    """A statement written with `?` placeholders in psycopg's words: `%s`, and `%` as `%%`
    (quoted text left as it is, but for its `%`)."""
    return _PLACEHOLDER.sub(_placeholder, sql)


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?|%")


def _placeholder(match: re.Match[str]) -> str:
    found = match.group(0)
    if found == "?":
        return "%s"
    return found.replace("%", "%%")


@contextlib.contextmanager
def holding_run(url: str, schema: str, holder: str, *, shared: bool = False) -> Iterator[None]:
    """Hold the run's advisory lock while the block runs; StateInUse naming the holder if a
    live process has it. `shared`: a worker of the run, beside any number of others (a
    command that needs the run alone is refused while one is there)."""
    conn = connect(url, f"{os.getpid()} {holder}")
    kind = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    try:
        got = conn.execute(f"SELECT {kind}(%s, hashtext(%s))", (LOCK_CLASS, schema)).fetchone()
        if not got or not got[0]:
            who = _holder(conn, schema) or "another process"
            raise StateInUse(
                f"{schema} in {shown_url(url)} is in use by {who}; wait for it to finish or "
                "stop it, then run this again"
            )
        yield
    finally:
        _let_go(conn)


@contextlib.contextmanager
def loading_run(url: str, schema: str) -> Iterator[None]:
    """One worker at a time loads the manifest into the run (the others wait, then find it
    loaded)."""
    conn = connect(url, f"{os.getpid()} batchgen load")
    try:
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (LOCK_CLASS + 1, schema))
        yield
    finally:
        _let_go(conn)


def _let_go(conn: psycopg.Connection[Row]) -> None:
    """Release the session's advisory locks before closing it: the server ends a closed
    session a moment later, and the next command (the same user's, at once) would find the
    run still held."""
    with contextlib.suppress(psycopg.Error):
        conn.execute("SELECT pg_advisory_unlock_all()")
    conn.close()


def run_holder(url: str, schema: str) -> str | None:
    """Who holds the run's advisory lock now ("pid 123 (batchgen run)"), or None."""
    conn = connect(url, "batchgen")
    try:
        return _holder(conn, schema)
    finally:
        conn.close()


def _holder(conn: psycopg.Connection[Row], schema: str) -> str | None:
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::int4::oid "
        "AND l.objid = hashtext(%s)::oid AND l.objsubid = 2",
        (LOCK_CLASS, schema),
    ).fetchone()
    if row is None:
        return None
    pid, _, what = str(row[0]).partition(" ")
    return f"pid {pid} ({what})" if pid.isdigit() else "another process"
