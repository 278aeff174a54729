"""The state's schema, as named migrations applied in order (the way sqlite-utils' migrations
do it): each runs in its own transaction and is recorded in `_migrations` with when it was
applied, so an existing state moves forward to the current schema when it is opened, and a
migration never runs twice. The same migrations build the state on SQLite and on PostgreSQL:
written in SQLite's words, they are given PostgreSQL's types there (`postgres_types`), and the
few that need other words on PostgreSQL say them (`Migration.postgres`).

A state file made before migrations had names counted them in `PRAGMA user_version`: sqlite.py
records that many of the first migrations as applied before the rest run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from batchgen.state import kept_counts
from batchgen.state.db import Database


def _check_counts(source: str, sign: str, check: str, job: str = "j") -> list[str]:
    """The statements that add `sign` (1 or -1) to `check_counts` for the checks of `source`
    that count: the check's columns are `check` (a trigger's `new` or `old`; "" for the table
    `c`), the job's are `job` (the table `j`, or a trigger's row)."""
    c = check or "c"
    counted = (
        f"{c}.job_id = {job}.job_id AND {c}.sha256 = {job}.sha256 "
        f"AND {job}.status = 'done' AND {job}.seq >= 0"
    )
    upsert = "ON CONFLICT (kind, code) DO UPDATE SET jobs = jobs + excluded.jobs"
    kinds = f"SELECT {{}}, {sign} FROM {source}{{}} WHERE {counted}{{}} {upsert}"
    into = "INSERT INTO check_counts (kind, code, jobs) "
    codes = f", json_each({c}.findings) AS f"
    code = "'code', coalesce(json_extract(f.value, '$.code'), '')"
    return [
        into + kinds.format("'checked', ''", "", ""),
        into + kinds.format("'flagged', ''", "", f" AND {c}.findings != '[]'"),
        into + kinds.format(code, codes, f" AND {c}.findings != '[]'"),
    ]


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: `name` is recorded once `sql` has run (`postgres` instead of
    `sql` on PostgreSQL, when the words differ there)."""

    name: str
    sql: str
    postgres: str | None = None

    def sql_for(self, dialect: str) -> str:
        if dialect == "postgresql":
            return postgres_types(self.sql if self.postgres is None else self.postgres)
        return self.sql


