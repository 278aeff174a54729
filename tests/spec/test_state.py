"""The state file: transitions, loading manifests again, retries, crash-safe commits."""

from __future__ import annotations

import re
import sqlite3
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchgen.errors import IllegalTransition, StateError
from batchgen.jobs import external_task_id, job_id_of_external, make_job
from batchgen.state.changes import Accepted, Advanced, Done, Failed, Recovered, Submitting
from batchgen.state.records import CURRENT, pricing_fields
from batchgen.state.store import Store
from batchgen.status import TRANSITIONS, JobStatus, can_move


def spec(n: int, prompt: str = "waves"):
    return make_job({"image": f"sha256:{n:064x}", "prompt": prompt}, f"row-{n}")


@pytest.fixture
def store(tmp_path, database):
    """A new state, on each database."""
    with Store.open(tmp_path / "run" / "state.sqlite", database) as s:
        yield s


def test_jobs_load_once_and_keep_their_state_when_loaded_again(store):
    """Loading the same manifest twice adds nothing and keeps each job's progress."""
    assert store.add_jobs([spec(1), spec(2)]) == (2, 0)
    store.apply(spec(1).job_id, Submitting("bg-x", 1.0))
    assert store.add_jobs([spec(2), spec(1)]) == (0, 2)
    assert store.get(spec(1).job_id).status == JobStatus.SUBMITTING


@pytest.mark.parametrize("batch", [1, 2, 5000])
def test_a_load_places_known_jobs_where_the_manifest_now_puts_them(store, batch):
    """Known jobs take the row id, order and metadata of the manifest as loaded again, in
    batches holding only new jobs, only known ones, or both; a first load places each job
    as given."""
    first = [spec(1), spec(2)]
    assert store.add_jobs(first, batch=batch) == (2, 0)
    assert [(j.row_id, j.seq) for j in store.with_status(JobStatus.PENDING)] == [
        ("row-1", 0),
        ("row-2", 1),
    ]
    renamed = make_job(spec(1).request, "renamed", metadata={"take": 2})
    again = [spec(3), spec(4), spec(2), renamed]
    assert store.add_jobs(again, batch=batch) == (2, 2)
    placed = [(j.row_id, j.seq, dict(j.metadata)) for j in store.with_status(JobStatus.PENDING)]
    assert placed == [
        ("row-3", 0, {}),
        ("row-4", 1, {}),
        ("row-2", 2, {}),
        ("renamed", 3, {"take": 2}),
    ]


def test_a_load_widens_the_state_files_page_cache_only_while_it_lasts(tmp_path):
    """Jobs are written with room for the job index in memory; the run that follows keeps
    SQLite's own small cache (a resume gains nothing from more, and would hold it)."""
    from batchgen.state.sqlite import LOADING_CACHE_KIB

    with Store.open(tmp_path / "state.sqlite") as store:
        cache = "PRAGMA cache_size"
        (before,) = store.db.one(cache)
        seen = []

        def specs():
            for n in range(3):
                seen.append(store.db.one(cache)[0])
                yield spec(n)

        store.add_jobs(specs())
        assert seen == [-LOADING_CACHE_KIB] * 3 and store.db.one(cache) == (before,)
        assert before > -LOADING_CACHE_KIB  # smaller (a negative size is in KiB)


def test_a_removed_row_that_was_never_sent_is_dropped(store):
    """Dropping an unsent row from the manifest removes its job; a sent one is kept."""
    store.add_jobs([spec(1), spec(2), spec(3)])
    store.apply(spec(2).job_id, Submitting("bg-x", 1.0))
    store.add_jobs([spec(1)])
    assert store.get(spec(3).job_id) is None
    kept = store.get(spec(2).job_id)
    assert kept is not None and kept.seq == -1 and kept.row_id.startswith("row-2~")
    assert sum(store.counts().values()) == 2


def test_a_failing_manifest_load_changes_nothing(store):
    """If validation fails half-way through loading, the state is as before."""
    store.add_jobs([spec(1)])

    def broken():
        yield spec(2)
        raise ValueError("row 3 is invalid")

    with pytest.raises(ValueError):
        store.add_jobs(broken())
    assert [j for j in store.job_ids()] == [spec(1).job_id]
    assert store.get(spec(1).job_id).seq == 0


def test_illegal_transitions_are_refused(store):
    """A pending job cannot jump to done: the transition table is enforced on every write."""
    store.add_jobs([spec(1)])
    with pytest.raises(IllegalTransition):
        store.apply(spec(1).job_id, Done("videos/x.mp4", "0" * 64, 1, 0.0))


