"""Never pay twice, never lose a paid result: kills, faults, stops and adoption."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from batchgen.jobs import external_task_id
from batchgen.status import JobStatus
from batchgen.store import Store
from tests.conftest import read_index, run_cli, simulator, write_manifest


def state_of(run_dir: Path) -> Store:
    return Store.open(run_dir / "state.sqlite")


def assert_one_paid_video_per_job(run_dir: Path, rows: int, stats: dict) -> None:
    """Every job done once: its video present and intact, one accepted create each."""
    index = read_index(run_dir)
    assert len(index) == rows
    for entry in index:
        data = (run_dir / entry["video"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert not list(run_dir.rglob("*.part"))
    accepted = stats["submissions_per_external_id"]
    assert len(accepted) == rows and set(accepted.values()) == {1}
    with state_of(run_dir) as store:
        assert store.integrity_ok()
        assert store.counts()[JobStatus.DONE] == rows


def spawn_run(manifest: Path, out: Path, base_url: str, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COMETAPI_KEY": "sk-test"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batchgen",
            "run",
            str(manifest),
            "-o",
            str(out),
            "--base-url",
            base_url,
            "--no-progress",
            *extra,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_nine_at_random_moments_then_resume(tmp_path):
    """SIGKILL at seeded random moments, then resume: one payment and one video per job."""
    rows = 40
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"
    rng = random.Random(20261124)
    with simulator(latency=(0.2, 0.8), slots=6, reset_after_accept_rate=0.05) as sim:
        for _ in range(6):
            proc = spawn_run(manifest, out, sim.base_url, "-c", "6", "--request-timeout", "2")
            time.sleep(rng.uniform(0.8, 2.0))
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
        final = spawn_run(manifest, out, sim.base_url, "-c", "6")
        _, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()
        stats = sim.stats()
    assert_one_paid_video_per_job(out / "batch", rows, stats)


FAULTS = {
    "5xx in both envelopes": {"error_rate": 0.15},
    "reset before accept": {"reset_before_accept_rate": 0.25},
    "reset after accept": {"reset_after_accept_rate": 0.25},
    "answers slower than the client waits": {"slow_rate": 0.2, "slow_seconds": 2.0},
    "downloads cut short": {"truncate_rate": 0.4},
    "no list endpoint, path-only lookups": {
        "list_endpoint": False,
        "external_lookup": "path",
        "reset_after_accept_rate": 0.2,
    },
}


@pytest.mark.parametrize("faults", FAULTS.values(), ids=FAULTS.keys())
def test_fault_matrix_ends_done_with_zero_duplicates(tmp_path, faults):
    """Under each fault the run ends with every job done and no job paid twice."""
    rows = 20
    manifest = write_manifest(tmp_path, rows)
    with simulator(**faults) as sim:
        code = run_cli(
            "run",
            manifest,
            "-o",
            tmp_path / "out",
            "-c",
            "6",
            "--seed",
            "1",
            "--request-timeout",
            "1",
            base_url=sim.base_url,
        )
        stats = sim.stats()
    assert code == 0
    assert_one_paid_video_per_job(tmp_path / "out" / "batch", rows, stats)


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (1000, "COMETAPI_KEY"),
        (1101, "top up"),
        (1102, "resource pack"),
        (1103, "permission"),
        (1304, "whitelist"),
    ],
)
def test_account_errors_stop_with_3_and_resume_after_the_fix(tmp_path, capsys, code, hint):
    """Account-level codes stop the run (exit 3, what to fix); after the fix it resumes to 0."""
    manifest = write_manifest(tmp_path, 4)
    with simulator(account_error=code) as sim:
        args = ("run", manifest, "-o", tmp_path / "out")
        assert run_cli(*args, base_url=sim.base_url) == 3
        assert hint in capsys.readouterr().err
        sim.reconfigure(account_error=None)
        assert run_cli(*args, base_url=sim.base_url) == 0
        assert set(sim.stats()["submissions_per_external_id"].values()) == {1}


def test_first_ctrl_c_drains_paid_tasks_and_exits_130(tmp_path):
    """After SIGINT nothing new is submitted, accepted tasks are still downloaded; exit 130."""
    rows = 30
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"
    with simulator(latency=(0.8, 1.2), slots=4) as sim:
        proc = spawn_run(manifest, out, sim.base_url, "-c", "4")
        deadline = time.monotonic() + 30
        while sim.stats()["creates_accepted"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err.decode()
        accepted = sim.stats()["creates_accepted"]
        with state_of(out / "batch") as store:
            counts = store.counts()
        assert counts[JobStatus.DONE] == accepted
        assert counts[JobStatus.SUBMITTED] == counts[JobStatus.RUNNING] == 0
        assert counts[JobStatus.PENDING] == rows - accepted > 0
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        assert_one_paid_video_per_job(out / "batch", rows, sim.stats())


def create_directly(base_url: str, ext_id: str, image_b64: str) -> str:
    """Submit a task behind batchgen's back (as a lost answer would leave it)."""
    body = {
        "image": image_b64,
        "prompt": "p",
        "model_name": "kling-v2-master",
        "duration": "5",
        "external_task_id": ext_id,
    }
    answer = httpx.post(
        f"{base_url}/kling/v1/videos/image2video",
        json=body,
        headers={"Authorization": "Bearer sk-test"},
    ).json()
    return str(answer["data"]["task_id"])


def first_job(out: Path) -> tuple[str, str]:
    with state_of(out / "batch") as store:
        job = next(store.with_status(*JobStatus))
        return job.job_id, job.request["image"]


