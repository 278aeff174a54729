"""The soaks: twenty kill -9s over one run, with 5xx, full slots and lost create answers. Not a
row is paid twice, no process dies in a traceback, and every row ends with its verified video:
on Kling's own API by itself, on CometAPI once its unknown jobs are resolved as a user would.
And kills with the state deleted between them: no paid video is ever lost."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import time
from pathlib import Path

import pytest
import yaml

from batchgen.state.store import Store
from tests.conftest import PROFILES, read_index, resolve_unknown, run_cli, simulator, write_manifest
from tests.runs.test_lost_state import lose_state
from tests.runs.test_resilience import finish, spawn_run

ROWS, KILLS = 60, 20
FAULTS = {"error_rate": 0.05, "reset_after_accept_rate": 0.05, "gateway_timeout_rate": 0.03}


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_twenty_kills_pay_nothing_twice_and_lose_no_video(tmp_path, profile):
    """Kill -9 twenty times at seeded moments, then finish: one payment and one video a row;
    on Kling's own API every task that exists is found in its task list (none adopted by
    hand: the unknown jobs left are creates a kill stopped before they left)."""
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    run_dir = out / "batch"
    rng = random.Random(20261125)
    unknown_total = 0
    by_hand: list[str] = []
    with simulator(latency=(0.5, 1.5), slots=4, profile=profile, **FAULTS) as sim:
        for _ in range(KILLS):
            proc = spawn_run(manifest, out, sim.base_url, "-c", "6", profile=profile)
            time.sleep(rng.uniform(0.5, 1.2))
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=10)
            assert b"Traceback" not in err, err.decode()
            unknown_total += resolve_unknown(sim, manifest, out, profile, by_hand)
        for _ in range(10):
            code = run_cli("run", manifest, "-o", out, base_url=sim.base_url, profile=profile)
            found = resolve_unknown(sim, manifest, out, profile, by_hand)
            unknown_total += found
            if not found:
                break
        stats = sim.stats()
    assert code == 0
    paid = stats["submissions_per_external_id"]
    twice = sorted(ext for ext, n in paid.items() if n > 1)
    index = read_index(run_dir)
    for entry in index:
        assert (
            hashlib.sha256((run_dir / entry["video"]).read_bytes()).hexdigest() == entry["sha256"]
        )
    with Store.open(run_dir / "state.sqlite") as store:
        assert store.integrity_ok()
    lost = stats["faults"]["reset_after_accept"] + stats["faults"]["gateway_timeout"]
    print(
        f"\nsoak {profile}: {KILLS} kills, {lost} create answers lost after the task was made, "
        f"{stats['faults']['server_error']} 5xx, {stats['throttled_1303']} slots-full answers, "
        f"{unknown_total} jobs left unknown and resolved ({len(by_hand)} adopted by hand), "
        f"{len(twice)} rows paid twice, "
        f"{len(index)}/{ROWS} videos verified"
    )
    assert not twice and len(index) == ROWS and len(paid) == ROWS
    if profile == "kling":
        assert by_hand == []


LOSSES = (2, 5)  # after these kills the state file is deleted too


def note_paid_videos(run_dir: Path, seen: dict[str, str]) -> None:
    """Add to `seen` (sha256 → file) every video whose sidecar vouches for it as paid."""
    for sidecar in (run_dir / "videos").glob("*.json"):
        entry = json.loads(sidecar.read_text())
        video = run_dir / entry["video"]
        if video.is_file() and hashlib.sha256(video.read_bytes()).hexdigest() == entry["sha256"]:
            seen.setdefault(entry["sha256"], entry["video"])


@pytest.mark.slow
@pytest.mark.parametrize("profile", PROFILES)
def test_kills_with_the_state_deleted_between_them_lose_no_paid_video(tmp_path, profile):
    """Kill -9 eight times, deleting the state file after two of the kills: no video a sidecar
    ever vouched for is overwritten or lost; on Kling's own API, which looks tasks up, no row
    is paid twice; every row ends with its verified video."""
    rows = 30
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"
    run_dir = out / "batch"
    rng = random.Random(20261126)
    seen: dict[str, str] = {}
    with simulator(latency=(0.4, 1.2), slots=4, profile=profile, **FAULTS) as sim:
        for kill in range(8):
            proc = spawn_run(manifest, out, sim.base_url, "-c", "6", profile=profile)
            time.sleep(rng.uniform(0.8, 1.6))
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=10)
            assert b"Traceback" not in err, err.decode()
            note_paid_videos(run_dir, seen)
            if kill in LOSSES:
                lose_state(run_dir)
            else:
                resolve_unknown(sim, manifest, out, profile)
        finish(manifest, out, sim, profile)
        stats = sim.stats()
    note_paid_videos(run_dir, seen)
    present = {hashlib.sha256(p.read_bytes()).hexdigest() for p in run_dir.glob("videos/*.mp4")}
    lost = {sha: video for sha, video in seen.items() if sha not in present}
    twice = sorted(ext for ext, n in stats["submissions_per_external_id"].items() if n > 1)
    print(
        f"\nsoak with lost states, {profile}: {len(seen)} paid videos seen, {len(lost)} lost, "
        f"{len(twice)} rows paid twice"
    )
    assert not lost and len(read_index(run_dir)) == rows
    if profile == "kling":
        assert not twice


SHARED_KILLS = 10


def overlapping_manifests(folder: Path) -> tuple[Path, Path]:
    """Two manifests of 40 rows each sharing 20 (rows 20-39 are the same jobs in both)."""
    one = write_manifest(folder / "one", 40, name="one")
    two = write_manifest(folder / "two", 60, name="two")
    doc = yaml.safe_load(two.read_text())
    doc["rows"] = doc["rows"][20:]
    two.write_text(yaml.safe_dump(doc, sort_keys=False))
    return one, two


@pytest.mark.slow
def test_kills_across_two_runs_sharing_rows_pay_nothing_twice(tmp_path, monkeypatch, capsys):
    """Two runs of manifests that share 20 rows, at the same time, into their own folders,
    killed with kill -9 at seeded moments (either or both) ten times, each folder's unknown
    jobs resolved as a user would, then finished: no row is paid twice across the account,
    every row of both ends with its verified video, and no task paid for lacks its video."""
    monkeypatch.setenv("BATCHGEN_LEASE", "2")
    manifests = overlapping_manifests(tmp_path)
    outs = [tmp_path / "out-one", tmp_path / "out-two"]
    rng = random.Random(20261202)
    by_hand: list[str] = []
    with simulator(latency=(0.5, 1.5), slots=6, **FAULTS) as sim:
        for _ in range(SHARED_KILLS):
            procs = [
                spawn_run(m, out, sim.base_url, "-c", "4")
                for m, out in zip(manifests, outs, strict=True)
            ]
            time.sleep(rng.uniform(0.5, 2.5))
            victims = rng.choice([[0], [1], [0, 1]])
            for i in victims:
                procs[i].send_signal(signal.SIGKILL)
            time.sleep(rng.uniform(0.0, 1.0))
            for proc in procs:
                proc.send_signal(signal.SIGKILL)
                _, err = proc.communicate(timeout=10)
                assert b"Traceback" not in err, err.decode()
            for manifest, out in zip(manifests, outs, strict=True):
                resolve_unknown(sim, manifest, out, "cometapi", by_hand)
        for _ in range(10):
            codes = [
                run_cli("run", m, "-o", o, base_url=sim.base_url)
                for m, o in zip(manifests, outs, strict=True)
            ]
            found = sum(
                resolve_unknown(sim, m, o, "cometapi", by_hand)
                for m, o in zip(manifests, outs, strict=True)
            )
            if not found and codes == [0, 0]:
                break
        stats = sim.stats(with_tasks=True)
        capsys.readouterr()
        run_cli("runs")
        run_cli("account", "--base-url", sim.base_url, "--api-key", "sk-test")
        shown = capsys.readouterr().out
    twice = sorted(ext for ext, n in stats["submissions_per_external_id"].items() if n > 1)
    indexes = [read_index(out / m.stem) for m, out in zip(manifests, outs, strict=True)]
    done_tasks = {e["task_id"] for index in indexes for e in index}
    paid_tasks = {t for tasks in stats["tasks_by_external_id"].values() for t in tasks}
    for manifest, out in zip(manifests, outs, strict=True):
        assert run_cli("verify", out / manifest.stem) == 0
    reused = sum(1 for e in indexes[1] if e["reused_from"]) + sum(
        1 for e in indexes[0] if e["reused_from"]
    )
    with capsys.disabled():
        print(
            f"\nsoak of two runs sharing 20 rows: {SHARED_KILLS} kill rounds, "
            f"{stats['tasks_total']} tasks for {len(stats['submissions_per_external_id'])} "
            f"external ids, {len(twice)} rows paid twice, {len(by_hand)} adopted by hand, "
            f"{reused} videos taken from the other folder, "
            f"{len(paid_tasks - done_tasks)} paid tasks without a video; "
            f"{len(indexes[0])}/40 and {len(indexes[1])}/40 videos verified\n{shown}"
        )
    assert not twice
    assert [len(index) for index in indexes] == [40, 40]
    assert paid_tasks <= done_tasks
    assert len(stats["submissions_per_external_id"]) == 60
