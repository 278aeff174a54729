"""The counts `status` reads, kept by triggers on PostgreSQL as they are on SQLite
(migrations.py's `status_counts` and `check_counts`), without making workers wait for each
other.

One shared row per count would be written by every worker's every change, and each would wait
for the others' commits; and a row changed again and again in one transaction (a million jobs
loaded, or moved, by one statement) leaves a version per change that the next change must step
over. So the triggers only append: each change of a job or a check adds a row of what it
changes to `*_count_changes`, which no other writer touches (jobs removed in bulk, a row per
group of the statement's jobs).
`FOLD` sums those rows into the `*_counts_folded` tables, which only a fold writes, one process
at a time; `job_counts` and `check_counts` are views of both, so a count is the sum of its
rows, as on SQLite. The state is folded as it is opened, after a manifest is loaded, and with
each heartbeat of a worker (`PostgresDatabase.fold_counts`): the changes to sum stay a few
seconds' worth.
"""

from __future__ import annotations

# The leading number of a text, as SQLite's CAST(x AS REAL) reads it ("2.5 units" is 2.5,
# "abc" and NULL are 0): what a job's `unit_deduction` counts for.
_LEADING = r"'^\s*([-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?)'"


def leading_number(expr: str) -> str:
    """PostgreSQL's words for the number `expr` (text) starts with, 0 when none."""
    return f"coalesce(substring({expr} from {_LEADING}), '0')::double precision"


def _job_change(row: str, sign: str) -> str:
    """The statement recording that the job `row` (OLD or NEW) counts `sign` 1 more."""
    return f"""INSERT INTO job_count_changes VALUES ({row}.status, ({row}.seq >= 0)::int,
            coalesce({row}.price_key, ''), ({row}.reused_from IS NULL)::int,
            {sign}1, {sign}{leading_number(f"{row}.unit_deduction")},
            {sign}({row}.unit_deduction IS NOT NULL)::int)"""


def _jobs_change(rows: str, sign: str) -> str:
    """The statement recording that the jobs of `rows` (a table, or a trigger's transition
    table) count `sign` 1 more each, one row per group."""
    return f"""INSERT INTO job_count_changes
        SELECT status, (seq >= 0)::int, coalesce(price_key, ''), (reused_from IS NULL)::int,
            {sign}count(*), {sign}coalesce(sum({leading_number("unit_deduction")}), 0),
            {sign}count(unit_deduction)
        FROM {rows} GROUP BY 1, 2, 3, 4"""


def _job_check_change(op: str, row: str, sign: str) -> str:
    """Unless the trigger is for `op`: record `sign` 1 for the check of job `row`'s video,
    when the job is done and listed and its video is checked."""
    return f"""IF TG_OP <> '{op}' AND {row}.status = 'done' AND {row}.seq >= 0 THEN
        SELECT findings INTO checked FROM video_checks
            WHERE job_id = {row}.job_id AND sha256 = {row}.sha256;
        IF FOUND THEN
            PERFORM check_counts_add(checked, {sign}1);
        END IF;
    END IF;"""


def _check_change(op: str, row: str, sign: str) -> str:
    """Unless the trigger is for `op`: record `sign` 1 for the check `row` (OLD or NEW), when
    its job is done and listed and holds the video checked. (The job found by its key alone:
    after a bulk change the planner may think few jobs done, and look among those instead.)"""
    return f"""IF TG_OP <> '{op}' THEN
        SELECT status = 'done' AND seq >= 0 AND sha256 = {row}.sha256 INTO counted
            FROM jobs WHERE job_id = {row}.job_id;
        IF counted THEN
            PERFORM check_counts_add({row}.findings, {sign}1);
        END IF;
    END IF;"""


_JOB_COLUMNS = """
    status TEXT NOT NULL,
    listed INTEGER NOT NULL,
    price_key TEXT NOT NULL,
    paid INTEGER NOT NULL,
    jobs INTEGER NOT NULL,
    units REAL NOT NULL,
    reported INTEGER NOT NULL"""
_CHECK_COLUMNS = """
    kind TEXT NOT NULL,  -- 'checked', 'flagged', or 'code': a finding's code
    code TEXT NOT NULL,
    jobs INTEGER NOT NULL"""

