"""The counts `status` reads, kept by triggers on PostgreSQL as they are on SQLite
(migrations.py's `status_counts` and `check_counts`), without making workers wait for each
other.

One shared row per count would be written by every worker's every change, and each would wait
for the others' commits. So each count is kept in rows per server process (`backend`, the
connection's `pg_backend_pid()`): a connection only ever adds to its own rows, which no other
open connection writes, and a count is the sum of its rows. Rows may go below zero (a job
counted in one connection's rows, moved on by another's); the sums are exact.

A process id is reused only after its connection has ended, so the rows of ended connections
are folded into `backend` 0 when a state is opened (`FOLD`, under a lock that lets one process
fold at a time): the rows stay about as many as the connections open at once.
"""

from __future__ import annotations

# The leading number of a text, as SQLite's CAST(x AS REAL) reads it ("2.5 units" is 2.5,
# "abc" and NULL are 0): what a job's `unit_deduction` counts for.
_LEADING = r"'^\s*([-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?)'"


def leading_number(expr: str) -> str:
    """PostgreSQL's words for the number `expr` (text) starts with, 0 when none."""
    return f"coalesce(substring({expr} from {_LEADING}), '0')::double precision"


def _job_delta(row: str, sign: str) -> str:
    """The statement adding `sign` 1 to the counts of the job `row` (OLD or NEW) is in."""
    return f"""INSERT INTO job_counts AS k VALUES ({row}.status, ({row}.seq >= 0)::int,
            coalesce({row}.price_key, ''), ({row}.reused_from IS NULL)::int, pg_backend_pid(),
            {sign}1, {sign}{leading_number(f"{row}.unit_deduction")},
            {sign}({row}.unit_deduction IS NOT NULL)::int)
        ON CONFLICT (status, listed, price_key, paid, backend) DO UPDATE SET
            jobs = k.jobs + excluded.jobs, units = k.units + excluded.units,
            reported = k.reported + excluded.reported"""


def _job_check_delta(op: str, row: str, sign: str) -> str:
    """Unless the trigger is for `op`: add `sign` 1 to the check counts of job `row`'s video
    when the job is done and listed and its video is checked."""
    return f"""IF TG_OP <> '{op}' AND {row}.status = 'done' AND {row}.seq >= 0 THEN
        SELECT findings INTO checked FROM video_checks
            WHERE job_id = {row}.job_id AND sha256 = {row}.sha256;
        IF FOUND THEN
            PERFORM check_counts_add(checked, {sign}1);
        END IF;
    END IF;"""


def _counted_check(row: str) -> str:
    return f"""EXISTS (SELECT 1 FROM jobs WHERE job_id = {row}.job_id
            AND sha256 = {row}.sha256 AND status = 'done' AND seq >= 0)"""