def test_retry_gives_failed_jobs_a_new_external_id_and_repolls_timeouts(store):
    """`retry` resubmits failures under a new external id; timed-out tasks are polled again."""
    a, b = spec(1).job_id, spec(2).job_id
    store.add_jobs([spec(1), spec(2)])
    for job_id, task in ((a, "t1"), (b, "t2")):
        store.apply(job_id, Submitting(external_task_id(job_id), 0.0))
        store.apply(job_id, Accepted(task, JobStatus.RUNNING))
    store.apply(a, Failed("content policy", "generation_failed", 1.0))
    store.apply(b, Failed("too slow", "task_timeout", 1.0))
    assert store.reset_for_retry() == 2
    ra, rb = store.get(a), store.get(b)
    assert ra.status == JobStatus.PENDING and ra.generation == 1 and ra.task_id is None
    assert ra.current_external_id == external_task_id(a, 1) != external_task_id(a, 0)
    assert rb.status == JobStatus.RUNNING and rb.task_id == "t2"


def test_writes_are_committed_immediately(tmp_path):
    """Another connection sees a transition as soon as the method returns (nothing buffered)."""
    path = tmp_path / "state.sqlite"
    with Store.open(path) as store:
        store.add_jobs([spec(1)])
        store.apply(spec(1).job_id, Submitting("bg-x", 1.0))
        other = sqlite3.connect(path)
        row = other.execute("SELECT status, external_task_id FROM jobs").fetchone()
        other.close()
    assert row == ("submitting", "bg-x")


def test_the_write_ahead_records_of_a_group_are_committed_together(store):
    """Creates leaving together share one commit of their `submitting` records: all are
    there once it ends (and `sync` makes them survive a power cut), none if it fails."""
    store.add_jobs([spec(n) for n in range(4)])
    with store.durably(synced=False):
        for n in range(2):
            store.apply(spec(n).job_id, Submitting(f"bg-{n}", 1.0))
    store.sync()
    with pytest.raises(StateError), store.durably(synced=False):
        store.apply(spec(2).job_id, Submitting("bg-2", 1.0))
        store.apply("no-such-job", Submitting("bg-x", 1.0))
    assert [store.get(spec(n).job_id).status for n in range(3)] == [
        JobStatus.SUBMITTING,
        JobStatus.SUBMITTING,
        JobStatus.PENDING,
    ]


def test_the_queries_each_job_makes_do_not_grow_with_the_run(tmp_path):
    """What a run asks of the state for each job (its record, the job of a task, who holds a
    video path, each change) costs the same with 2,000 done jobs as with 20: a million-row
    run pays per job what a small one does (counted in SQLite's own steps, not in time)."""

    def steps_per_job(done: int) -> int:
        with Store.open(tmp_path / f"{done}.sqlite") as store:
            store.add_jobs([spec(n) for n in range(done + 1)])
            store.db.write(
                "UPDATE jobs SET status = 'done', output_path = 'videos/' || row_id || '.mp4', "
                "task_id = 'task-' || row_id WHERE row_id != 'row-0'"
            )
            job = spec(0).job_id
            counted = [0]
            store.db._conn.set_progress_handler(lambda: counted.__setitem__(0, counted[0] + 1), 100)
            store.apply(job, Submitting("bg-0", 1.0), JobStatus.PENDING)
            store.apply(job, Accepted("task-0", JobStatus.SUBMITTED, None))
            store.get(job)
            store.job_of_task("task-0")
            store.done_at_path("videos/row-0.mp4")
            store.db._conn.set_progress_handler(None, 0)
            return counted[0]

    small, large = steps_per_job(20), steps_per_job(2000)
    assert large <= small + 5, (small, large)


def test_state_file_uses_wal(tmp_path):
    """The state is in WAL mode so readers (status) never block the run."""
    with Store.open(tmp_path / "s.sqlite") as store:
        assert store.db.one("PRAGMA journal_mode") == ("wal",)


@given(st.sampled_from(list(JobStatus)), st.sampled_from(list(JobStatus)))
def test_transition_table_is_the_only_authority(old, new):
    """can_move agrees with the table for every pair of states."""
    assert can_move(old, new) == (old == new or new in TRANSITIONS[old])


@given(st.text(alphabet="0123456789abcdef", min_size=20, max_size=20), st.integers(0, 99))
def test_external_ids_round_trip(job_id, generation):
    """An external_task_id maps back to its job and generation (used by reconcile)."""
    assert job_id_of_external(external_task_id(job_id, generation)) == (job_id, generation)


