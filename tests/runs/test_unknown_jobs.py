"""Jobs whose create may have been accepted: what their look-ups answered is shown wherever
they are, a relay that answers look-ups gets every such job adopted, and a resend happens only
when the user allows it."""

from __future__ import annotations

import json

import pytest

from batchgen.status import JobStatus
from tests.conftest import read_index, run_cli, simulator, write_manifest
from tests.runs.test_resilience import (
    assert_one_paid_video_per_job,
    create_directly,
    leave_submitting,
    state_of,
)


def test_an_unknown_job_shows_what_each_look_up_answered(tmp_path, capsys, database):
    """A lost create no look-up finds: `status`, `status --json`, failed.jsonl and
    `retry --unknown` each show when it was looked up, in which form and what came back."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    leave_submitting(manifest, out)
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 1
        assert sim.stats()["creates_received"] == 1  # the other row; the lost one not resent
    capsys.readouterr()
    assert run_cli("status", manifest, "-o", out) == 0
    text = capsys.readouterr().out
    assert "looked up" in text and "path: not found" in text and "query:" in text
    assert run_cli("status", manifest, "-o", out, "--json") == 0
    (unknown,) = json.loads(capsys.readouterr().out)["unknown"]
    assert {s["form"] for s in unknown["lookups"]} == {"path", "query"}
    (line,) = (out / "batch" / "failed.jsonl").read_text().splitlines()
    assert json.loads(line)["lookups"] == unknown["lookups"]
    assert run_cli("retry", manifest, "-o", out, "--unknown", "--yes") == 0
    err = capsys.readouterr().err
    assert "may pay twice" in err and "what its look-ups answered" in err and "path:" in err


def test_a_relay_answering_look_ups_recovers_every_create_answered_with_a_web_page(tmp_path):
    """Every create answered with an HTML page or a cut-off body after its task was made, on
    a relay that answers look-ups in the path: every row ends with its video, none paid twice,
    none left to the user."""
    rows = 6
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"
    with simulator(malformed_answer_rate=1.0, lookup_form="path") as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        stats = sim.stats()
    assert stats["faults"]["malformed_answer"] == rows
    assert_one_paid_video_per_job(out / "batch", rows, stats)


def test_resend_unfound_sends_again_only_after_the_time_the_user_gave(tmp_path, capsys):
    """With --resend-unfound 1s, a lost create that no look-up finds is sent again once that
    second has passed, in the same run, saying it may be paid twice."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    leave_submitting(manifest, out)
    with simulator() as sim:
        args = ("run", manifest, "-o", out, "--resend-unfound", "1s")
        assert run_cli(*args, base_url=sim.base_url) == 0
        stats = sim.stats()
    assert "may be paid twice" in capsys.readouterr().err
    assert stats["creates_received"] == 2 and len(read_index(out / "batch")) == 2
    with state_of(out / "batch") as store:
        assert store.counts()[JobStatus.DONE] == 2


@pytest.mark.parametrize("generation", [0.1, 0.3, 0.6])
def test_a_resend_that_falls_due_as_the_last_other_job_ends_is_sent_in_that_run(
    tmp_path, generation
):
    """With --resend-unfound, the sweep that finds a lost create due a resend may still be
    looking it up (slow answers) when the run's only other job ends: the feed waits for the
    sweep, and the job is sent again in that run, not left pending. (The feed used to end as
    the sweep began, the job sent again after it: each of these runs ended with it pending.)"""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    leave_submitting(manifest, out)
    with simulator(latency=(generation, generation), response_delay=0.5) as sim:
        args = ("run", manifest, "-o", out, "--resend-unfound", "1s")
        assert run_cli(*args, base_url=sim.base_url) == 0
        assert sim.stats()["creates_received"] == 2
    assert len(read_index(out / "batch")) == 2


def test_a_refused_resend_is_looked_up_not_failed(tmp_path):
    """A job sent again by `retry --unknown` whose resend the provider refuses for a reason
    the client cannot read stays unknown (its first task may be paid for), never `failed`."""
    manifest = write_manifest(tmp_path, 1)
    out = tmp_path / "out"
    ext = leave_submitting(manifest, out)
    hidden = {"lookup_form": "none", "lists_tasks": False}
    refusing = {"refuses_reused_ids": True, "reused_id_message": "request denied"}
    args = ("run", manifest, "-o", out)
    with simulator(profile="kling", **hidden, **refusing) as sim:
        create_directly(sim, ext, tmp_path / "images" / "img0.jpg", "kling")
        assert run_cli(*args, base_url=sim.base_url, profile="kling") == 1
        assert run_cli("retry", manifest, "-o", out, "--unknown", "--yes") == 0
        assert run_cli(*args, base_url=sim.base_url, profile="kling") == 1
        stats = sim.stats()
    assert stats["creates_accepted"] == 1 and stats["duplicate_external_id_refusals"] == 1
    with state_of(out / "batch") as store:
        (job,) = store.unknown_in_job_order()
    assert "refused the resend" in (job.last_error or "") and "request denied" in job.last_error
