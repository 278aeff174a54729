"""The run's state: one SQLite file (WAL) holding every job. The only module that speaks SQL.

Every method that changes a job commits before it returns, so that the action depending on it
(sending a create, deleting a .part file, writing the index) only ever follows a durable record;
a run groups its updates (`group_commits`) and commits them every few milliseconds.
`synchronous=NORMAL` keeps commits across a killed process. The one record that must also
survive a power cut, `submitting` before a create is sent, is committed with
`synchronous=FULL` (`mark_submitting`): without it a resend could pay twice on a provider that
does not refuse a re-used external_task_id.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchgen.errors import StateError, StorageError
from batchgen.jobs import JobSpec, canonical_json, external_task_id
from batchgen.status import JobStatus, can_move

MIGRATIONS: Sequence[str] = (
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
    """
    CREATE TABLE inputs (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ref TEXT);
    """,
    # What each downloaded video turned out to be (media/), and the size of each input image.
    # Clearing the `inputs` fingerprint makes the next run load its manifest in full once,
    # which fills `images` for a state made before this migration.
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
    # The watermarked copy a request may ask for, and the rows --skip-invalid left out.
    """
    ALTER TABLE jobs ADD COLUMN watermark_url TEXT;
    ALTER TABLE jobs ADD COLUMN watermark_path TEXT;
    CREATE TABLE skipped (row TEXT NOT NULL, line INTEGER NOT NULL, field TEXT NOT NULL,
                          message TEXT NOT NULL);
    """,
    # The fields a job is priced by, kept beside its request: money over a million jobs is a
    # GROUP BY, not a million JSON parses (`price_key`; the same text as json_array gives).
    """
    ALTER TABLE jobs ADD COLUMN price_key TEXT;
    UPDATE jobs SET price_key = json_array(
        json_extract(request, '$.model_name'), json_extract(request, '$.mode'),
        json_extract(request, '$.duration'), json_extract(request, '$.sound'),
        json_type(request, '$.voice_list') IS NOT NULL);
    """,
)

DoneVideo = tuple[int, str, str | None, int | None]  # seq, job id, video path, bytes
InputFile = tuple[str, int | None, int | None, str | None]  # path, size, mtime_ns, image ref
InputImage = tuple[str, int | None, int | None, str | None]  # ref, width, height, source
LEASE_SECONDS = 86400.0 * 365
# Failures after which the provider's paid task is still there to follow: `retry` polls it
# again rather than paying for a new one.
FOLLOW_AGAIN = ("task_timeout", "no_video", "not_a_video", "download")
# Jobs of the current manifest, and those of earlier manifests the provider still works on.
CURRENT = "(seq >= 0 OR status NOT IN ('pending', 'done', 'failed'))"

# Jobs joined to the check of their current video, and the manifest's done jobs.
_CHECKED = "FROM jobs JOIN video_checks c ON c.job_id = jobs.job_id AND c.sha256 = jobs.sha256"
_DONE = "status = 'done' AND seq >= 0"
JOB_COLUMNS = (
    "job_id, seq, row_id, request, metadata, variant, status, generation, external_task_id, "
    "task_id, attempts, not_before, last_error, error_kind, video_url, output_path, sha256, "
    "bytes, submitted_at, finished_at, task_created_at, task_updated_at, unit_deduction, "
    "video_duration, api_calls, watermark_url, watermark_path"
)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as the state holds it."""

    job_id: str
    seq: int
    row_id: str
    request_json: str
    metadata_json: str
    variant_json: str
    status: JobStatus
    generation: int
    external_task_id: str | None
    task_id: str | None
    attempts: int
    not_before: float
    last_error: str | None
    error_kind: str | None
    video_url: str | None
    output_path: str | None
    sha256: str | None
    bytes: int | None
    submitted_at: float | None
    finished_at: float | None
    task_created_at: int | None
    task_updated_at: int | None
    unit_deduction: str | None
    video_duration: str | None
    api_calls: int
    watermark_url: str | None
    watermark_path: str | None

    @property
    def request(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.request_json)
        return value

    @property
    def metadata(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.metadata_json)
        return value

    @property
    def variant(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.variant_json)
        return value

    @property
    def current_external_id(self) -> str:
        return self.external_task_id or external_task_id(self.job_id, self.generation)


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """The probe and QA findings of a job's current video (media/), as the state holds them."""

    probe_json: str
    findings_json: str

    @property
    def probe(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.probe_json)
        return value

    @property
    def findings(self) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = json.loads(self.findings_json)
        return value

    def as_json(self) -> dict[str, Any]:
        """{"probe": ..., "qa": [...]}, as the index and the sidecars write it."""
        return {"probe": self.probe, "qa": self.findings}