def test_grouped_updates_reach_the_file_only_when_committed(tmp_path):
    """During a run progress is grouped; `submitting` and an accepted task id reach the file
    at once (a crash must never lose them), later updates at the next commit."""
    path = tmp_path / "state.sqlite"
    with Store.open(path) as store:
        job = spec(1).job_id
        store.add_jobs([spec(1)])
        store.db.group_commits()
        seen = sqlite3.connect(path)
        status = "SELECT status FROM jobs WHERE job_id = ?"
        store.apply(job, Submitting("bg-x", 1.0))
        assert seen.execute(status, (job,)).fetchone() == ("submitting",)
        store.apply(job, Accepted("task-1", JobStatus.SUBMITTED))
        assert seen.execute(status, (job,)).fetchone() == ("submitted",)
        store.apply(job, Advanced(JobStatus.RUNNING))
        assert seen.execute(status, (job,)).fetchone() == ("submitted",)
        store.db.end_grouping()
        assert seen.execute(status, (job,)).fetchone() == ("running",)
        seen.close()


PRICED = [
    {"model_name": "kling-v3", "mode": "pro", "duration": "8", "sound": "on"},
    {"model_name": "kling-v2-6", "mode": "pro", "duration": 10, "voice_list": [{"voice_id": "v"}]},
    {"model_name": "kling-v2-master", "duration": "5"},
    {},
]


def test_a_state_from_before_price_keys_is_priced_as_a_new_one(tmp_path):
    """A state made by an earlier batchgen (no price_key column) is migrated on open: its
    jobs group by the same pricing fields as jobs loaded now."""
    from batchgen.jobs import canonical_json
    from batchgen.state.migrations import MIGRATIONS

    specs = [make_job({"image": f"sha256:{n:064x}", **r}, f"r{n}") for n, r in enumerate(PRICED)]
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:
        for number, migration in enumerate(MIGRATIONS[:4], start=1):
            db.executescript(f"{migration.sql}; PRAGMA user_version = {number};")
        db.executemany(
            "INSERT INTO jobs (job_id, seq, row_id, request) VALUES (?, ?, ?, ?)",
            [(s.job_id, n, s.row_id, canonical_json(s.request)) for n, s in enumerate(specs)],
        )
    with Store.open(old) as migrated, Store.open(tmp_path / "new.sqlite") as new:
        new.add_jobs(specs)
        groups = sorted(map(repr, migrated.spending.priced_groups()))
        assert groups == sorted(map(repr, new.spending.priced_groups())) and len(groups) == 4
    assert "'voice_list': [{}]" in "".join(groups) and "'sound': 'on'" in "".join(groups)
    keys = "SELECT price_key FROM jobs ORDER BY job_id"
    with sqlite3.connect(old) as a, sqlite3.connect(tmp_path / "new.sqlite") as b:
        assert a.execute(keys).fetchall() == b.execute(keys).fetchall()


def test_price_keys_of_equal_but_different_values_stay_apart():
    """5, 5.0 and True are one key of a dict; their price keys are written as each is (the
    keys are remembered once written, by type and value)."""
    from batchgen.state.records import price_key

    for _ in range(2):
        written = [price_key({"model_name": "m", "duration": d}) for d in (5, 5.0, True, "5")]
        assert written == [f'["m",null,{d},null,0]' for d in ("5", "5.0", "true", '"5"')]
    assert price_key({"duration": [5], "voice_list": []}) == "[null,null,[5],null,1]"


def test_a_numbered_state_moves_forward_to_named_migrations_once(tmp_path):
    """A state made before migrations had names (PRAGMA user_version 5) opens with every
    migration recorded by name, the never-written api_calls column gone and its jobs kept;
    opening it again applies nothing."""
    from batchgen.state.migrations import MIGRATIONS, applied, migrate
    from batchgen.state.sqlite import SqliteDatabase

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        for number, migration in enumerate(MIGRATIONS[:5], start=1):
            db.executescript(f"{migration.sql}; PRAGMA user_version = {number};")
        db.execute("INSERT INTO jobs (job_id, seq, row_id, request) VALUES ('j', 0, 'r', '{}')")
    with Store.open(path) as store:
        assert [job.row_id for job in store.with_status(JobStatus.PENDING)] == ["r"]
    db = SqliteDatabase.open(path)
    assert applied(db) == [m.name for m in MIGRATIONS]
    columns = db.columns("jobs")
    assert "api_calls" not in columns and "price_key" in columns
    assert db.one("PRAGMA user_version") == (0,)
    assert migrate(db) == []
    db.close()


