"""Which database a state is in, and opening it: a SQLite file by default, or a schema of the
PostgreSQL database a `postgresql://` URL names (`--database`, BATCHGEN_DATABASE_URL).

On PostgreSQL a run's state is the schema named after its run (postgres.run_schema); its
`path` is still the file it would have had on SQLite (RUN/state.sqlite), whose folder names
the run. The lock of one process per run is runlock.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from batchgen.state.db import Database
from batchgen.state.migrations import MIGRATIONS, Migration
from batchgen.state.sqlite import SqliteDatabase

STATE_NAME = "state.sqlite"  # a run's state file, in its run folder
DATABASE_SCHEMES = ("postgresql://", "postgres://")


def database_url(url: str) -> str:
    """`url` if it names a PostgreSQL database; ValueError otherwise (its password unshown)."""
    if not url.startswith(DATABASE_SCHEMES):
        scheme = url.partition("://")[0] if "://" in url else url[:20]
        raise ValueError(
            f"--database must be a postgresql:// URL (a state file is --state), not {scheme!r}..."
        )
    return url


def open_database(
    target: Path | str,
    *,
    schema: str = "public",
    create: bool = True,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> Database:
    """The SQLite file `target` (a path), or the schema `schema` of the PostgreSQL database
    `target` (a postgresql:// URL), migrated by `migrations`. With `create` False, a schema
    that does not exist is a StateError."""
    if isinstance(target, Path):
        return SqliteDatabase.open(target, migrations)
    from batchgen.state.postgres import PostgresDatabase

    return PostgresDatabase.open(target, schema, create=create, migrations=migrations)


def open_state(path: Path, database: str | None = None, *, create: bool = True) -> Database:
    """A run's state: the SQLite file `path`, or on `database` the schema of the run whose
    folder `path` is in (a StateError if it has none there and not `create`)."""
    if database is None:
        return SqliteDatabase.open(path)
    from batchgen.state.postgres import PostgresDatabase

    return PostgresDatabase.open(database, run_schema_of(path), path=path, create=create)


def state_exists(path: Path, database: str | None = None) -> bool:
    """Whether a run's state is there, without making it: the file `path`, or on `database`
    the schema of the run whose folder `path` is in (a StateError if the server cannot be
    reached)."""
    if database is None:
        return path.is_file()
    from batchgen.state.postgres import schema_exists

    return schema_exists(database, run_schema_of(path))


def run_schema_of(path: Path) -> str:
    """The PostgreSQL schema of the run whose state would be the file `path`."""
    from batchgen.state.postgres import run_schema

    return run_schema(path.absolute().parent.name)
