"""A run's state from one database to another (`batchgen state copy`): a run started on a
laptop's SQLite continues on a PostgreSQL server, or comes back.

The destination must be empty. Every table is copied in one transaction of the destination,
then counted and hashed on both sides before it commits: any difference is a StateError and
the destination is left as it was. Both sides are migrated to the same schema when opened.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass

from batchgen.errors import StateError
from batchgen.state.db import Database, Row

# Every table of a run's state; the rows of those in ORDERED keep the order they were written
# in (`rowid`), the others are sets keyed by their primary key.
TABLES = ("meta", "jobs", "inputs", "images", "video_checks", "skipped", "lookups")
ORDERED = ("skipped", "lookups")
BATCH = 5000


@dataclass(frozen=True, slots=True)
class TableCopy:
    """What one table held on both sides once copied."""

    table: str
    rows: int
    sha256: str


def copy_state(source: Database, target: Database) -> list[TableCopy]:
    """Copy every table of `source` into the empty `target`, checked by counts and hashes.
    StateError if `target` holds anything, if the two schemas differ, or if a table reads
    back different; `target` is then unchanged."""
    _refuse_unless_empty(target)
    copied = []
    with target.transaction():
        for table in TABLES:
            columns = _same_columns(source, target, table)
            _copy_table(source, target, table, columns)
            copied.append(_compare(source, target, table, columns))
    return copied


def _refuse_unless_empty(target: Database) -> None:
    for table in TABLES:
        row = target.one(f"SELECT count(*) FROM {table}")
        if row is not None and int(row[0]):
            raise StateError(
                f"{target.shown} already holds a state ({table}: {int(row[0])} rows); a copy "
                "goes only into an empty one: nothing was copied"
            )


def _same_columns(source: Database, target: Database, table: str) -> list[str]:
    columns = source.columns(table)
    if columns != target.columns(table):
        raise StateError(
            f"the table {table} of {source.shown} and of {target.shown} differ; open both with "
            "the same batchgen first: nothing was copied"
        )
    return columns


def _copy_table(source: Database, target: Database, table: str, columns: list[str]) -> None:
    names = ", ".join(columns)
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    rows = _read(source, table, columns)
    while batch := list(itertools.islice(rows, BATCH)):
        target.write_many(insert, batch)


def _read(db: Database, table: str, columns: list[str]) -> Iterator[Row]:
    order = " ORDER BY rowid" if table in ORDERED else ""
    return db.rows(f"SELECT {', '.join(columns)} FROM {table}{order}")


def _compare(source: Database, target: Database, table: str, columns: list[str]) -> TableCopy:
    before = _fingerprint(source, table, columns)
    after = _fingerprint(target, table, columns)
    if before != after:
        raise StateError(
            f"the table {table} read back different from {target.shown} ({after[0]} rows, "
            f"sha256 {after[1][:12]}) than from {source.shown} ({before[0]} rows, sha256 "
            f"{before[1][:12]}): nothing was copied"
        )
    return TableCopy(table, *before)


def _fingerprint(db: Database, table: str, columns: list[str]) -> tuple[int, str]:
    """(rows, sha256) of a table: of its rows in order for an ORDERED table, else of the set
    of its rows (whatever order a database reads them in)."""
    ordered = hashlib.sha256()
    total = count = 0
    for row in _read(db, table, columns):
        line = json.dumps(list(row), separators=(",", ":")).encode()
        ordered.update(line + b"\n")
        total = (total + int.from_bytes(hashlib.sha256(line).digest())) % (1 << 256)
        count += 1
    digest = ordered.hexdigest() if table in ORDERED else f"{total:064x}"
    return count, digest
