"""However the process is stopped, it ends cleanly: SIGTERM at any moment (start-up
included), a reader of its output that goes away, a disk that fills up mid-run, an output
folder that cannot be made, Ctrl-C after a budget or account stop, a key revoked mid-run,
settings that make no sense. No traceback, nothing paid twice, the same command resumes."""

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

from batchgen.state.store import Store
from batchgen.status import JobStatus
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


def read_until(proc: subprocess.Popen[bytes], text: str) -> str:
    """stderr of `proc`, line by line, up to the first line holding `text`."""
    assert proc.stderr is not None
    seen = []
    for raw in proc.stderr:
        line = raw.decode(errors="replace")
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"{text!r} never said; stderr: {''.join(seen)}")


def wait_for_creates(sim: object, count: int) -> None:
    while sim.stats()["creates_accepted"] < count:  # type: ignore[attr-defined]
        time.sleep(0.05)


LONG = {"latency": (120.0, 120.0), "slots": 4}  # a drain would take two minutes


def in_flight(out: Path) -> int:
    """Jobs whose paid task the state still follows."""
    with Store.open(out / "batch" / "state.sqlite") as store:
        counts = store.counts()
    return counts[JobStatus.SUBMITTED] + counts[JobStatus.RUNNING]


def test_a_run_stopped_by_its_budget_ends_on_ctrl_c(tmp_path):
    """Stopped by --budget with two paid tasks still generating: one Ctrl-C ends it at once
    (exit 130, no traceback), the two tasks kept in the state for the next run."""
    manifest = write_manifest(tmp_path, 6)
    out = tmp_path / "out"
    with simulator(**LONG) as sim:
        args = ("run", manifest, "-o", out, "--base-url", sim.base_url, "--no-progress")
        proc = batchgen(*args, "--budget", f"{2 * 1.32:.2f}", stderr=subprocess.PIPE)
        read_until(proc, "budget $2.64 reached")
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
        creates = sim.stats()["creates_accepted"]
    text = rest.decode()
    assert proc.returncode == 130, text
    assert "interrupted after the budget stop: stopping now" in text and "Traceback" not in text
    assert creates == 2 and in_flight(out) == 2


def test_a_run_stopped_by_a_refused_create_ends_on_ctrl_c(tmp_path):
    """Creates refused for the account (balance) while paid tasks generate: the run drains
    them; one Ctrl-C ends it at once (exit 130), naming the account stop."""
    manifest = write_manifest(tmp_path, 6)
    out = tmp_path / "out"
    with simulator(**LONG) as sim:
        args = ("run", manifest, "-o", out, "--base-url", sim.base_url, "--no-progress")
        proc = batchgen(*args, "--rpm", "60", stderr=subprocess.PIPE)  # a create a second
        wait_for_creates(sim, 2)
        sim.reconfigure(account_error=1102)
        read_until(proc, "quota is not enough")  # the relay's words for 1102
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    text = rest.decode()
    assert proc.returncode == 130, text
    assert "interrupted after the account stop: stopping now" in text and "Traceback" not in text


@pytest.mark.parametrize("profile", ["cometapi", "kling"])
def test_a_key_revoked_mid_run_ends_the_run_instead_of_draining_forever(tmp_path, profile):
    """Every call answered 401 once tasks are paid for (a revoked key; on Kling's API, a JWT
    gone invalid): the run ends by itself, exit 3, naming why, the tasks kept in the state."""
    manifest = write_manifest(tmp_path, 4)
    out = tmp_path / "out"
    revoked = {"secret_key": "rotated"} if profile == "kling" else {"api_key": "sk-rotated"}
    with simulator(**LONG, profile=profile, api_key="sk-test") as sim:
        flags = ["--base-url", sim.base_url, "--no-progress"]
        if profile == "kling":
            flags += [
                "--provider",
                "kling",
                "--access-key",
                "sim-access",
                "--secret-key",
                "sim-secret",
            ]
        proc = batchgen("run", manifest, "-o", out, *flags, stderr=subprocess.PIPE)
        wait_for_creates(sim, 4)
        sim.reconfigure(**revoked)
        _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 3, text
    assert "refuses to answer about tasks" in text and "Traceback" not in text
    assert in_flight(out) == 4


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--rpm", "inf"),
        ("--rpm", "1e-300"),
        ("--rpm", "nan"),
        ("--budget", "nan"),
        ("--max-cost", "inf"),
        ("--request-timeout", "inf"),
        ("--task-timeout", "nan"),
    ],
)
def test_settings_that_make_no_sense_are_refused_before_anything_is_sent(
    tmp_path, sim, capsys, flag, value
):
    """Infinite, not-a-number or vanishing rates and limits: exit 2 naming the flag, no
    traceback, nothing sent."""
    manifest = write_manifest(tmp_path, 1)
    code = run_cli("run", manifest, "-o", tmp_path / "out", flag, value, base_url=sim.base_url)
    err = capsys.readouterr().err
    assert code == 2 and flag in err and "Traceback" not in err
    assert sim.stats()["creates_received"] == 0