# The migration (migrations.py, `kept_counts`): the tables and views, the changes of what the
# state holds already (folded as it is opened), and the triggers. Written with SQLite's type
# names where migrations.py turns them into PostgreSQL's, lowercase where they must stay so.
MIGRATION = f"""
CREATE TABLE job_counts_folded ({_JOB_COLUMNS},
    PRIMARY KEY (status, listed, price_key, paid)
);
CREATE TABLE job_count_changes ({_JOB_COLUMNS}
);
CREATE VIEW job_counts AS
    SELECT * FROM job_counts_folded UNION ALL SELECT * FROM job_count_changes;
{_jobs_change("jobs", "")};  -- the jobs the state holds, summed by the first fold

CREATE FUNCTION job_counts_kept() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        {_job_change("OLD", "-")};
    END IF;
    {_job_change("NEW", "")};
    RETURN NULL;
END
$body$;
-- Jobs removed in bulk (rows dropped from a manifest): one change per group of the
-- statement's rows, as a transition table gives them, not one per row. (Jobs are added one
-- statement each, a pipeline of them: a trigger for each row is the cheaper there.)
CREATE FUNCTION job_counts_removed() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    {_jobs_change("removed", "-")};
    RETURN NULL;
END
$body$;
CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION job_counts_kept();
CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION job_counts_removed();
CREATE TRIGGER job_counts_update
    AFTER UPDATE OF status, seq, price_key, reused_from, unit_deduction ON jobs FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
        OR (OLD.seq >= 0) IS DISTINCT FROM (NEW.seq >= 0)
        OR OLD.price_key IS DISTINCT FROM NEW.price_key
        OR (OLD.reused_from IS NULL) IS DISTINCT FROM (NEW.reused_from IS NULL)
        OR OLD.unit_deduction IS DISTINCT FROM NEW.unit_deduction)
    EXECUTE FUNCTION job_counts_kept();

CREATE TABLE check_counts_folded ({_CHECK_COLUMNS},
    PRIMARY KEY (kind, code)
);
CREATE TABLE check_count_changes ({_CHECK_COLUMNS}
);
CREATE VIEW check_counts AS
    SELECT * FROM check_counts_folded UNION ALL SELECT * FROM check_count_changes;
-- Records `sign` 1 for a done job's check with these findings (a code as often as the
-- findings name it, as the count of the join does).
CREATE FUNCTION check_counts_add(checked text, sign bigint) RETURNS void LANGUAGE plpgsql
AS $body$
BEGIN
    INSERT INTO check_count_changes
        SELECT 'checked', '', sign
        UNION ALL SELECT 'flagged', '', sign WHERE checked <> '[]'
        UNION ALL SELECT 'code', coalesce(f.value ->> 'code', ''), sign
            FROM jsonb_array_elements(
                CASE WHEN checked <> '[]' THEN checked::jsonb ELSE '[]' END) AS f(value);
END
$body$;
SELECT check_counts_add(c.findings, 1) FROM video_checks c  -- the checks the state holds
    JOIN jobs j ON c.job_id = j.job_id AND c.sha256 = j.sha256 AND j.status = 'done'
        AND j.seq >= 0;
CREATE FUNCTION check_counts_of_jobs() RETURNS trigger LANGUAGE plpgsql AS $body$
DECLARE
    checked text;
BEGIN
    {_job_check_change("INSERT", "OLD", "-")}
    {_job_check_change("DELETE", "NEW", "")}
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
DECLARE
    counted boolean;
BEGIN
    {_check_change("INSERT", "OLD", "-")}
    {_check_change("DELETE", "NEW", "")}
    RETURN NULL;
END
$body$;
CREATE TRIGGER check_counts_check_insert AFTER INSERT OR DELETE ON video_checks
    FOR EACH ROW EXECUTE FUNCTION check_counts_of_checks();
CREATE TRIGGER check_counts_check_update AFTER UPDATE OF sha256, findings, job_id
    ON video_checks FOR EACH ROW EXECUTE FUNCTION check_counts_of_checks();
"""

# The changes recorded so far summed into the folded counts (those a concurrent transaction
# has not committed yet stay for the next fold), each statement giving how many it folded;
# then the counts of nothing taken out. One transaction, once `pg_try_advisory_xact_lock` said
# no other process is folding.
FOLD = (
    """WITH folded AS (DELETE FROM job_count_changes RETURNING *), summed AS (
        INSERT INTO job_counts_folded AS k
            SELECT status, listed, price_key, paid, sum(jobs), sum(units), sum(reported)
            FROM folded GROUP BY 1, 2, 3, 4
        ON CONFLICT (status, listed, price_key, paid) DO UPDATE SET
            jobs = k.jobs + excluded.jobs, units = k.units + excluded.units,
            reported = k.reported + excluded.reported)
    SELECT count(*) FROM folded""",
    """WITH folded AS (DELETE FROM check_count_changes RETURNING *), summed AS (
        INSERT INTO check_counts_folded AS k
            SELECT kind, code, sum(jobs) FROM folded GROUP BY 1, 2
        ON CONFLICT (kind, code) DO UPDATE SET jobs = k.jobs + excluded.jobs)
    SELECT count(*) FROM folded""",
)
EMPTIED = (
    "DELETE FROM job_counts_folded WHERE jobs = 0 AND reported = 0",
    "DELETE FROM check_counts_folded WHERE jobs = 0",
)
# A fold of more changes than this leaves as many dead rows for every read of the counts to
# step over until autovacuum comes by (a minute or more): it vacuums the changes at once.
VACUUM_AFTER = 10_000
VACUUM = "VACUUM job_count_changes, check_count_changes"
