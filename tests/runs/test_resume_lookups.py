"""What a resume asks before its first create, asked by name instead of job by job: the pending
jobs the run folder's files could name, and those the account ledger holds from other runs. A
resume of a large run used to read every pending job for both (about 20 s at 1,000,000 rows);
each answer here is checked against reading every pending job, on both databases."""

from __future__ import annotations

import random

import pytest

from batchgen.jobs import external_task_id, make_job
from batchgen.providers.account import account_of
from batchgen.providers.auth import BearerKey
from batchgen.runner import sharing
from batchgen.runner.sharing import SharedAccount
from batchgen.state.changes import Submitting, Unknown
from batchgen.state.ledger import Ledger, Send
from batchgen.state.store import Store
from batchgen.status import JobStatus

ROWS = 60


def specs(rows: int, edited: frozenset[int] = frozenset()) -> list:
    """One job a row; a row in `edited` asks for another prompt (a new job of the same row)."""
    return [
        make_job({"image": f"{i}.png", "prompt": f"p{i}{'!' if i in edited else ''}"}, f"r{i}")
        for i in range(rows)
    ]


def filled_store(tmp_path, database: str | None) -> Store:
    """A state of ROWS jobs: rows 0-4 edited since (their old jobs out of the manifest), row 5
    done, row 6 unknown then sent again under a recorded external id of its own."""
    store = Store.open(tmp_path / "state.sqlite", database)
    store.add_jobs(specs(ROWS))
    store.add_jobs(specs(ROWS, edited=frozenset(range(5))))
    jobs = {job.row_id: job for job in store.with_status(JobStatus.PENDING)}
    store.db.write("UPDATE jobs SET status = 'done' WHERE job_id = ?", (jobs["r5"].job_id,))
    store.apply(jobs["r6"].job_id, Submitting("custom-r6", 1.0))
    store.apply(jobs["r6"].job_id, Unknown("no answer", 2.0))
    assert store.reset_unknown() == 1
    return store


def read_each(store: Store, names: set[str]) -> list[str]:
    """What the resume did before: every pending job read, its ids compared here."""
    pending = store.with_status(JobStatus.PENDING)
    return [job.job_id for job in pending if job.row_id in names or job.job_id in names]


def test_pending_jobs_are_found_by_the_row_or_job_id_a_file_names(tmp_path, database):
    store = filled_store(tmp_path, database)
    everyone = list(store.db.rows("SELECT job_id, row_id FROM jobs"))
    chooser = random.Random(7)
    with store:
        for _ in range(20):
            picked = chooser.sample(everyone, 12)
            names = {chooser.choice(pair) for pair in picked} | {"r999", "not-a-job"}
            found = [job.job_id for job in store.pending_named(names)]
            assert found == read_each(store, names)
        # the edited rows' old jobs, the done row: no pending job of the manifest
        old = {job_id for job_id, row_id in everyone if row_id in {"r0", "r1"}}
        assert [job.row_id for job in store.pending_named(old | {"r5"})] == ["r0", "r1"]
        assert store.pending_named(set()) == []


@pytest.mark.parametrize("asked_each", [0, sharing.ASKED_EACH])
def test_jobs_other_runs_sent_are_counted_alike_however_many_the_ledger_holds(
    tmp_path, database, monkeypatch, asked_each
):
    """Each pending job's id asked of the ledger (up to ASKED_EACH pending jobs), or the
    ledger's sends of other states read and asked of the state while they are fewer than the
    pending jobs: the same count, a recorded external id included, this state's own sends and
    other jobs' left out."""
    monkeypatch.setattr(sharing, "ASKED_EACH", asked_each)
    store = filled_store(tmp_path, database)
    pending = {job.row_id: job for job in store.with_status(JobStatus.PENDING)}
    account = account_of("cometapi", "http://127.0.0.1:1", BearerKey("sk-test"))
    sent_by_others = [
        external_task_id(pending["r10"].job_id),
        external_task_id(pending["r11"].job_id),
        external_task_id(pending["r12"].job_id, 1),  # a later generation: not this one's
        "custom-r6",
    ]
    with Ledger.open(tmp_path / "ledger.sqlite") as ledger, store:
        ledger.note_account(account.fingerprint, "cometapi", "http://127.0.0.1:1")
        shared = SharedAccount(ledger, account, "this-state", 4, lease_seconds=60)

        def send(external_id: str, state_id: str) -> None:
            sent = Send(external_id, state_id, "j", "accepted", None, 1.0, None, None, None)
            ledger.record_sends(account.fingerprint, state_id, [sent])

        for ext in sent_by_others:
            send(ext, "another-state")
        send(external_task_id(pending["r20"].job_id), "this-state")
        expected = 3  # r10, r11 and r6's recorded id
        assert shared.held_elsewhere(store) == expected
        for i in range(ROWS + 5):  # more than the pending jobs: asked the other way
            send(f"bg-{i:020x}", "a-third-state")
        assert shared.held_elsewhere(store) == expected
        asked_of_the_ledger = ledger.held_elsewhere(
            account.fingerprint, "this-state", store.pending_external_ids()
        )
        assert asked_of_the_ledger == expected