# The migration (migrations.py, `kept_counts`): the tables, filled from what the state holds,
# and the triggers. Written with SQLite's type names where migrations.py turns them into
# PostgreSQL's, lowercase where they must stay as they are.
MIGRATION = f"""
CREATE TABLE job_counts (
    status TEXT NOT NULL,
    listed INTEGER NOT NULL,
    price_key TEXT NOT NULL,
    paid INTEGER NOT NULL,
    backend INTEGER NOT NULL,
    jobs INTEGER NOT NULL,
    units REAL NOT NULL,
    reported INTEGER NOT NULL,
    PRIMARY KEY (status, listed, price_key, paid, backend)
);
INSERT INTO job_counts
    SELECT status, (seq >= 0)::int, coalesce(price_key, ''), (reused_from IS NULL)::int, 0,
        count(*), coalesce(sum({leading_number("unit_deduction")}), 0), count(unit_deduction)
    FROM jobs GROUP BY 1, 2, 3, 4;

CREATE FUNCTION job_counts_kept() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        {_job_delta("OLD", "-")};
    END IF;
    IF TG_OP <> 'DELETE' THEN
        {_job_delta("NEW", "")};
    END IF;
    RETURN NULL;
END
$body$;
CREATE TRIGGER job_counts_insert AFTER INSERT OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION job_counts_kept();
CREATE TRIGGER job_counts_update
    AFTER UPDATE OF status, seq, price_key, reused_from, unit_deduction ON jobs FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
        OR (OLD.seq >= 0) IS DISTINCT FROM (NEW.seq >= 0)
        OR OLD.price_key IS DISTINCT FROM NEW.price_key
        OR (OLD.reused_from IS NULL) IS DISTINCT FROM (NEW.reused_from IS NULL)
        OR OLD.unit_deduction IS DISTINCT FROM NEW.unit_deduction)
    EXECUTE FUNCTION job_counts_kept();

CREATE TABLE check_counts (
    kind TEXT NOT NULL,  -- 'checked', 'flagged', or 'code': a finding's code
    code TEXT NOT NULL,
    backend INTEGER NOT NULL,
    jobs INTEGER NOT NULL,
    PRIMARY KEY (kind, code, backend)
);
-- Adds `sign` 1 to the counts of a done job's check with these findings (a code as often as
-- the findings name it, as the count of the join does).
CREATE FUNCTION check_counts_add(checked text, sign bigint) RETURNS void LANGUAGE plpgsql
AS $body$
BEGIN
    INSERT INTO check_counts AS k (kind, code, backend, jobs)
        SELECT kind, code, pg_backend_pid(), sign * count(*) FROM (
            SELECT 'checked' AS kind, '' AS code
            UNION ALL SELECT 'flagged', '' WHERE checked <> '[]'
            UNION ALL SELECT 'code', coalesce(f.value ->> 'code', '')
                FROM jsonb_array_elements(
                    CASE WHEN checked <> '[]' THEN checked::jsonb ELSE '[]' END) AS f(value)
        ) AS found GROUP BY kind, code
    ON CONFLICT (kind, code, backend) DO UPDATE SET jobs = k.jobs + excluded.jobs;
END
$body$;
INSERT INTO check_counts
    SELECT kind, code, 0, sum(n) FROM (
        SELECT 'checked' AS kind, '' AS code, 1 AS n FROM video_checks c JOIN jobs j
            ON c.job_id = j.job_id AND c.sha256 = j.sha256 AND j.status = 'done' AND j.seq >= 0
        UNION ALL SELECT 'flagged', '', 1 FROM video_checks c JOIN jobs j
            ON c.job_id = j.job_id AND c.sha256 = j.sha256 AND j.status = 'done' AND j.seq >= 0
            WHERE c.findings <> '[]'
        UNION ALL SELECT 'code', coalesce(f.value ->> 'code', ''), 1 FROM video_checks c
            JOIN jobs j
            ON c.job_id = j.job_id AND c.sha256 = j.sha256 AND j.status = 'done' AND j.seq >= 0
            CROSS JOIN jsonb_array_elements(c.findings::jsonb) AS f(value)
            WHERE c.findings <> '[]'
    ) AS found GROUP BY kind, code;

CREATE FUNCTION check_counts_of_jobs() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    checked text;
BEGIN
    {_job_check_delta("INSERT", "OLD", "-")}
    {_job_check_delta("DELETE", "NEW", "")}
    RETURN NULL;
END
$body$;
CREATE TRIGGER check_counts_job_insert AFTER INSERT ON jobs FOR EACH ROW
    WHEN (NEW.status = 'done') EXECUTE FUNCTION check_counts_of_jobs();
CREATE TRIGGER check_counts_job_delete AFTER DELETE ON jobs FOR EACH ROW
    WHEN (OLD.status = 'done') EXECUTE FUNCTION check_counts_of_jobs();
CREATE TRIGGER check_counts_job_update AFTER UPDATE OF status, seq, sha256 ON jobs FOR EACH ROW
    WHEN ((OLD.status = 'done' OR NEW.status = 'done')
        AND (OLD.status IS DISTINCT FROM NEW.status
            OR (OLD.seq >= 0) IS DISTINCT FROM (NEW.seq >= 0)
            OR OLD.sha256 IS DISTINCT FROM NEW.sha256))
    EXECUTE FUNCTION check_counts_of_jobs();

CREATE FUNCTION check_counts_of_checks() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    IF TG_OP <> 'INSERT' AND {_counted_check("OLD")} THEN
        PERFORM check_counts_add(OLD.findings, -1);
    END IF;
    IF TG_OP <> 'DELETE' AND {_counted_check("NEW")} THEN
        PERFORM check_counts_add(NEW.findings, 1);
    END IF;
    RETURN NULL;
END
$body$;
CREATE TRIGGER check_counts_check_insert AFTER INSERT OR DELETE ON video_checks
    FOR EACH ROW EXECUTE FUNCTION check_counts_of_checks();
CREATE TRIGGER check_counts_check_update AFTER UPDATE OF sha256, findings, job_id
    ON video_checks FOR EACH ROW EXECUTE FUNCTION check_counts_of_checks();
"""

# The rows of connections that have ended, folded into backend 0 (then rows of nothing gone);
# one transaction, after `pg_try_advisory_xact_lock` said no other process is folding.
_ENDED = "backend <> 0 AND backend NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)"
FOLD = (
    f"""WITH gone AS (DELETE FROM job_counts WHERE {_ENDED} RETURNING *)
    INSERT INTO job_counts AS k
        SELECT status, listed, price_key, paid, 0, sum(jobs), sum(units), sum(reported)
        FROM gone GROUP BY 1, 2, 3, 4
    ON CONFLICT (status, listed, price_key, paid, backend) DO UPDATE SET
        jobs = k.jobs + excluded.jobs, units = k.units + excluded.units,
        reported = k.reported + excluded.reported""",
    "DELETE FROM job_counts WHERE backend = 0 AND jobs = 0 AND reported = 0",
    f"""WITH gone AS (DELETE FROM check_counts WHERE {_ENDED} RETURNING *)
    INSERT INTO check_counts AS k SELECT kind, code, 0, sum(jobs) FROM gone GROUP BY 1, 2
    ON CONFLICT (kind, code, backend) DO UPDATE SET jobs = k.jobs + excluded.jobs""",
    "DELETE FROM check_counts WHERE backend = 0 AND jobs = 0",
)
