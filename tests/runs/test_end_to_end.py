"""A manifest in, videos out: whole runs against the simulator over loopback HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import pytest

from batchgen.state.store import Store
from tests.conftest import read_index, run_cli, simulator, write_manifest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_complete(run_dir: Path, rows: int, stats: dict) -> None:
    index = read_index(run_dir)
    assert len(index) == rows
    assert [e["job_id"] for e in index] == sorted(e["job_id"] for e in index)
    for entry in index:
        video = run_dir / entry["video"]
        assert video.is_file() and sha256(video) == entry["sha256"]
        assert video.stat().st_size == entry["bytes"]
        assert entry["task_id"] and entry["row_id"] and entry["request"]["prompt"]
    assert not list(run_dir.rglob("*.part"))
    per_ext = stats["submissions_per_external_id"]
    assert len(per_ext) == rows and set(per_ext.values()) == {1}


@pytest.mark.parametrize("fmt", ["yaml", "csv"])
def test_fifty_rows_finish_with_every_video_and_one_submission_each(tmp_path, fmt):
    """A 50-row manifest runs to exit 0; each video matches its index digest; paid once each."""
    manifest = write_manifest(tmp_path, 50, fmt)
    with simulator() as sim:
        code = run_cli("run", manifest, "-o", tmp_path / "out", "-c", "8", base_url=sim.base_url)
        stats = sim.stats()
    assert code == 0
    assert_complete(tmp_path / "out" / "batch", 50, stats)


def test_videos_are_real_playable_mp4(tmp_path, sim):
    """What lands in the output folder decodes as video."""
    manifest = write_manifest(tmp_path, 2)
    assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
    for video in (tmp_path / "out" / "batch" / "videos").glob("*.mp4"):
        with av.open(str(video)) as container:
            assert sum(1 for _ in container.decode(video=0)) > 1


def test_a_second_run_submits_nothing(tmp_path, sim):
    """Running the same command again finds everything done and sends no create."""
    manifest = write_manifest(tmp_path, 10)
    args = ("run", manifest, "-o", tmp_path / "out")
    assert run_cli(*args, base_url=sim.base_url) == 0
    before = sim.stats()["creates_received"]
    assert run_cli(*args, base_url=sim.base_url) == 0
    assert sim.stats()["creates_received"] == before


@pytest.mark.slow
def test_server_errors_and_full_slots_are_survived(tmp_path):
    """With 5xx answers and fewer real slots than --concurrency, every job still ends done."""
    manifest = write_manifest(tmp_path, 30)
    with simulator(error_rate=0.15, slots=3) as sim:
        code = run_cli(
            "run", manifest, "-o", tmp_path / "out", "-c", "8", "--seed", "3", base_url=sim.base_url
        )
        stats = sim.stats()
    assert code == 0
    assert stats["throttled_1303"] > 0
    assert_complete(tmp_path / "out" / "batch", 30, stats)


def test_invalid_manifest_exits_2_and_submits_nothing(tmp_path, sim, capsys):
    """A row with a too-long prompt stops the run before any money is spent."""
    manifest = write_manifest(tmp_path, 5)
    text = manifest.read_text().replace("slow pan, take 3", "x" * 600)
    manifest.write_text(text)
    assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 2
    err = capsys.readouterr().err
    assert "clip-003" in err and "prompt" in err
    assert sim.stats()["creates_received"] == 0


def test_failed_generations_exit_1_with_reasons(tmp_path):
    """Generations the provider fails end as failed jobs with the provider's reason; exit 1."""
    manifest = write_manifest(tmp_path, 12)
    with simulator(fail_rate=0.5) as sim:
        code = run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url)
    assert code == 1
    with Store.open(tmp_path / "out" / "batch" / "state.sqlite") as store:
        failed = list(store.failed_in_job_order())
    assert failed and all(job.last_error for job in failed)
    lines = (tmp_path / "out" / "batch" / "failed.jsonl").read_text().splitlines()
    assert len(lines) == len(failed)


def test_account_error_stops_the_run_with_exit_3(tmp_path, capsys):
    """A spent quota (the relay's `user quota is not enough`) stops the run, exit 3, with the
    fix named once."""
    manifest = write_manifest(tmp_path, 4)
    with simulator(account_error=1102) as sim:
        code = run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url)
    assert code == 3
    err = capsys.readouterr().err
    assert "user quota is not enough (top up the balance or raise the quota)" in err


def test_the_key_never_reaches_state_output_or_messages(tmp_path, sim, capsys):
    """The API key appears nowhere batchgen writes."""
    manifest = write_manifest(tmp_path, 3)
    assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
    captured = capsys.readouterr()
    assert "sk-test" not in captured.out + captured.err
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert b"sk-test" not in path.read_bytes()