def test_a_1201_on_create_adopts_the_existing_task(tmp_path, sim):
    """A create refused for a re-used external_task_id adopts that task instead of paying."""
    import base64

    manifest = write_manifest(tmp_path, 1)
    out = tmp_path / "out"
    image = base64.b64encode((tmp_path / "images" / "img0.jpg").read_bytes()).decode()
    from batchgen.pipeline import prepare
    from batchgen.settings import Settings

    prepared = prepare(manifest, Settings(output=out))
    job = next(prepared.store.with_status(JobStatus.PENDING))
    prepared.store.close()
    task_id = create_directly(sim.base_url, external_task_id(job.job_id), image)
    assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    assert read_index(out / "batch")[0]["task_id"] == task_id
    assert sim.stats()["duplicate_external_id_refusals"] == 1
    assert sum(sim.stats()["submissions_per_external_id"].values()) == 1


def test_a_job_left_submitting_is_looked_up_not_resent(tmp_path, sim):
    """A job recorded `submitting` whose task the provider has is adopted on resume."""
    import base64

    from batchgen.pipeline import prepare
    from batchgen.settings import Settings

    manifest = write_manifest(tmp_path, 1)
    out = tmp_path / "out"
    prepared = prepare(manifest, Settings(output=out))
    job = next(prepared.store.with_status(JobStatus.PENDING))
    ext = external_task_id(job.job_id)
    prepared.store.mark_submitting(job.job_id, ext, time.time())
    prepared.store.close()
    image = base64.b64encode((tmp_path / "images" / "img0.jpg").read_bytes()).decode()
    create_directly(sim.base_url, ext, image)
    assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    stats = sim.stats()
    assert stats["creates_received"] == 1 and stats["duplicate_external_id_refusals"] == 0


def test_an_expired_url_is_refreshed_by_querying_the_task(tmp_path):
    """A video URL that expired before the download is replaced by a fresh one."""
    manifest = write_manifest(tmp_path, 3)
    out = tmp_path / "out"
    with simulator(url_ttl=0.5) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        video = out / "batch" / read_index(out / "batch")[0]["video"]
        video.unlink()
        time.sleep(0.7)
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        assert video.is_file()
        assert sim.stats()["creates_received"] == 3


def test_a_corrupted_video_is_downloaded_again_on_resume(tmp_path, sim):
    """A done job whose file was damaged is fetched again; its digest matches the index."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    entry = read_index(out / "batch")[0]
    video = out / "batch" / entry["video"]
    video.write_bytes(video.read_bytes()[:100])
    assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    assert hashlib.sha256(video.read_bytes()).hexdigest() == entry["sha256"]


def test_a_hung_task_times_out_and_retry_polls_it_again(tmp_path):
    """A task slower than --task-timeout is reported, and `retry --failed` picks it up unpaid."""
    manifest = write_manifest(tmp_path, 1)
    out = tmp_path / "out"
    with simulator(latency=(3.0, 3.0)) as sim:
        args = ("run", manifest, "-o", out)
        assert run_cli(*args, "--task-timeout", "1", base_url=sim.base_url) == 1
        with state_of(out / "batch") as store:
            job = next(store.with_status(JobStatus.FAILED))
            assert job.error_kind == "task_timeout"
        assert run_cli("retry", manifest, "-o", out, "--failed") == 0
        time.sleep(2.5)
        assert run_cli(*args, base_url=sim.base_url) == 0
        assert sim.stats()["creates_received"] == 1


def test_retry_resubmits_failed_generations_under_a_new_external_id(tmp_path):
    """`retry --failed` re-runs failed generations with a fresh external_task_id suffix."""
    manifest = write_manifest(tmp_path, 3)
    out = tmp_path / "out"
    with simulator(fail_rate=1.0) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 1
        sim.reconfigure(fail_rate=0.0)
        assert run_cli("retry", manifest, "-o", out, "--failed") == 0
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        ids = sim.stats()["submissions_per_external_id"]
    assert len(ids) == 6 and sum(ext.endswith("-r1") for ext in ids) == 3
    assert set(ids.values()) == {1}


def test_reconcile_adopts_a_task_the_state_lost(tmp_path, sim):
    """A task the provider has for a failed job is adopted by reconcile, then downloaded."""
    import base64

    from batchgen.pipeline import prepare
    from batchgen.settings import Settings

    manifest = write_manifest(tmp_path, 1)
    out = tmp_path / "out"
    prepared = prepare(manifest, Settings(output=out))
    job = next(prepared.store.with_status(JobStatus.PENDING))
    ext = external_task_id(job.job_id)
    prepared.store.mark_submitting(job.job_id, ext, time.time())
    prepared.store.mark_failed(job.job_id, "answer lost", "lost_task", time.time())
    prepared.store.close()
    image = base64.b64encode((tmp_path / "images" / "img0.jpg").read_bytes()).decode()
    create_directly(sim.base_url, ext, image)
    assert run_cli("reconcile", manifest, "-o", out, base_url=sim.base_url) == 0
    assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    assert sim.stats()["creates_received"] == 1


def test_state_is_consistent_after_a_kill(tmp_path):
    """PRAGMA integrity_check passes on a state file whose writer was SIGKILLed."""
    manifest = write_manifest(tmp_path, 10)
    out = tmp_path / "out"
    with simulator() as sim:
        proc = spawn_run(manifest, out, sim.base_url)
        time.sleep(1.0)
        proc.kill()
        proc.communicate(timeout=10)
    conn = sqlite3.connect(out / "batch" / "state.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