def test_only_a_task_taken_back_moves_a_pending_job_to_done(store):
    """A paid task the run folder names makes a pending job done at once; nothing else can."""
    store.add_jobs([spec(1), spec(2)])
    found = Recovered("42", "bg-x", 1.0, video="videos/x.mp4", sha256="0" * 64, size=3)
    old, job = store.apply(spec(1).job_id, found)
    assert (old, job.status, job.task_id, job.output_path) == (
        JobStatus.PENDING,
        JobStatus.DONE,
        "42",
        "videos/x.mp4",
    )
    _, followed = store.apply(spec(2).job_id, Recovered("43", "bg-y", 1.0))
    assert followed.status == JobStatus.SUBMITTED and followed.output_path is None
    with pytest.raises(IllegalTransition):
        store.apply(followed.job_id, Recovered("43", "bg-y", 1.0, video="v", sha256="0", size=1))


READ_ONLY = {  # the database then refuses writes as for a read-only file
    "sqlite": ("PRAGMA query_only = ON", "readonly"),
    "postgresql": ("SET default_transaction_read_only = on", "read-only transaction"),
}


@pytest.mark.parametrize("write", ["meta", "jobs", "change"])
def test_a_state_that_cannot_be_written_is_a_state_error_naming_it(store, write):
    """A write the database refuses (a read-only state) is a StateError naming the state, not
    a driver's traceback, and the state stays usable for reading."""
    store.add_jobs([spec(1)])
    statement, says = READ_ONLY[store.db.dialect]
    store.db.write(statement)
    actions = {
        "meta": lambda: store.set_meta("provider", "kling"),
        "jobs": lambda: store.add_jobs([spec(2)]),
        "change": lambda: store.apply(spec(1).job_id, Submitting("bg-x", 1.0)),
    }
    with pytest.raises(StateError, match=f"the state {re.escape(store.db.shown)}.*{says}"):
        actions[write]()
    assert [j for j in store.job_ids()] == [spec(1).job_id]


def test_every_migration_is_recorded_once_and_opening_again_applies_none(tmp_path, database):
    """On either database a new state has every migration, in order, and a second open (or a
    second migrate) applies nothing."""
    from batchgen.state.migrations import MIGRATIONS, applied, migrate

    path = tmp_path / "run" / "state.sqlite"
    Store.open(path, database).close()
    with Store.open(path, database) as again:
        assert applied(again.db) == [m.name for m in MIGRATIONS]
        assert migrate(again.db) == []
        assert "api_calls" not in again.db.columns("jobs")


def test_both_databases_read_the_same_rows_for_the_same_statements(tmp_path, postgres_url):
    """The same jobs, changes and look-ups give the same rows from SQLite and PostgreSQL,
    down to the type of each value, for the queries the reports make."""
    from batchgen.state.lookups import Sighting

    def filled(store):
        store.add_jobs([spec(n, prompt=p) for n, p in enumerate(["a", "b%", "c?", "d'"])])
        store.apply(spec(1, "b%").job_id, Submitting("bg-x", 1.5))
        store.lookups.record(spec(1, "b%").job_id, [Sighting(2.0, "path", "not found")])
        store.checks.record(spec(0, "a").job_id, "0" * 64, {"w": 1}, [{"code": "dark"}])
        store.db.write(
            "UPDATE jobs SET status = 'done', unit_deduction = '2.5', sha256 = ? WHERE seq = 0",
            ["0" * 64],
        )
        return [
            sorted(map(repr, store.spending.priced_groups())),
            store.spending.units_charged(),
            store.checks.counts(),
            [repr(j) for j in store.with_status(*JobStatus)],
            [s.as_json() for s in store.lookups.of(spec(1, "b%").job_id)],
            store.pending_rows_of_model("kling-v2-master", 10),
            store.resolve_job_ids(["row-2"]),
        ]

    with Store.open(tmp_path / "a" / "state.sqlite") as lite:
        expected = filled(lite)
    with Store.open(tmp_path / "a" / "state.sqlite", postgres_url) as pg:
        assert filled(pg) == expected


def test_postgres_reads_a_large_query_a_page_at_a_time_across_commits(tmp_path, postgres_url):
    """A query over every job (the index, the export, verify) comes from the server a page at a
    time, not whole into memory: read on while jobs change and commit, it gives every row of
    the moment it was asked; one stopped early leaves no cursor open on the server."""
    from batchgen.state import postgres

    jobs = [spec(n) for n in range(postgres.ROWS_AT_ONCE * 2 + 7)]
    with Store.open(tmp_path / "r" / "state.sqlite", postgres_url) as store:
        store.add_jobs(jobs)
        store.db.commit()
        read = []
        for n, job in enumerate(store.with_status(JobStatus.PENDING)):
            read.append(job.job_id)
            if n % 1000 == 0:  # a change, committed, between two pages
                store.apply(job.job_id, Submitting(f"bg-{n}", 1.0))
                store.db.commit()
        assert read == [j.job_id for j in jobs]
        cursors = "SELECT count(*) FROM pg_cursors"
        reading = store.with_status(JobStatus.PENDING, JobStatus.SUBMITTING)
        assert next(reading).job_id == jobs[0].job_id
        assert store.db.one(cursors) == (1,)
        del reading
        assert store.db.one(cursors) == (0,)


