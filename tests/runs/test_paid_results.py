"""No paid video is ever overwritten or lost, and one state serves one run at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from batchgen.state import runlock
from batchgen.state.store import Store
from tests.conftest import read_index, run_cli, simulator, write_manifest


def edit_prompt(manifest: Path, row: str, prompt: str) -> None:
    doc = yaml.safe_load(manifest.read_text())
    for entry in doc["rows"]:
        if entry["id"] == row:
            entry["prompt"] = prompt
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_an_edited_row_keeps_its_earlier_paid_video(tmp_path, capsys, database):
    """Editing a row that keeps its id runs it again; the earlier video is kept, not replaced."""
    manifest = write_manifest(tmp_path, 3)
    out = tmp_path / "out"
    run_dir = out / "batch"
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        first = {e["row_id"]: e for e in read_index(run_dir)}["clip-001"]
        first_bytes = (run_dir / first["video"]).read_bytes()
        edit_prompt(manifest, "clip-001", "a new prompt for the same row")
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    latest = {e["row_id"]: e for e in read_index(run_dir)}["clip-001"]
    assert latest["job_id"] != first["job_id"]
    assert latest["video"] == "videos/clip-001.mp4"
    kept = run_dir / "videos" / f"{first['job_id']}.mp4"
    assert kept.read_bytes() == first_bytes
    sidecar = json.loads(kept.with_suffix(".json").read_text())
    assert (
        sidecar["job_id"] == first["job_id"]
        and sidecar["video"] == kept.relative_to(run_dir).as_posix()
    )
    assert run_cli("verify", run_dir) == 0
    assert "0 extra" in capsys.readouterr().out
    assert run_cli("report", run_dir, "--json") == 0
    assert json.loads(capsys.readouterr().out)["superseded_videos"] == 1


@pytest.mark.slow
def test_a_second_run_on_a_live_state_is_refused_at_once(tmp_path):
    """Two `run`s on one state: the second exits 2 naming the first's pid; the first finishes."""
    manifest = write_manifest(tmp_path, 6)
    out = tmp_path / "out"
    with simulator(latency=(1.0, 1.5), slots=2) as sim:
        env = {**os.environ, "COMETAPI_KEY": "sk-test"}
        command = [
            sys.executable,
            "-m",
            "batchgen",
            "run",
            str(manifest),
            "-o",
            str(out),
            "--base-url",
            sim.base_url,
            "--no-progress",
        ]
        with subprocess.Popen(command, env=env, stderr=subprocess.PIPE) as first:
            lock = out / "batch" / "state.sqlite.lock"
            deadline = time.monotonic() + 20
            while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
                time.sleep(0.05)
            second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            _, err = first.communicate(timeout=60)
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert first.returncode == 0, err.decode()
        accepted = sim.stats()["submissions_per_external_id"]
    assert len(accepted) == 6 and set(accepted.values()) == {1}
    with Store.open(out / "batch" / "state.sqlite") as store:
        assert store.integrity_ok()
    assert not list((out / "batch").rglob("*.part"))


def test_retry_and_reconcile_are_refused_while_a_run_holds_the_state(tmp_path):
    """Commands that change a state wait for no one: they refuse with exit 2 and say why."""
    manifest = write_manifest(tmp_path, 1)
    out = tmp_path / "out"
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    state = out / "batch" / "state.sqlite"
    with runlock.holding(state, "run"):
        assert run_cli("retry", manifest, "-o", out, "--failed") == 2
