"""A lost state is rebuilt from the run folder, not paid for again: the sidecars and the index
name each job's paid task and video, and no paid video is ever overwritten."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import PROFILES, read_index, run_cli, simulator, write_manifest
from tests.runs.test_paid_results import edit_prompt


def lose_state(run_dir: Path) -> None:
    """Delete the state as a user or a crash may: the file, its -wal and its -shm."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{run_dir / 'state.sqlite'}{suffix}").unlink(missing_ok=True)


def videos(run_dir: Path) -> dict[str, tuple[int, str]]:
    """Every video of the run folder: name → (inode, sha256)."""
    return {
        p.name: (p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted((run_dir / "videos").glob("*.mp4"))
    }


@pytest.mark.parametrize("profile", PROFILES)
def test_a_deleted_state_is_rebuilt_from_the_run_folder_without_paying_again(
    tmp_path, profile, capsys
):
    """State deleted after a complete run, the same command again: not one create, every
    video left as it was (same file, same bytes), the same index, `verify` clean."""
    manifest = write_manifest(tmp_path, 6)
    out = tmp_path / "out"
    run_dir = out / "batch"
    with simulator(profile=profile) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url, profile=profile) == 0
        before, index = videos(run_dir), read_index(run_dir)
        creates = sim.stats()["creates_received"]
        lose_state(run_dir)
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url, profile=profile) == 0
        assert sim.stats()["creates_received"] == creates
    assert videos(run_dir) == before
    again = read_index(run_dir)
    assert [(e["job_id"], e["task_id"], e["sha256"], e["qa"]) for e in again] == [
        (e["job_id"], e["task_id"], e["sha256"], e["qa"]) for e in index
    ]
    assert "taking them back instead of paying again" in capsys.readouterr().err
    assert run_cli("verify", run_dir) == 0


def test_a_video_lost_with_its_state_is_fetched_from_its_task_not_paid_again(tmp_path):
    """State and one video deleted: the video's task, named by the index, is followed and
    downloaded again; nothing is created."""
    manifest = write_manifest(tmp_path, 3)
    out = tmp_path / "out"
    run_dir = out / "batch"
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        index = read_index(run_dir)
        (run_dir / index[1]["video"]).unlink()
        (run_dir / index[1]["video"]).with_suffix(".json").unlink()
        lose_state(run_dir)
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        stats = sim.stats()
    assert set(stats["submissions_per_external_id"].values()) == {1}
    assert stats["creates_received"] == 3
    again = read_index(run_dir)
    assert [(e["task_id"], e["sha256"]) for e in again] == [
        (e["task_id"], e["sha256"]) for e in index
    ]
    assert run_cli("verify", run_dir) == 0


def test_a_paid_video_the_state_does_not_know_is_kept_aside_not_overwritten(tmp_path):
    """State lost, then a row edited: its new video takes the row's name and the earlier
    paid video, which only its sidecar vouches for, moves to videos/<job id>.mp4 intact."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    run_dir = out / "batch"
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        first = {e["row_id"]: e for e in read_index(run_dir)}["clip-001"]
        lose_state(run_dir)
        edit_prompt(manifest, "clip-001", "a new prompt for the same row")
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        assert sim.stats()["creates_received"] == 3
    latest = {e["row_id"]: e for e in read_index(run_dir)}["clip-001"]
    assert latest["job_id"] != first["job_id"] and latest["video"] == "videos/clip-001.mp4"
    kept = run_dir / "videos" / f"{first['job_id']}.mp4"
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == first["sha256"]
    sidecar = json.loads(kept.with_suffix(".json").read_text())
    assert sidecar["job_id"] == first["job_id"] and sidecar["task_id"] == first["task_id"]


def test_a_second_state_for_a_filled_run_folder_takes_its_videos_back(tmp_path):
    """`run --state another.sqlite` on a folder another state filled: nothing is created,
    nothing overwritten."""
    manifest = write_manifest(tmp_path, 4)
    out = tmp_path / "out"
    run_dir = out / "batch"
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        before = videos(run_dir)
        other = ("--state", tmp_path / "other.sqlite")
        assert run_cli("run", manifest, "-o", out, *other, base_url=sim.base_url) == 0
        assert sim.stats()["creates_received"] == 4
    assert videos(run_dir) == before