_COUNTED_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["check", "uncheck", "done", "undone", "video", "edited", "drop", "paid", "reopen"]
        ),
        st.integers(0, 3),  # which job
        st.sampled_from(["a" * 64, "b" * 64]),  # which video
        st.sampled_from(
            [[], [{"code": "frozen"}], [{"code": "dark"}, {"code": "frozen"}], [{"code": "dark"}]]
        ),
    ),
    max_size=40,
)


def counted_jobs(store: Store) -> tuple[dict[JobStatus, int], list[str]]:
    """The run's jobs by status and the state's priced groups, counted from the jobs."""
    counts = dict.fromkeys(JobStatus, 0)
    for status, n in store.db.all(f"SELECT status, count(*) FROM jobs WHERE {CURRENT} GROUP BY 1"):
        counts[JobStatus(status)] = int(n)
    units = store.db.number("unit_deduction")
    groups = store.db.all(
        f"SELECT status, price_key, count(*), coalesce(sum({units}), 0.0), "
        "count(unit_deduction) FROM jobs WHERE reused_from IS NULL GROUP BY 1, 2"
    )
    priced = [(s, pricing_fields(k), int(n), float(u), int(r)) for s, k, n, u, r in groups]
    return counts, sorted(map(repr, priced))


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_COUNTED_OPS)
def test_the_counts_kept_by_triggers_are_those_of_the_jobs_and_checks(tmp_path, database, ops):
    """Whatever statements change the checks and the jobs (a video checked, checked again,
    downloaded again with other bytes, its job done or not, paid or taken from another state,
    its row edited out of the manifest, the job gone), and across connections that end (on
    PostgreSQL each keeps its own rows of the counts, folded when a state is opened), the
    counts `status` reads without a join or a scan are those the join and the scan give."""
    place = tmp_path / uuid.uuid4().hex[:12] / "state.sqlite"
    store = Store.open(place, database)
    try:
        jobs = [spec(n) for n in range(4)]
        store.add_jobs(jobs)
        for op, n, sha, findings in ops:
            job = jobs[n].job_id
            if op == "check":
                store.checks.record(job, sha, {}, findings)
            elif op == "uncheck":
                store.db.write("DELETE FROM video_checks WHERE job_id = ?", (job,))
            elif op == "done":
                store.db.write(
                    "UPDATE jobs SET status = 'done', sha256 = ?, unit_deduction = ? "
                    "WHERE job_id = ?",
                    (sha, f"{len(findings) + 0.5} units", job),
                )
            elif op == "undone":
                store.db.write("UPDATE jobs SET status = 'downloading' WHERE job_id = ?", (job,))
            elif op == "video":
                store.db.write("UPDATE jobs SET sha256 = ? WHERE job_id = ?", (sha, job))
            elif op == "edited":
                store.db.write("UPDATE jobs SET seq = -1 - seq WHERE job_id = ?", (job,))
            elif op == "paid":
                store.db.write(
                    "UPDATE jobs SET reused_from = CASE WHEN reused_from IS NULL THEN 'other' "
                    "END WHERE job_id = ?",
                    (job,),
                )
            elif op == "reopen":
                store.close()
                store = Store.open(place, database)
            else:
                store.db.write("DELETE FROM jobs WHERE job_id = ?", (job,))
            assert store.checks.counts() == store.checks.counted()
            counts, priced = counted_jobs(store)
            assert store.counts() == counts
            assert sorted(map(repr, store.spending.priced_groups())) == priced
    finally:
        store.close()


def test_workers_keep_the_counts_on_postgresql_without_waiting_for_each_other(
    tmp_path, postgres_url
):
    """Two workers of one run change jobs at once: neither waits for the other's commit to
    count its change; the changes are recorded apart until a fold sums them (as a worker
    beats, or the state is opened), and the counts are the same before and after."""
    place = tmp_path / "run" / "state.sqlite"
    jobs = [spec(n) for n in range(2)]
    changes = "SELECT count(*) FROM job_count_changes"
    with Store.open(place, postgres_url) as first, Store.open(place, postgres_url) as second:
        first.add_jobs(jobs)
        assert first.db.one(changes) == (0,)  # (folded once loaded)
        second.db.write("SET lock_timeout = '2s'")
        move = "UPDATE jobs SET status = 'submitting' WHERE job_id = ?"
        with first.db.transaction():  # open, uncommitted, while the second worker writes
            first.db.write(move, (jobs[0].job_id,))
            with second.db.transaction():
                second.db.write(move, (jobs[1].job_id,))
        assert first.db.one(changes) == (4,)  # each job out of pending, into submitting
        assert first.counts()[JobStatus.SUBMITTING] == 2
    with Store.open(place, postgres_url) as reopened:
        assert reopened.db.one(changes) == (0,)
        assert reopened.counts()[JobStatus.SUBMITTING] == 2
        assert reopened.counts()[JobStatus.PENDING] == 0


