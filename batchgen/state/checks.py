"""What each downloaded video turned out to be: its probe and QA findings (media/), kept per job
for the sha256 they were made from, and the summaries `status`, `report` and `export` read."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from batchgen.jobs import canonical_json
from batchgen.state.db import Database
from batchgen.state.records import CURRENT, JOB_COLUMNS, CheckRecord, JobRecord, job_record

# Checks joined to the jobs whose current video they are of, read from the checks (CROSS JOIN
# keeps SQLite to that order: a run that checked few videos is not read through all its done
# jobs); and the manifest's done jobs.
_CHECKED = "FROM video_checks c CROSS JOIN jobs"
_DONE_JOBS_FIRST = "FROM jobs CROSS JOIN video_checks c"  # the done jobs in order, then checks
_OF_CURRENT = "c.job_id = jobs.job_id AND c.sha256 = jobs.sha256"
_DONE = "status = 'done' AND seq >= 0"


class VideoChecks:
    """The `video_checks` table of one state."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        job_id: str,
        sha256: str,
        probe: Mapping[str, Any],
        findings: Sequence[Mapping[str, Any]],
    ) -> None:
        """The probe and QA findings of the job's video with this sha256 (a video downloaded
        again with other bytes is unchecked until it is recorded again)."""
        self._db.write(
            "INSERT INTO video_checks VALUES (?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET "
            "sha256 = excluded.sha256, probe = excluded.probe, findings = excluded.findings",
            (job_id, sha256, canonical_json(probe), canonical_json(findings)),
        )

    def unchecked(self, job_ids: Sequence[str]) -> list[str]:
        """Those of the done jobs `job_ids` whose current video has no check."""
        if not job_ids:
            return []
        marks = ", ".join("?" * len(job_ids))
        rows = self._db.all(
            f"SELECT job_id FROM jobs WHERE job_id IN ({marks}) AND sha256 IS NOT NULL AND "
            f"NOT EXISTS (SELECT 1 FROM video_checks c WHERE {_OF_CURRENT})",
            job_ids,
        )
        return [str(job_id) for (job_id,) in rows]

    def done_with_checks(
        self, start: str | None = None, stop: str | None = None
    ) -> Iterator[tuple[JobRecord, CheckRecord | None]]:
        """The manifest's done jobs in job-id order, each with its video's check; those whose
        id is from `start` on and before `stop`, where given."""
        where, params = _DONE, []
        if start is not None:
            where, params = f"{where} AND job_id >= ?", [start]
        if stop is not None:
            where, params = f"{where} AND job_id < ?", [*params, stop]
        return self._with_checks(where, "job_id", params)

    def jobs_with_checks(self) -> Iterator[tuple[JobRecord, CheckRecord | None]]:
        """Every job of the run (see CURRENT) in manifest order, each with its video's check."""
        return self._with_checks(CURRENT, "seq, job_id")

    def counts(self) -> tuple[int, int, dict[str, int]]:
        """Done jobs of the manifest whose video is checked, how many of them are flagged,
        and the number of each finding's code: as the triggers keep them counted (on SQLite
        migrations.py, on PostgreSQL kept_counts.py), a few rows to read."""
        rows = self._db.all(
            "SELECT kind, code, sum(jobs) FROM check_counts GROUP BY kind, code "
            "HAVING sum(jobs) != 0 ORDER BY 3 DESC, 2"
        )
        totals = {str(kind): int(n) for kind, code, n in rows if kind != "code"}
        codes = {str(code): int(n) for kind, code, n in rows if kind == "code"}
        return totals.get("checked", 0), totals.get("flagged", 0), codes

    def counted(self) -> tuple[int, int, dict[str, int]]:
        """`counts` counted from the checks and the jobs themselves, by a join: what the
        triggers keep (the tests hold them to it)."""
        found = self._db.one(
            "SELECT count(*), coalesce(sum(CASE WHEN c.findings != '[]' THEN 1 ELSE 0 END), 0) "
            f"{_CHECKED} WHERE {_OF_CURRENT} AND {_DONE}"
        )
        assert found is not None
        checked, flagged = found
        codes = self._db.rows(
            f"SELECT {self._db.json_text('f.value', 'code')}, count(*) {_CHECKED} CROSS JOIN "
            f"{self._db.json_elements('c.findings', 'f')} WHERE {_OF_CURRENT} AND {_DONE} "
            "AND c.findings != '[]' GROUP BY 1 ORDER BY 2 DESC, 1"
        )
        return int(checked), int(flagged), {str(code): int(n) for code, n in codes}

    def flagged(
        self, limit: int, counts: tuple[int, int] | None = None
    ) -> list[tuple[str, str, list[dict[str, Any]]]]:
        """(row id, job id, findings) of the first `limit` flagged done jobs, manifest order.
        Given `counts` (checked, flagged: `counts()`), where flagged videos are common enough
        that the first `limit` of them come within fewer done jobs than there are flagged ones,
        the done jobs are read in manifest order until they have; else every flagged check is
        read (by its index) and the first of them sorted out."""
        source = _CHECKED
        if counts is not None:
            checked, flagged = counts
            if flagged and limit * checked < flagged * flagged:
                source = _DONE_JOBS_FIRST
        rows = self._db.all(
            f"SELECT jobs.row_id, jobs.job_id, c.findings {source} WHERE {_OF_CURRENT} "
            f"AND {_DONE} AND c.findings != '[]' ORDER BY seq LIMIT ?",
            (limit,),
        )
        return [(str(row), str(job), json.loads(found)) for row, job, found in rows]

    def _with_checks(
        self, where: str, order: str, params: Sequence[Any] = ()
    ) -> Iterator[tuple[JobRecord, CheckRecord | None]]:
        cursor = self._db.rows(
            f"SELECT {JOB_COLUMNS}, c_probe, c_findings FROM jobs LEFT JOIN ("
            "SELECT job_id AS c_job, sha256 AS c_sha, probe AS c_probe, findings AS c_findings "
            f"FROM video_checks) AS c ON c_job = job_id AND c_sha = sha256 WHERE {where} "
            f"ORDER BY {order}",
            params,
        )
        for row in cursor:
            check = None if row[-2] is None else CheckRecord(row[-2], row[-1])
            yield job_record(row[:-2]), check