MIGRATIONS: Sequence[Migration] = (
    Migration(
        "jobs",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            row_id TEXT NOT NULL,
            request TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            variant TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'pending',
            generation INTEGER NOT NULL DEFAULT 0,
            external_task_id TEXT,
            task_id TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            not_before REAL NOT NULL DEFAULT 0,
            last_error TEXT,
            error_kind TEXT,
            video_url TEXT,
            output_path TEXT,
            sha256 TEXT,
            bytes INTEGER,
            submitted_at REAL,
            finished_at REAL,
            task_created_at INTEGER,
            task_updated_at INTEGER,
            unit_deduction TEXT,
            video_duration TEXT,
            api_calls INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX jobs_by_status ON jobs (status, seq);
        CREATE UNIQUE INDEX jobs_by_task ON jobs (task_id) WHERE task_id IS NOT NULL;
        CREATE INDEX jobs_by_external ON jobs (external_task_id);
        """,
    ),
    Migration(
        "inputs",
        "CREATE TABLE inputs (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ref TEXT);",
    ),
    # What each downloaded video turned out to be (media/), and the size of each input image.
    # Clearing the `inputs` fingerprint makes the next run load its manifest in full once,
    # which fills `images` for a state made before this migration.
    Migration(
        "video_checks_and_images",
        """
        CREATE TABLE video_checks (
            job_id TEXT PRIMARY KEY,
            sha256 TEXT NOT NULL,
            probe TEXT NOT NULL,
            findings TEXT NOT NULL
        );
        CREATE TABLE images (ref TEXT PRIMARY KEY, width INTEGER, height INTEGER, source TEXT);
        UPDATE meta SET value = '' WHERE key = 'inputs';
        """,
    ),
    # The watermarked copy a request may ask for, and the rows --skip-invalid left out.
    Migration(
        "watermarks_and_skipped_rows",
        """
        ALTER TABLE jobs ADD COLUMN watermark_url TEXT;
        ALTER TABLE jobs ADD COLUMN watermark_path TEXT;
        CREATE TABLE skipped (row TEXT NOT NULL, line INTEGER NOT NULL, field TEXT NOT NULL,
                              message TEXT NOT NULL);
        """,
        postgres="""
        ALTER TABLE jobs ADD COLUMN watermark_url TEXT;
        ALTER TABLE jobs ADD COLUMN watermark_path TEXT;
        CREATE TABLE skipped (row TEXT NOT NULL, line INTEGER NOT NULL, field TEXT NOT NULL,
                              message TEXT NOT NULL, ROWID);
        """,
    ),
    # The fields a job is priced by, kept beside its request: money over a million jobs is a
    # GROUP BY, not a million JSON parses (`price_key`; the same text as json_array gives).
    Migration(
        "price_key",
        """
        ALTER TABLE jobs ADD COLUMN price_key TEXT;
        UPDATE jobs SET price_key = json_array(
            json_extract(request, '$.model_name'), json_extract(request, '$.mode'),
            json_extract(request, '$.duration'), json_extract(request, '$.sound'),
            json_type(request, '$.voice_list') IS NOT NULL);
        """,
        postgres="ALTER TABLE jobs ADD COLUMN price_key TEXT;",  # (no state there predates it)
    ),
    # Nothing ever counted API calls per job: the run counts them as a whole (RunOutcome).
    Migration("drop_api_calls", "ALTER TABLE jobs DROP COLUMN api_calls;"),
    # Every look-up by external id made for a job whose create may have been accepted: the
    # evidence shown beside an unknown job (kling-api.md §18.2 (1)).
    Migration(
        "lookups",
        """
        CREATE TABLE lookups (
            job_id TEXT NOT NULL,
            at REAL NOT NULL,
            form TEXT NOT NULL,
            answer TEXT NOT NULL
        );
        CREATE INDEX lookups_by_job ON lookups (job_id, at);
        """,
        postgres="""
        CREATE TABLE lookups (
            job_id TEXT NOT NULL,
            at REAL NOT NULL,
            form TEXT NOT NULL,
            answer TEXT NOT NULL,
            ROWID
        );
        CREATE INDEX lookups_by_job ON lookups (job_id, at);
        """,
    ),
    # New generations sent without the user after moderation refused one (--retry-moderation).
    Migration(
        "moderation_retries",
        "ALTER TABLE jobs ADD COLUMN moderation_retries INTEGER NOT NULL DEFAULT 0;",
    ),
    # The cash a task reports it cost ("USD 0.42"), beside its units (kling-api.md §18.2 (9)).
    Migration("cash_deduction", "ALTER TABLE jobs ADD COLUMN cash_deduction TEXT;"),
    # The other state whose paid task or video a job took instead of paying again (ledger.py).
    Migration("reused_from", "ALTER TABLE jobs ADD COLUMN reused_from TEXT;"),
    # Workers of one run on PostgreSQL (claims.py): who holds each job, the fencing epoch of
    # that hold, until when; and the workers themselves.
    Migration(
        "workers",
        """
        ALTER TABLE jobs ADD COLUMN owner TEXT;
        ALTER TABLE jobs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE jobs ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;
        CREATE TABLE workers (
            worker TEXT PRIMARY KEY,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL
        );
        """,
    ),
    # The jobs counted by what `status` and the money show (status, in the manifest or not,
    # price key, paid here or taken from another state), kept by triggers as the jobs change,
    # whichever statement changes them: a few rows to read instead of a million jobs. SQLite
    # only: on PostgreSQL, where many workers write at once, they are kept another way
    # (`kept_counts`).
    Migration(
        "status_counts",
        """
        CREATE TABLE job_counts (
            status TEXT NOT NULL,
            listed INTEGER NOT NULL,
            price_key TEXT NOT NULL,
            paid INTEGER NOT NULL,
            jobs INTEGER NOT NULL,
            units REAL NOT NULL,
            reported INTEGER NOT NULL,
            PRIMARY KEY (status, listed, price_key, paid)
        );
        INSERT INTO job_counts
            SELECT status, seq >= 0, coalesce(price_key, ''), reused_from IS NULL, count(*),
                   coalesce(sum(CAST(unit_deduction AS REAL)), 0.0), count(unit_deduction)
            FROM jobs GROUP BY 1, 2, 3, 4;
        CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
            {add};
        END;
        CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
            {remove};
        END;
        CREATE TRIGGER job_counts_update
            AFTER UPDATE OF status, seq, price_key, reused_from, unit_deduction ON jobs
            WHEN old.status IS NOT new.status OR (old.seq >= 0) IS NOT (new.seq >= 0)
                OR old.price_key IS NOT new.price_key
                OR (old.reused_from IS NULL) IS NOT (new.reused_from IS NULL)
                OR old.unit_deduction IS NOT new.unit_deduction
        BEGIN
            {remove};
            {add};
        END;
        """.format(
            add="""INSERT INTO job_counts VALUES (new.status, new.seq >= 0,
                coalesce(new.price_key, ''), new.reused_from IS NULL, 1,
                coalesce(CAST(new.unit_deduction AS REAL), 0.0), new.unit_deduction IS NOT NULL)
            ON CONFLICT (status, listed, price_key, paid) DO UPDATE SET jobs = jobs + 1,
                units = units + excluded.units, reported = reported + excluded.reported""",
            remove="""UPDATE job_counts SET jobs = jobs - 1,
                units = units - coalesce(CAST(old.unit_deduction AS REAL), 0.0),
                reported = reported - (old.unit_deduction IS NOT NULL)
            WHERE status = old.status AND listed = (old.seq >= 0)
                AND price_key = coalesce(old.price_key, '') AND paid = (old.reused_from IS NULL)""",
        ),
        postgres="",
    ),
    # Each download asks which done jobs hold the path its video goes to (an edited row's
    # earlier video is moved aside first): found by the path, not by reading every done job.
    Migration(
        "jobs_by_output_path",
        "CREATE INDEX jobs_by_output_path ON jobs (output_path) WHERE output_path IS NOT NULL",
    ),
    # What `status` and `report` say of the checks (the manifest's done videos checked, how
    # many flagged, how often each finding's code), kept by triggers on the checks and on the
    # jobs as `job_counts` is: a check counts while its job is done, of the manifest, and its
    # video is the one checked (the same sha256). SQLite only, as `job_counts`. The flagged
    # checks are indexed on both: the first of them are listed without reading every check.
    Migration(
        "check_counts",
        """
        CREATE TABLE check_counts (
            kind TEXT NOT NULL,  -- 'checked', 'flagged', or 'code': a finding's code
            code TEXT NOT NULL,
            jobs INTEGER NOT NULL,
            PRIMARY KEY (kind, code)
        );
        {fill}
        CREATE TRIGGER check_counts_check_insert AFTER INSERT ON video_checks BEGIN
            {add_new_check};
        END;
        CREATE TRIGGER check_counts_check_delete AFTER DELETE ON video_checks BEGIN
            {remove_old_check};
        END;
        CREATE TRIGGER check_counts_check_update AFTER UPDATE OF sha256, findings, job_id
            ON video_checks
        BEGIN
            {remove_old_check};
            {add_new_check};
        END;
        CREATE TRIGGER check_counts_job_insert AFTER INSERT ON jobs WHEN new.status = 'done'
        BEGIN
            {add_new_job};
        END;
        CREATE TRIGGER check_counts_job_delete AFTER DELETE ON jobs WHEN old.status = 'done'
        BEGIN
            {remove_old_job};
        END;
        CREATE TRIGGER check_counts_job_update AFTER UPDATE OF status, seq, sha256 ON jobs
            WHEN (old.status = 'done' OR new.status = 'done')
                AND (old.status IS NOT new.status OR (old.seq >= 0) IS NOT (new.seq >= 0)
                    OR old.sha256 IS NOT new.sha256)
        BEGIN
            {remove_old_job};
            {add_new_job};
        END;
        CREATE INDEX video_checks_flagged ON video_checks (job_id) WHERE findings != '[]';
        """.format(
            fill=";\n".join(_check_counts("video_checks c CROSS JOIN jobs j", "1", "")) + ";",
            add_new_check=";\n".join(_check_counts("jobs j", "1", "new")),
            remove_old_check=";\n".join(_check_counts("jobs j", "-1", "old")),
            add_new_job=";\n".join(_check_counts("video_checks c", "1", "", "new")),
            remove_old_job=";\n".join(_check_counts("video_checks c", "-1", "", "old")),
        ),
        postgres=(
            "CREATE INDEX video_checks_flagged ON video_checks (job_id) WHERE findings != '[]'"
        ),
    ),
    # The same counts on PostgreSQL, where the triggers only append each change for a fold to
    # sum, so that workers writing at once never wait for each other (kept_counts.py).
    Migration("kept_counts", "", postgres=kept_counts.MIGRATION),
    # The jobs a worker holds (leased, pending or in flight; claims.py): its heartbeat renews
    # their leases and every start counts them per live worker. Without an index each of
    # those read every job of the run (a second or more at 1,000,000 on PostgreSQL, each
    # heartbeat of each worker); the index holds only the held jobs. Its condition is the
    # queries' own words (claims.HELD), so that both databases use it.
    Migration(
        "jobs_held",
        "CREATE INDEX jobs_held ON jobs (owner) WHERE owner IS NOT NULL AND status IN "
        "('pending', 'submitting', 'submitted', 'running', 'downloading')",
    ),
)

# The account ledger (ledger.py, leases.py): one file per user, shared by every run.
LEDGER_MIGRATIONS: Sequence[Migration] = (
    Migration(
        "ledger",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE accounts (
            account TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            base_url TEXT NOT NULL,
            slots INTEGER,
            learned_slots INTEGER,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL
        );
        CREATE TABLE runs (
            state_id TEXT PRIMARY KEY,
            account TEXT NOT NULL,
            name TEXT NOT NULL,
            manifest TEXT NOT NULL,
            state_path TEXT NOT NULL,
            run_dir TEXT NOT NULL,
            created_at REAL NOT NULL,
            last_active REAL NOT NULL,
            running INTEGER NOT NULL DEFAULT 0,
            host TEXT NOT NULL DEFAULT '',
            pid INTEGER,
            counts TEXT NOT NULL DEFAULT '{}',
            spent_usd REAL NOT NULL DEFAULT 0
        );
        CREATE TABLE sends (
            account TEXT NOT NULL,
            external_id TEXT NOT NULL,
            state_id TEXT NOT NULL,
            job_id TEXT NOT NULL,
            status TEXT NOT NULL,
            task_id TEXT,
            sent_at REAL NOT NULL,
            accepted_at REAL,
            updated_at REAL NOT NULL,
            cost_usd REAL,
            video_sha256 TEXT,
            video_path TEXT,
            facts TEXT,
            note TEXT,
            PRIMARY KEY (account, external_id)
        );
        CREATE INDEX sends_by_state ON sends (state_id);
        CREATE TABLE holders (
            account TEXT NOT NULL,
            holder TEXT NOT NULL,
            state_id TEXT NOT NULL,
            share INTEGER NOT NULL,
            held INTEGER NOT NULL DEFAULT 0,
            wanting INTEGER NOT NULL DEFAULT 0,
            expires_at REAL NOT NULL,
            PRIMARY KEY (account, holder)
        );
        """,
    ),
)