def test_a_postgresql_state_made_before_kept_counts_counts_what_it_holds(tmp_path, postgres_url):
    """A state on PostgreSQL from before the counts were kept there (jobs done, checked and
    flagged, some paid elsewhere, a row edited out) counts, once opened by this version, what
    the jobs and checks themselves count."""
    from batchgen.state.migrations import MIGRATIONS
    from batchgen.state.postgres import PostgresDatabase, run_schema

    place = tmp_path / "run" / "state.sqlite"
    before = [m for m in MIGRATIONS if m.name != "kept_counts"]
    with Store(PostgresDatabase.open(postgres_url, run_schema("run"), migrations=before)) as old:
        jobs = [spec(n) for n in range(6)]
        old.add_jobs(jobs)
        for n, job in enumerate(jobs[:4]):
            old.db.write(
                "UPDATE jobs SET status = 'done', sha256 = ?, unit_deduction = '1.5' "
                "WHERE job_id = ?",
                (f"{n:064d}", job.job_id),
            )
            found = [{"code": "dark"}, {"code": "dark"}] if n % 2 else []
            old.checks.record(job.job_id, f"{n:064d}", {}, found)
        old.db.write("UPDATE jobs SET reused_from = 'other' WHERE job_id = ?", (jobs[4].job_id,))
        old.db.write("UPDATE jobs SET seq = -1 WHERE job_id = ?", (jobs[3].job_id,))
        old.db.commit()
    with Store.open(place, postgres_url) as store:
        assert store.checks.counts() == store.checks.counted() == (3, 1, {"dark": 2})
        counts, priced = counted_jobs(store)
        assert store.counts() == counts
        assert sorted(map(repr, store.spending.priced_groups())) == priced


def test_a_large_fold_on_postgresql_leaves_no_dead_changes_to_read_past(tmp_path, postgres_url):
    """Loading many jobs records a change for each, summed as the load ends: the rows the fold
    took out are vacuumed at once, so the counts read next do not step over them."""
    from batchgen.state import kept_counts

    with Store.open(tmp_path / "run" / "state.sqlite", postgres_url) as store:
        store.add_jobs(spec(n) for n in range(kept_counts.VACUUM_AFTER + 10))
        assert store.db.one("SELECT count(*) FROM job_count_changes") == (0,)
        assert store.db.one("SELECT pg_relation_size('job_count_changes')") == (0,)
        assert store.counts()[JobStatus.PENDING] == kept_counts.VACUUM_AFTER + 10


@pytest.mark.parametrize("every", [2, 97])
def test_the_first_flagged_videos_are_the_same_however_they_are_found(store, every):
    """Flagged videos common (read through the done jobs in order) or rare (read from the
    flagged checks): the same first ones, in manifest order."""
    jobs = [spec(n) for n in range(300)]
    store.add_jobs(jobs)
    for n, job in enumerate(jobs):
        sha = f"{n:064d}"
        store.db.write(
            "UPDATE jobs SET status = 'done', sha256 = ? WHERE job_id = ?", (sha, job.job_id)
        )
        found = [{"code": "dark", "message": "dark"}] if n % every == 1 else []
        store.checks.record(job.job_id, sha, {}, found)
    checked, flagged, _ = store.checks.counts()
    expected = [jobs[n].job_id for n in range(300) if n % every == 1][:5]
    assert [job for _, job, _ in store.checks.flagged(5)] == expected
    assert [job for _, job, _ in store.checks.flagged(5, (checked, flagged))] == expected


def test_the_jobs_a_worker_holds_are_read_from_their_index(tmp_path, database):
    """A heartbeat renews its worker's leases, and a start counts each live worker's jobs,
    through the index of held jobs, not by reading every job of the run (a second or more at
    a million jobs on PostgreSQL): the queries' words still match the index's condition."""
    from batchgen.state.claims import HELD

    queries = [
        f"UPDATE jobs SET lease_until = 1 WHERE owner = 'w' AND {HELD}",
        f"SELECT w.worker, (SELECT count(*) FROM jobs WHERE owner = w.worker AND {HELD}) "
        "FROM workers w",
    ]
    with Store.open(tmp_path / "state.sqlite", database) as store:
        store.add_jobs([spec(n) for n in range(50)])
        if database is None:
            plans = [
                " ".join(str(r[-1]) for r in store.db.all(f"EXPLAIN QUERY PLAN {q}"))
                for q in queries
            ]
        else:
            store.db.write("SET enable_seqscan = off")  # (a table this small is read whole)
            plans = [" ".join(str(r[0]) for r in store.db.all(f"EXPLAIN {q}")) for q in queries]
    assert all("jobs_held" in plan for plan in plans), plans


