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
