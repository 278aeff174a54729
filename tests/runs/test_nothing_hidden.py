"""Nothing hidden: rows `--skip-invalid` leaves out are counted wherever a run is summed up, and
the run exits 1; an address the provider does not serve stops the run as a configuration
error (exit 3), nothing marked failed."""

from __future__ import annotations

import json

import yaml

from batchgen.state.store import Store
from batchgen.status import JobStatus
from tests.conftest import run_cli, simulator, write_manifest


def test_rows_left_out_by_skip_invalid_are_counted_everywhere(tmp_path, sim, capsys):
    """3 of 4 rows invalid (one a glob matching nothing): the run exits 1 and says 3 rows were
    left out; `status`, `status --json` and `report` count them too."""
    manifest = write_manifest(tmp_path, 2)
    doc = yaml.safe_load(manifest.read_text())
    doc["rows"][1]["image"] = "images/missing.jpg"
    doc["rows"].append({"id": "long", "image": doc["rows"][0]["image"], "prompt": "x" * 3000})
    doc["rows"].append({"images": "frames/*.png", "prompt": "nothing matches"})
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "out"
    assert run_cli("run", manifest, "-o", out, "--skip-invalid", base_url=sim.base_url) == 1
    said = capsys.readouterr().err
    assert "1 done, 0 failed, 0 unknown, 0 unfinished of 1 (3 invalid row(s) left out" in said
    assert "failures and their reasons" in said
    assert run_cli("status", manifest, "-o", out) == 0
    status = capsys.readouterr().out
    assert "invalid            3  row(s) left out by --skip-invalid" in status
    assert "invalid clip-001" in status
    assert run_cli("status", manifest, "-o", out, "--json") == 0
    skipped = json.loads(capsys.readouterr().out)["skipped_invalid"]
    assert skipped["total"] == 3
    assert {"clip-001", "long"} <= {row["row_id"] for row in skipped["rows"]}
    assert run_cli("report", manifest, "-o", out) == 0
    assert "3 invalid row(s) left out by --skip-invalid" in capsys.readouterr().out


def test_a_create_route_that_is_not_there_stops_the_run_with_nothing_failed(tmp_path, capsys):
    """Kling's own API behind a wrong --base-url answers every create 404/1202: the run stops
    at the first as a configuration error (exit 3), no job failed, the same command resumes."""
    manifest = write_manifest(tmp_path, 4)
    out = tmp_path / "out"
    with simulator(profile="kling") as sim:
        wrong = sim.base_url + "/api"
        code = run_cli("run", manifest, "-o", out, base_url=wrong, profile="kling")
        assert code == 3
        assert "the create path was not found" in capsys.readouterr().err
        assert sim.stats()["creates_accepted"] == 0
        with Store.open(out / "batch" / "state.sqlite") as store:
            counts = store.counts()
        assert counts[JobStatus.FAILED] == counts[JobStatus.UNKNOWN] == counts[JobStatus.DONE] == 0
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url, profile="kling") == 0


def test_what_a_run_suggests_next_keeps_its_base_url_and_report_says_which_money_is_the_bill(
    tmp_path, capsys
):
    """After a run on --base-url, `retry` names the next run with that --base-url; `report`
    tells the estimate from the bill, and counts API calls per job the run worked on."""
    manifest = write_manifest(tmp_path, 3)
    out = tmp_path / "out"
    with simulator(fail_rate=1.0) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 1
        capsys.readouterr()
        assert run_cli("retry", manifest, "-o", out, "--failed") == 0
        assert f"--base-url {sim.base_url}" in capsys.readouterr().out
    assert run_cli("report", manifest, "-o", out) == 0
    report = capsys.readouterr().out
    assert "estimate of the done jobs (not the bill)" in report
    assert "money (the bill so far)" in report and "per job it worked on" in report
    assert run_cli("report", manifest, "-o", out, "--json") == 0
    last = json.loads(capsys.readouterr().out)["last_run"]
    assert last["jobs_worked_on"] == 3
    assert last["api_calls_per_job"] == round(last["api_calls"] / 3, 3)