def test_a_worker_lets_go_of_a_job_as_it_finishes_it(store):
    """A worker holds a job while it works on it. The write that finishes it (done, failed,
    unknown) lets go of it: another worker may write it at once, and the first worker's
    heartbeat and leaving touch only the jobs still in its hands (leaving used to rewrite
    every job the worker ever finished: 2.5 s at 200,000 jobs on PostgreSQL)."""
    from batchgen.errors import LeaseLost
    from batchgen.state.changes import Unknown, VideoMoved
    from batchgen.state.claims import HELD, HOLDING, JobClaims

    assert {JobStatus(word) for word in re.findall(r"'(\w+)'", HELD)} == HOLDING
    ids = [spec(n).job_id for n in range(5)]
    store.add_jobs([spec(n) for n in range(5)])
    first = JobClaims(store.db, worker="first")
    first.join()
    store.claims = first
    assert len(first.claim_pending(first.clock(), 5)) == 5
    for job_id in ids[:4]:
        store.apply(job_id, Submitting(external_task_id(job_id), 1.0))
    store.apply(ids[0], Accepted("task-0", JobStatus.DOWNLOADING))
    store.apply(ids[0], Done("videos/row-0.mp4", "0" * 64, 1, 2.0))
    store.apply(ids[1], Failed("content policy", "generation_failed", 2.0))
    store.apply(ids[2], Unknown("no answer", 2.0))
    held = "SELECT job_id, owner, lease_until > 0 FROM jobs ORDER BY seq"
    assert store.db.all(held) == [
        (ids[0], None, False),
        (ids[1], None, False),
        (ids[2], None, False),
        (ids[3], "first", True),  # submitting
        (ids[4], "first", True),  # pending
    ]
    assert set(first.epochs) == {ids[3], ids[4]}

    second = JobClaims(store.db, worker="second")
    second.join()
    store.claims = second
    store.apply(ids[0], VideoMoved("videos/elsewhere.mp4"))  # at once, and let go again
    with pytest.raises(LeaseLost):
        store.apply(ids[3], Unknown("no answer", 3.0))
    assert store.db.one("SELECT owner, output_path FROM jobs WHERE job_id = ?", (ids[0],)) == (
        None,
        "videos/elsewhere.mp4",
    )
    first.leave()
    assert {row[0] for row in store.db.all("SELECT owner FROM jobs")} == {None}


def test_rows_are_inserted_where_their_key_is_new_and_set_where_it_is_held(store):
    """`merge_rows` (a COPY through a temporary table on PostgreSQL) inserts the rows whose
    key the table does not hold, one of two with one key, and says how many; in the
    rows it holds it sets the columns asked for, a value or NULL; each call merges its own
    rows only, in one transaction or across several, and after one that was rolled back."""
    db = store.db
    columns = ("name", "value", "note")
    db.write("CREATE TABLE pairs (name TEXT PRIMARY KEY, value TEXT, note TEXT)")
    db.commit()
    rows = [("a", "1", "x"), ("b", "2", "x"), ("a", "3", "x")]
    with db.transaction():
        assert db.merge_rows("pairs", columns, "name", rows) == 2
        assert db.merge_rows("pairs", columns, "name", [("b", "4", "y"), ("c", None, "y")]) == 1
        db.write("DELETE FROM pairs WHERE name = 'a'")
        assert db.merge_rows("pairs", columns, "name", [("d", "5", "y")]) == 1
    with pytest.raises(RuntimeError), db.transaction():
        db.merge_rows("pairs", columns, "name", [("e", "6", "y")])
        raise RuntimeError("rolled back")
    merged = [("f", "7", "z"), ("c", "8", "z"), ("b", None, "z"), ("d", "5", "z")]
    assert db.merge_rows("pairs", columns, "name", merged, update=("value",)) == 1
    assert db.merge_rows("pairs", columns, "name", []) == 0
    db.commit()
    assert db.all("SELECT name, value, note FROM pairs ORDER BY name") == [
        ("b", None, "x"),
        ("c", "8", "y"),
        ("d", "5", "y"),
        ("f", "7", "z"),
    ]