_RECORD = "CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL{})"

# SQLite's types, and the words PostgreSQL has for them. Text compares byte by byte on both
# (SQLite's BINARY is PostgreSQL's "C"), so that ORDER BY gives the same rows in the same order;
# a table whose rows keep the order they were written in has an explicit `rowid` there.
_POSTGRES_TYPES = {
    "INTEGER": "BIGINT",
    "REAL": "DOUBLE PRECISION",
    "TEXT": 'TEXT COLLATE "C"',
    "ROWID": "rowid BIGINT GENERATED ALWAYS AS IDENTITY",
}
_TYPE = re.compile(r"\b(" + "|".join(_POSTGRES_TYPES) + r")\b")


def postgres_types(sql: str) -> str:
    """`sql` (a migration) with SQLite's column types turned into PostgreSQL's."""
    return _TYPE.sub(lambda m: _POSTGRES_TYPES[m.group(1)], sql)


def record_sql(dialect: str) -> str:
    """The statement that makes `_migrations`."""
    if dialect == "postgresql":
        return postgres_types(_RECORD.format(", ROWID"))
    return _RECORD.format("")


def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Apply every migration `db` has not had yet, each in its own transaction; returns the
    names applied."""
    if not db.has_table("_migrations"):
        db.script(record_sql(db.dialect))
    done = {name for (name,) in db.all("SELECT name FROM _migrations")}
    applied = []
    for migration in migrations:
        if migration.name in done:
            continue
        db.script(
            f"{migration.sql_for(db.dialect)}; "
            f"INSERT INTO _migrations (name, applied_at) VALUES ('{migration.name}', "
            f"{time.time()!r});"
        )
        applied.append(migration.name)
    return applied


def applied(db: Database) -> list[str]:
    """Names of the migrations a state has had, in the order they were applied."""
    return [name for (name,) in db.all("SELECT name FROM _migrations ORDER BY rowid")]
