"""However the process is stopped, it ends cleanly: SIGTERM at any moment (start-up
included), a reader of its output that goes away, a disk that fills up mid-run, an output
folder that cannot be made. No traceback, nothing paid twice, the same command resumes."""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import read_index, run_cli, simulator, write_manifest


def batchgen(*args: str | Path, **popen: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COMETAPI_KEY": "sk-test"}
    command = [sys.executable, "-m", "batchgen", *map(str, args)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, **popen)  # type: ignore[call-overload]


@pytest.mark.slow
def test_sigterm_at_any_moment_of_start_up_ends_like_ctrl_c(tmp_path):
    """SIGTERM at seeded moments from 0 to 1.5 s: each process ends 130 (or 0), never with a
    traceback, and the next run finishes every job, each paid once."""
    manifest = write_manifest(tmp_path, 120)
    out = tmp_path / "out"
    rng = random.Random(7)
    with simulator(latency=(0.2, 0.5), slots=8) as sim:
        for _ in range(6):
            proc = batchgen(
                "run",
                manifest,
                "-o",
                out,
                "--base-url",
                sim.base_url,
                "-c",
                "8",
                stderr=subprocess.PIPE,
            )
            time.sleep(rng.uniform(0.3, 1.5))
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode in (0, 130), err.decode()
            assert b"Traceback" not in err, err.decode()
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        accepted = sim.stats()["submissions_per_external_id"]
    assert len(accepted) == 120 and set(accepted.values()) == {1}


@pytest.mark.slow
def test_a_reader_that_goes_away_stops_the_run_like_ctrl_c(tmp_path):
    """`batchgen run … 2>&1 | head -1`: the closed pipe drains and stops the run (exit 130);
    the next run finishes, nothing paid twice."""
    manifest = write_manifest(tmp_path, 40)
    out = tmp_path / "out"
    with simulator(latency=(0.5, 1.0), slots=4) as sim:
        proc = batchgen(
            "run",
            manifest,
            "-o",
            out,
            "--base-url",
            sim.base_url,
            "--progress",
            "plain",
            stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        proc.stderr.readline()
        proc.stderr.close()
        assert proc.wait(timeout=60) == 130
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        accepted = sim.stats()["submissions_per_external_id"]
    assert len(accepted) == 40 and set(accepted.values()) == {1}


def no_room(limit: int) -> None:
    """In the child: files may not grow past `limit` bytes (a disk that is full)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_disk_that_fills_up_mid_run_is_a_resumable_stop(tmp_path):
    """Videos too big for the room left: exit 3 naming where it could not write, no
    traceback; with room again the same command finishes without paying twice."""
    manifest = write_manifest(tmp_path, 3)
    out = tmp_path / "out"
    with simulator(video_bytes=3_000_000) as sim:
        proc = batchgen(
            "run",
            manifest,
            "-o",
            out,
            "--base-url",
            sim.base_url,
            "--no-progress",
            stderr=subprocess.PIPE,
            preexec_fn=lambda: no_room(1_000_000),
        )
        _, err = proc.communicate(timeout=60)
        text = err.decode()
        assert proc.returncode == 3, text
        assert "cannot write" in text and "Traceback" not in text
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        accepted = sim.stats()["submissions_per_external_id"]
    assert set(accepted.values()) == {1} and len(read_index(out / "batch")) == 3


def test_an_output_folder_that_cannot_be_made_is_named_at_start(tmp_path, capsys):
    """-o pointing below a file: exit 2 naming the path, nothing sent."""
    manifest = write_manifest(tmp_path, 1)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with simulator() as sim:
        code = run_cli("run", manifest, "-o", blocker / "out", base_url=sim.base_url)
        assert sim.stats()["creates_received"] == 0
    err = capsys.readouterr().err
    assert code == 2 and str(blocker) in err and "Traceback" not in err