def test_the_lock_rows_are_the_manifests_jobs_sorted_by_job_id(store):
    """`lock_rows` (manifest.lock.json's jobs) reads the jobs in one pass and sorts them: the
    order is the job ids', on both databases, and jobs no longer in the manifest are left out."""
    store.add_jobs([spec(n) for n in range(60)])
    store.add_jobs([spec(n) for n in range(0, 60, 2)])  # the odd rows dropped from the manifest
    rows = list(store.lock_rows())
    ids = sorted(spec(n).job_id for n in range(0, 60, 2))
    assert [job_id for job_id, _, _ in rows] == ids
    assert {row_id for _, row_id, _ in rows} == {f"row-{n}" for n in range(0, 60, 2)}


def _note_job_writes(store) -> None:
    """A table `writes` that gets the id of each job every UPDATE of `jobs` writes."""
    db = store.db
    db.write("CREATE TABLE writes (job_id TEXT)")
    if db.dialect == "sqlite":
        db.write(
            "CREATE TRIGGER note_writes AFTER UPDATE ON jobs "
            "BEGIN INSERT INTO writes VALUES (new.job_id); END"
        )
    else:
        db.write(
            "CREATE FUNCTION note_write() RETURNS trigger LANGUAGE plpgsql AS "
            "$body$ BEGIN INSERT INTO writes VALUES (NEW.job_id); RETURN NULL; END $body$"
        )
        db.write(
            "CREATE TRIGGER note_writes AFTER UPDATE ON jobs FOR EACH ROW "
            "EXECUTE FUNCTION note_write()"
        )
    db.commit()


@pytest.mark.parametrize("batch", [2, 5000])
def test_a_load_writes_only_the_jobs_the_manifest_moved_changed_or_dropped(store, batch):
    """A manifest loaded again with a row added at its end, one renamed and one removed
    writes the new job, the renamed one and the removed one, and no other (a manifest grown
    by a few rows does not rewrite every job of the run); a row added at the start moves,
    and so writes, every job after it."""
    rows = [spec(n) for n in range(6)]
    store.add_jobs(rows, batch=batch)
    store.apply(rows[4].job_id, Submitting("bg-4", 1.0))  # (sent: kept, with seq -1)
    _note_job_writes(store)
    renamed = make_job(rows[2].request, "renamed")
    again = [rows[0], rows[1], renamed, rows[3], rows[5], spec(6)]
    assert store.add_jobs(again, batch=batch) == (1, 5)
    written = {job_id for (job_id,) in store.db.all("SELECT job_id FROM writes")}
    assert written == {rows[2].job_id, rows[4].job_id, rows[5].job_id}  # (5 moved up one)
    assert store.get(rows[4].job_id).seq == -1
    placed = [(j.row_id, j.seq) for j in store.with_status(JobStatus.PENDING)]
    assert placed == [("row-0", 0), ("row-1", 1), ("renamed", 2), ("row-3", 3), ("row-5", 4),
                      ("row-6", 5)]  # fmt: skip
    store.db.write("DELETE FROM writes")
    assert store.add_jobs([spec(7), *again], batch=batch) == (1, 6)
    written = {job_id for (job_id,) in store.db.all("SELECT job_id FROM writes")}
    assert written == {job.job_id for job in again}


def test_an_image_size_is_read_as_the_state_has_it_now(store):
    """Sizes of images named by their hash are kept once read (their bytes cannot change);
    an image not yet measured, or named by a URL (another picture may be served there), is
    read again."""
    hashed, url = "sha256:" + "ab" * 32, "https://example.com/a.png"
    store.inputs.record_images([(hashed, None, None, None), (url, 640, 480, url)])
    assert store.inputs.image_size(hashed) is None and store.inputs.image_size(url) == (640, 480)
    store.inputs.record_images([(hashed, 320, 200, None), (url, 800, 600, url)])
    assert store.inputs.image_size(hashed) == (320, 200)
    assert store.inputs.image_size(url) == (800, 600)
    assert store.inputs.image_size("sha256:" + "cd" * 32) is None


def test_unchecked_names_the_done_videos_without_a_check_of_their_current_bytes(store, tmp_path):
    """A check of the bytes a job had before (downloaded again since) does not count."""
    from tests.spec.test_export import PROBE, finish_job

    jobs = [spec(n) for n in range(4)]
    store.add_jobs(jobs)
    ids = [job.job_id for job in jobs]
    for n, job_id in enumerate(ids):
        finish_job(store, tmp_path, job_id, f"video {n}".encode(), [] if n < 2 else None)
    store.checks.record(ids[1], "0" * 64, PROBE, [])  # (another video's bytes)
    assert sorted(store.checks.unchecked(ids)) == sorted(ids[1:])
    assert store.checks.unchecked(ids[:1]) == [] and store.checks.unchecked([]) == []
