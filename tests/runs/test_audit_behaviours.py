"""Runs against the provider behaviours the 2026-12 audit found (kling-api.md §18.2): wrapped
and null-laden answers, a relay failing tasks for lack of slots, a refused model, moderation."""

from __future__ import annotations

import json

import pytest
import yaml

from batchgen.status import JobStatus
from tests.conftest import read_index, run_cli, simulator, write_manifest
from tests.runs.test_resilience import assert_one_paid_video_per_job, state_of


@pytest.mark.parametrize("shape", ["wrapped_answers", "null_fields"])
def test_wrapped_or_null_laden_answers_still_end_with_every_video(tmp_path, shape):
    """A relay answering queries in new-api's wrapper (E40), or with nulls (E38): every row
    ends with its video, paid once."""
    rows = 5
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"
    with simulator(**{shape: True}) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        stats = sim.stats()
    assert_one_paid_video_per_job(out / "batch", rows, stats)


def test_tasks_failed_for_lack_of_slots_are_throttling_and_wait_for_the_user(tmp_path, capsys):
    """A relay that accepts creates beyond its slots and fails them ("parallel task over
    resource pack limit"): those jobs fail saying so, nothing sends them again on its own
    (whether they were billed is not documented), and `retry --failed` then finishes them."""
    rows = 6
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"
    with simulator(slots=2, slots_as_failed_task=True, latency=(0.4, 0.6)) as sim:
        first = run_cli("run", manifest, "-o", out, "-c", "6", base_url=sim.base_url)
        accepted = sim.stats()["creates_accepted"]
        with state_of(out / "batch") as store:
            failed = list(store.failed_in_job_order())
        assert first == 1 and failed and accepted == rows
        assert {job.error_kind for job in failed} == {"throttled_task"}
        assert "not sent again on its own" in (failed[0].last_error or "")
        assert run_cli("retry", manifest, "-o", out, "--failed") == 0
        args = ("run", manifest, "-o", out, "-c", "2")
        assert run_cli(*args, base_url=sim.base_url) == 0
    assert len(read_index(out / "batch")) == rows


def test_a_model_the_provider_refuses_stops_every_job_of_it_with_one_message(tmp_path, capsys):
    """The provider answers "model is not supported" for one model: its jobs are not sent one
    by one; one notice names the model and the rows; the other model's jobs finish."""
    images = write_manifest(tmp_path, 1)  # makes images/
    rows = [
        {"id": f"v3-{i}", "image": "images/img0.jpg", "prompt": f"p{i}", "model_name": "kling-v3"}
        for i in range(5)
    ] + [{"id": "old", "image": "images/img1.png", "prompt": "p", "model_name": "kling-v2-master"}]
    manifest = tmp_path / "models.yaml"
    manifest.write_text(yaml.safe_dump({"defaults": {"duration": "5"}, "rows": rows}))
    del images
    out = tmp_path / "out"
    with simulator(refused_models=("kling-v3",)) as sim:
        code = run_cli("run", manifest, "-o", out, "-c", "1", base_url=sim.base_url)
        stats = sim.stats()
    err = capsys.readouterr().err
    assert code == 1 and stats["invalid_creates"] == 1 and stats["creates_accepted"] == 1
    assert err.count("refuses model kling-v3") == 1 and "v3-1" in err
    with state_of(out / "models") as store:
        kinds = {job.row_id: job.error_kind for job in store.failed_in_job_order()}
    assert kinds == {f"v3-{i}": "model_refused" for i in range(5)}


@pytest.mark.parametrize(("retries", "creates"), [(0, 1), (2, 3)])
def test_moderation_is_final_unless_the_user_asks_for_retries(tmp_path, retries, creates):
    """A prompt moderation always refuses: one create by default (terminal), 1 + N with
    --retry-moderation N, each a new generation; the job ends failed for moderation."""
    manifest = write_manifest(tmp_path, 1)
    out = tmp_path / "out"
    flags = ("--retry-moderation", str(retries))
    with simulator(fail_rate=1.0, fail_mode="prompt") as sim:
        code = run_cli("run", manifest, "-o", out, *flags, base_url=sim.base_url)
        stats = sim.stats()
    assert code == 1 and stats["creates_accepted"] == creates
    with state_of(out / "batch") as store:
        (job,) = store.failed_in_job_order()
    assert job.error_kind == "moderation" and job.moderation_retries == retries
    entry = json.loads((out / "batch" / "failed.jsonl").read_text().splitlines()[0])
    assert "risk control" in entry["error"]
    assert JobStatus(entry["status"]) == JobStatus.FAILED


def test_the_report_shows_the_cash_tasks_said_they_cost(tmp_path, capsys):
    """Tasks reporting their cost in cash (billing[]): `report` sums it per currency beside
    the units and apart from the estimate."""
    manifest = write_manifest(tmp_path, 3)
    out = tmp_path / "out"
    with simulator(reports_cash=True) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    capsys.readouterr()
    assert run_cli("report", out / "batch", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    units = report["units_charged"]
    assert report["cash_reported"] == {"USD": pytest.approx(units * 0.14, abs=1e-3)} and units
    assert run_cli("report", out / "batch") == 0
    assert "cash charged, as the provider reported it" in capsys.readouterr().out