def _record(row: sqlite3.Row | tuple[Any, ...]) -> JobRecord:
    values = list(row)
    values[6] = JobStatus(values[6])
    return JobRecord(*values)


class IllegalTransition(StateError):
    """A job was asked to move between states the transition table does not allow."""


class Store:
    """Every job of one run and its status. Open with `Store.open(path)`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._grouped = False

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open (creating if needed) and migrate the state file."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create the folder {path.parent}: {exc.strerror}") from None
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            _migrate(conn)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open state file {path}: {exc}") from None
        return cls(conn, path)

    def close(self) -> None:
        self.commit()
        self._conn.close()

    # -- group commit -------------------------------------------------------------------------

    def group_commits(self) -> None:
        """From now on job updates gather in one open transaction until `commit` (the run
        commits every few milliseconds, and always before a create is sent). A crash loses at
        most the updates since the last commit, each of which resume redoes safely: an unknown
        task id is looked up by external_task_id, a download is fetched again."""
        self._grouped = True

    def commit(self) -> None:
        if self._conn.in_transaction:
            with self._writing():
                self._conn.execute("COMMIT")

    def end_grouping(self) -> None:
        self.commit()
        self._grouped = False

    def _write(self, sql: str, params: Sequence[Any]) -> None:
        with self._writing():
            if self._grouped and not self._conn.in_transaction:
                self._conn.execute("BEGIN")
            self._conn.execute(sql, params)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A write that finds the disk full (or the file too large) is a StorageError."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if not _out_of_room(exc):
                raise
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise StorageError(f"cannot write the state {self.path}: {exc}") from None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta -------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- what the jobs were loaded from (see fingerprint.py) ---------------------------------

    def replace_inputs(self, rows: Iterable[InputFile]) -> None:
        """(path, size, mtime_ns, image ref or None) of every file the jobs came from."""
        with self.transaction():
            self._conn.execute("DELETE FROM inputs")
            self._conn.executemany("INSERT OR REPLACE INTO inputs VALUES (?, ?, ?, ?)", rows)

    def inputs(self) -> Iterator[InputFile]:
        return (
            (str(p), s, m, r)
            for p, s, m, r in self._conn.execute("SELECT path, size, mtime_ns, ref FROM inputs")
        )

    # -- input images (recorded when the jobs are loaded) ----------------------------------

    def record_images(self, rows: Iterable[InputImage]) -> None:
        """(ref, width, height, source) of input images: `source` is the absolute path of a
        local file, the URL the provider fetches, or None (base64 from the manifest)."""
        with self.transaction():
            self._conn.executemany("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?)", rows)

    def image(self, ref: str) -> InputImage | None:
        row = self._conn.execute(
            "SELECT ref, width, height, source FROM images WHERE ref = ?", (ref,)
        ).fetchone()
        return None if row is None else (str(row[0]), row[1], row[2], row[3])

    def image_size(self, ref: str) -> tuple[int, int] | None:
        """(width, height) of the input image `ref`, if it was read when the jobs loaded."""
        found = self.image(ref)
        if found is None or found[1] is None or found[2] is None:
            return None
        return found[1], found[2]

    # -- what each video turned out to be (media/) ------------------------------------------

    def record_check(
        self,
        job_id: str,
        sha256: str,
        probe: Mapping[str, Any],
        findings: Sequence[Mapping[str, Any]],
    ) -> None:
        """The probe and QA findings of the job's video with this sha256 (a video downloaded
        again with other bytes is unchecked until it is recorded again)."""
        self._write(
            "INSERT INTO video_checks VALUES (?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET "
            "sha256 = excluded.sha256, probe = excluded.probe, findings = excluded.findings",
            (job_id, sha256, canonical_json(probe), canonical_json(findings)),
        )

    def done_with_checks(self) -> Iterator[tuple[JobRecord, CheckRecord | None]]:
        """The manifest's done jobs in job-id order, each with its video's check."""
        return self._with_checks("status = 'done' AND seq >= 0", "job_id")

    def jobs_with_checks(self) -> Iterator[tuple[JobRecord, CheckRecord | None]]:
        """Every job of the run (see CURRENT) in manifest order, each with its video's check."""
        return self._with_checks(CURRENT, "seq, job_id")

    def check_counts(self) -> tuple[int, int, dict[str, int]]:
        """Done jobs of the manifest whose video is checked, how many of them are flagged,
        and the number of each finding's code."""
        checked, flagged = self._conn.execute(
            f"SELECT count(*), total(c.findings != '[]') {_CHECKED} WHERE {_DONE}"
        ).fetchone()
        codes = self._conn.execute(
            f"SELECT json_extract(f.value, '$.code'), count(*) {_CHECKED}, "
            f"json_each(c.findings) f WHERE {_DONE} AND c.findings != '[]' "
            "GROUP BY 1 ORDER BY 2 DESC, 1"
        )
        return int(checked), int(flagged), {str(code): int(n) for code, n in codes}

    def flagged(self, limit: int) -> list[tuple[str, str, list[dict[str, Any]]]]:
        """(row id, job id, findings) of the first `limit` flagged done jobs, manifest order."""
        rows = self._conn.execute(
            f"SELECT jobs.row_id, jobs.job_id, c.findings {_CHECKED} WHERE {_DONE} "
            "AND c.findings != '[]' ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [(str(row), str(job), json.loads(found)) for row, job, found in rows]

    def _with_checks(
        self, where: str, order: str
    ) -> Iterator[tuple[JobRecord, CheckRecord | None]]:
        cursor = self._conn.execute(
            f"SELECT {JOB_COLUMNS}, c_probe, c_findings FROM jobs LEFT JOIN ("
            "SELECT job_id AS c_job, sha256 AS c_sha, probe AS c_probe, findings AS c_findings "
            f"FROM video_checks) ON c_job = job_id AND c_sha = sha256 WHERE {where} "
            f"ORDER BY {order}"
        )
        for row in cursor:
            check = None if row[-2] is None else CheckRecord(row[-2], row[-1])
            yield _record(row[:-2]), check

    def current_jobs(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM jobs WHERE seq >= 0").fetchone()
        return int(row[0])

    # -- loading jobs -----------------------------------------------------------------------

    def add_jobs(self, specs: Iterable[JobSpec], batch: int = 5000) -> tuple[int, int]:
        """Record the manifest's jobs in one transaction: new ones as pending, known ones keep
        their state (their row id, order and metadata follow the manifest). Jobs no longer in
        the manifest that were never sent are dropped; the others stay, with `seq` -1, so what
        was paid for is still finished. Returns (new, known). If `specs` raises, nothing
        changes."""
        new = known = 0
        seq = 0
        with self.transaction():
            self._conn.execute("UPDATE jobs SET seq = -1")
            pending: list[tuple[Any, ...]] = []
            for spec in specs:
                pending.append(_job_values(spec, seq))
                seq += 1
                if len(pending) >= batch:
                    n = self._insert_jobs(pending)
                    new, known = new + n, known + len(pending) - n
                    pending = []
            n = self._insert_jobs(pending)
            new, known = new + n, known + len(pending) - n
            self._conn.execute(
                "DELETE FROM jobs WHERE seq = -1 AND status = 'pending' "
                "AND external_task_id IS NULL AND task_id IS NULL"
            )
            self._conn.execute(
                "UPDATE jobs SET row_id = row_id || '~' || substr(job_id, 1, 8) "
                "WHERE seq = -1 AND status NOT IN ('done', 'failed') AND instr(row_id, '~') = 0"
            )
        return new, known

    def _insert_jobs(self, values: list[tuple[Any, ...]]) -> int:
        before = self._conn.total_changes
        self._conn.executemany(
            "INSERT INTO jobs (job_id, seq, row_id, request, metadata, variant, price_key) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
            values,
        )
        inserted = self._conn.total_changes - before
        self._conn.executemany(
            "UPDATE jobs SET seq = ?2, row_id = ?3, metadata = ?5, variant = ?6, price_key = ?7 "
            "WHERE job_id = ?1",
            values,
        )
        return inserted

    def transaction(self) -> _Transaction:
        """A context manager grouping writes into one commit."""
        return _Transaction(self._conn)

    # -- reading ----------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        row = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        return None if row is None else _record(row)

    def counts(self) -> dict[JobStatus, int]:
        """Number of jobs in each status (every status present, zeros included)."""
        counts = dict.fromkeys(JobStatus, 0)
        for status, n in self._conn.execute(
            "SELECT status, count(*) FROM jobs WHERE " + CURRENT + " GROUP BY status"
        ):
            counts[JobStatus(status)] = n
        return counts

    def with_status(self, *statuses: JobStatus) -> Iterator[JobRecord]:
        """Jobs in these statuses that belong to the run (see CURRENT), in manifest order."""
        marks = ",".join("?" * len(statuses))
        cursor = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ({marks}) AND {CURRENT} ORDER BY seq",
            [s.value for s in statuses],
        )
        return (_record(row) for row in cursor)

    def due_pending(self, now: float, limit: int, after_seq: int = -1) -> list[JobRecord]:
        """Pending jobs whose retry time has come, in manifest order after `after_seq`."""
        rows = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'pending' AND seq > ? "
            "AND not_before <= ? ORDER BY seq LIMIT ?",
            (after_seq, now, limit),
        ).fetchall()
        return [_record(row) for row in rows]

    def done_videos(self, after_seq: int, limit: int) -> list[DoneVideo]:
        """(seq, job id, video path, bytes) of done jobs of the manifest, in order after
        `after_seq`."""
        rows = self._conn.execute(
            "SELECT seq, job_id, output_path, bytes FROM jobs WHERE status = 'done' AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [(int(s), str(j), p, b) for s, j, p, b in rows]

    def due_lookups(self, now: float) -> list[JobRecord]:
        """Jobs left `submitting` (a create whose answer was lost) whose retry time has come."""
        rows = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'submitting' AND not_before <= ? "
            "ORDER BY seq",
            (now,),
        ).fetchall()
        return [_record(row) for row in rows]

    def next_not_before(self) -> float | None:
        """The earliest time a pending job may be tried, or None if nothing is pending."""
        row = self._conn.execute(
            "SELECT min(not_before) FROM jobs WHERE status IN ('pending', 'submitting')"
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def job_of_task(self, task_id: str) -> str | None:
        """The job holding the provider's task `task_id`, if any."""
        row = self._conn.execute("SELECT job_id FROM jobs WHERE task_id = ?", (task_id,)).fetchone()
        return None if row is None else str(row[0])

    def find_by_external_id(self, external_id: str) -> JobRecord | None:
        row = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE external_task_id = ?", (external_id,)
        ).fetchone()
        return None if row is None else _record(row)

    def resolve_job_ids(self, names: Sequence[str]) -> list[str]:
        """Job ids for names that are job ids or row ids; unknown names are a StateError."""
        found = []
        for name in names:
            row = self._conn.execute(
                "SELECT job_id FROM jobs WHERE job_id = ? OR row_id = ? "
                "ORDER BY job_id = ? DESC, seq DESC LIMIT 1",
                (name, name, name),
            ).fetchone()
            if row is None:
                raise StateError(f"no job with id or row id {name!r} in {self.path}")
            found.append(str(row[0]))
        return found

    def lock_rows(self) -> Iterator[tuple[str, str, str]]:
        """(job_id, row_id, request JSON) of the manifest's jobs, sorted by job id."""
        cursor = self._conn.execute(
            "SELECT job_id, row_id, request FROM jobs WHERE seq >= 0 ORDER BY job_id"
        )
        return ((str(a), str(b), str(c)) for a, b, c in cursor)

    def job_ids(self) -> Iterator[str]:
        return (row[0] for row in self._conn.execute("SELECT job_id FROM jobs ORDER BY job_id"))

    def done_in_job_order(self) -> Iterator[JobRecord]:
        cursor = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'done' AND seq >= 0 ORDER BY job_id"
        )
        return (_record(row) for row in cursor)

    def superseded_done(self) -> Iterator[JobRecord]:
        """Done jobs of rows that were edited since (no longer in the manifest), by job id:
        their paid videos stay in the run folder."""
        cursor = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'done' AND seq < 0 ORDER BY job_id"
        )
        return (_record(row) for row in cursor)

    def done_at_path(self, output_path: str) -> list[JobRecord]:
        """Done jobs whose video is recorded at `output_path`."""
        rows = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'done' AND output_path = ?",
            (output_path,),
        ).fetchall()
        return [_record(row) for row in rows]

    def unknown_in_job_order(self) -> Iterator[JobRecord]:
        """Jobs whose create may have been accepted (any manifest), by job id."""
        cursor = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'unknown' ORDER BY job_id"
        )
        return (_record(row) for row in cursor)

    def priced_groups(self) -> Iterator[tuple[str, dict[str, Any], int, float, int]]:
        """(status, pricing fields, jobs, units charged, jobs that reported units) for every
        combination of status and the fields a job is priced by, over the whole state."""
        cursor = self._conn.execute(
            "SELECT status, price_key, count(*), total(CAST(unit_deduction AS REAL)), "
            "count(unit_deduction) FROM jobs GROUP BY 1, 2"
        )
        for status, key, jobs, units, reported in cursor:
            yield str(status), _pricing_fields(key), int(jobs), float(units), int(reported)

    def replace_skipped(self, problems: Iterable[tuple[str, int, str, str]]) -> None:
        """(row, line, field, message) of the rows the last load left out (--skip-invalid)."""
        with self.transaction():
            self._conn.execute("DELETE FROM skipped")
            self._conn.executemany("INSERT INTO skipped VALUES (?, ?, ?, ?)", problems)

    def skipped(self) -> Iterator[tuple[str, int, str, str]]:
        cursor = self._conn.execute("SELECT row, line, field, message FROM skipped ORDER BY rowid")
        return ((str(r), int(n), str(f), str(m)) for r, n, f, m in cursor)

    def done_pricing_fields(self) -> Iterator[tuple[dict[str, Any], int]]:
        """The fields a done job is priced by, each combination with its number of done jobs
        of the manifest."""
        cursor = self._conn.execute(
            "SELECT price_key, count(*) FROM jobs WHERE status = 'done' AND seq >= 0 GROUP BY 1"
        )
        return ((_pricing_fields(key), int(n)) for key, n in cursor)

    def units_charged(self) -> float:
        """Sum of the provider's final_unit_deduction over every paid task of the state (done
        jobs, the earlier videos of edited rows included, and failures that were charged)."""
        row = self._conn.execute(
            "SELECT total(CAST(unit_deduction AS REAL)) FROM jobs WHERE unit_deduction IS NOT NULL"
        ).fetchone()
        return float(row[0])

    def superseded_count(self) -> int:
        """Done jobs of rows edited since: their paid videos stay in the run folder."""
        row = self._conn.execute(
            "SELECT count(*) FROM jobs WHERE status = 'done' AND seq < 0"
        ).fetchone()
        return int(row[0])

    def failed_in_job_order(self) -> Iterator[JobRecord]:
        cursor = self._conn.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'failed' AND seq >= 0 ORDER BY job_id"
        )
        return (_record(row) for row in cursor)

    def integrity_ok(self) -> bool:
        return bool(self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # -- transitions ------------------------------------------------------------------------

    def mark_submitting(self, job_id: str, external_id: str, now: float) -> JobStatus:
        """Committed durably (fsynced, power cuts included) before the create is sent; any
        grouped updates before it are committed first. The job is leased to this run (its
        `not_before` lies far ahead) until the answer moves it on."""
        self.commit()
        self._conn.execute("PRAGMA synchronous=FULL")
        try:
            with self._writing(), self.transaction():
                old = self._move(
                    job_id,
                    JobStatus.SUBMITTING,
                    external_task_id=external_id,
                    submitted_at=now,
                    not_before=now + LEASE_SECONDS,
                )
        finally:
            self._conn.execute("PRAGMA synchronous=NORMAL")
        return old

    def lease(self, job_id: str, now: float) -> None:
        """Hold a `submitting` job for this run while it is being looked up."""
        self._write(
            "UPDATE jobs SET not_before = ? WHERE job_id = ?", (now + LEASE_SECONDS, job_id)
        )

    def release_leases(self) -> None:
        """At the start of a run: every job left `submitting` is due for a look-up now."""
        self._conn.execute("UPDATE jobs SET not_before = 0 WHERE status = 'submitting'")

    def mark_accepted(
        self,
        job_id: str,
        task_id: str,
        status: JobStatus,
        *,
        created_at: int | None = None,
    ) -> JobStatus:
        """The provider has the task: from here on the job is paid for. Committed at once (a
        kill just after would otherwise leave a job whose task id is lost)."""
        old = self._move(
            job_id,
            status,
            task_id=task_id,
            task_created_at=created_at,
            last_error=None,
            error_kind=None,
            not_before=0,
        )
        self.commit()
        return old

    def mark_progress(self, job_id: str, status: JobStatus, **fields: Any) -> JobStatus:
        """The provider reported a new task status (running, downloading with its URL...)."""
        return self._move(job_id, status, **fields)

    def mark_retry(
        self, job_id: str, not_before: float, error: str, kind: str, *, count: bool = True
    ) -> JobStatus:
        """Back to pending until `not_before`; `count` is False for throttling."""
        return self._move(
            job_id,
            JobStatus.PENDING,
            not_before=not_before,
            last_error=error,
            error_kind=kind,
            attempts_inc=1 if count else 0,
        )

    def mark_waiting(
        self, job_id: str, not_before: float, error: str, kind: str, *, count: bool = True
    ) -> None:
        """Stay in the current status but do not act before `not_before` (a look-up, a
        download); `count` adds an attempt."""
        self._write(
            "UPDATE jobs SET not_before = ?, last_error = ?, error_kind = ?, "
            "attempts = attempts + ? WHERE job_id = ?",
            (not_before, error, kind, int(count), job_id),
        )

    def mark_unknown(self, job_id: str, reason: str, now: float) -> JobStatus:
        """The create may have been accepted and nothing can tell: never resend on our own."""
        return self._move(
            job_id,
            JobStatus.UNKNOWN,
            last_error=reason,
            error_kind="unknown_outcome",
            finished_at=now,
            not_before=0,
        )

    def mark_failed(
        self, job_id: str, error: str, kind: str, now: float, **fields: Any
    ) -> JobStatus:
        """`fields`: what else the provider said (e.g. `unit_deduction` of a charged failure)."""
        return self._move(
            job_id, JobStatus.FAILED, last_error=error, error_kind=kind, finished_at=now, **fields
        )

    def mark_done(
        self, job_id: str, output_path: str, sha256: str, size: int, now: float
    ) -> JobStatus:
        """Committed only after the video is renamed into place and synced."""
        return self._move(
            job_id,
            JobStatus.DONE,
            output_path=output_path,
            sha256=sha256,
            bytes=size,
            finished_at=now,
            last_error=None,
            error_kind=None,
        )

    def move_video(self, job_id: str, output_path: str) -> None:
        """A done job's video now lives at `output_path` (a later job took its old name).
        Committed at once: the old name is reused only after this."""
        self._write("UPDATE jobs SET output_path = ? WHERE job_id = ?", (output_path, job_id))
        self.commit()

    def move_watermark(self, job_id: str, path: str) -> None:
        """A done job's watermarked copy now lives at `path` (see `move_video`)."""
        self._write("UPDATE jobs SET watermark_path = ? WHERE job_id = ?", (path, job_id))
        self.commit()

    def adopt_task(self, job_id: str, task_id: str, created_at: int | None) -> JobStatus:
        """Record a task the user found for an `unknown` (or failed, pending) job; the next
        run follows and downloads it."""
        job = self.get(job_id)
        if job is None:
            raise StateError(f"unknown job {job_id}")
        if job.status in (JobStatus.PENDING, JobStatus.FAILED):
            self._write(
                "UPDATE jobs SET status = 'unknown', external_task_id = ? WHERE job_id = ?",
                (job.current_external_id, job_id),
            )
        return self.mark_accepted(job_id, task_id, JobStatus.SUBMITTED, created_at=created_at)

    def reset_unknown(self, job_ids: Sequence[str] | None = None) -> int:
        """Put `unknown` jobs back to pending under the same external_task_id (a provider that
        deduplicates ids refuses the resend instead of paying twice)."""
        where, params = _chosen("status = 'unknown'", job_ids)
        with self.transaction():
            return int(
                self._conn.execute(
                    "UPDATE jobs SET status = 'pending', task_id = NULL, not_before = 0, "
                    f"attempts = 0, last_error = NULL, error_kind = NULL WHERE {where}",
                    params,
                ).rowcount
            )

    def reset_for_retry(self, job_ids: Sequence[str] | None = None) -> int:
        """Put failed jobs back to work. A job whose paid task is known and did not fail at the
        provider (timed out, no video URL, a download that never arrived) is followed again;
        only the others are submitted again, under a fresh external_task_id generation."""
        where, params = _chosen("status = 'failed'", job_ids)
        repoll_kinds = ",".join(f"'{kind}'" for kind in FOLLOW_AGAIN)
        with self.transaction():
            repoll = self._conn.execute(
                "UPDATE jobs SET status = 'running', last_error = NULL, error_kind = NULL, "
                f"not_before = 0, video_url = NULL WHERE {where} "
                f"AND error_kind IN ({repoll_kinds}) AND task_id IS NOT NULL",
                params,
            ).rowcount
            resubmit = self._conn.execute(
                "UPDATE jobs SET status = 'pending', generation = generation + 1, "
                "external_task_id = NULL, task_id = NULL, video_url = NULL, attempts = 0, "
                f"not_before = 0, last_error = NULL, error_kind = NULL WHERE {where}",
                params,
            ).rowcount
        return int(repoll + resubmit)

    def add_api_calls(self, job_id: str, calls: int) -> None:
        self._write("UPDATE jobs SET api_calls = api_calls + ? WHERE job_id = ?", (calls, job_id))

    def _move(
        self, job_id: str, status: JobStatus, attempts_inc: int = 0, **fields: Any
    ) -> JobStatus:
        """Move a job to `status` (checked against the transition table) and set `fields`;
        returns the status it had."""
        row = self._conn.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise StateError(f"unknown job {job_id}")
        old = JobStatus(row[0])
        if not can_move(old, status):
            raise IllegalTransition(f"job {job_id}: {old} -> {status} is not allowed")
        assignments = ["status = ?", "attempts = attempts + ?"]
        values: list[Any] = [status.value, attempts_inc]
        for name, value in fields.items():
            assignments.append(f"{name} = ?")
            values.append(value)
        values.append(job_id)
        self._write(f"UPDATE jobs SET {', '.join(assignments)} WHERE job_id = ?", values)
        return old


def _chosen(where: str, job_ids: Sequence[str] | None) -> tuple[str, list[Any]]:
    """`where`, narrowed to `job_ids` when given."""
    if job_ids is None:
        return where, []
    return f"{where} AND job_id IN ({','.join('?' * len(job_ids))})", list(job_ids)


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
        self._conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _job_values(spec: JobSpec, seq: int) -> tuple[Any, ...]:
    return (
        spec.job_id,
        seq,
        spec.row_id,
        canonical_json(spec.request),
        canonical_json(spec.metadata),
        canonical_json(spec.variant),
        price_key(spec.request),
    )


def price_key(request: Mapping[str, Any]) -> str:
    """The fields a request is priced by, as SQLite's json_array writes them."""
    fields = [request.get(name) for name in ("model_name", "mode", "duration", "sound")]
    return json.dumps([*fields, int(request.get("voice_list") is not None)], separators=(",", ":"))


def _pricing_fields(key: str) -> dict[str, Any]:
    model, mode, duration, sound, voices = json.loads(key)
    fields = {"model_name": model, "mode": mode, "duration": duration, "sound": sound}
    if voices:
        fields["voice_list"] = [{}]  # a stand-in: only its presence changes the price
    return fields


def _out_of_room(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "disk is full" in text or "disk i/o error" in text or "too large" in text


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
