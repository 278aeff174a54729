"""One run on many processes: the same `batchgen run MANIFEST --database URL -o SHARED` started
several times joins one run kept in PostgreSQL. Each job is held by one worker at a time;
killed workers' jobs are taken over, a paused worker changes nothing it no longer holds, and
runs on one account never exceed its cap together."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batchgen.state.store import Store
from batchgen.status import JobStatus
from tests.conftest import read_index, run_cli, simulator, write_manifest
from tests.runs.test_resilience import finish

pytestmark = pytest.mark.usefixtures("postgres_server")


def worker(manifest: Path, out: Path, url: str, base_url: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "COMETAPI_KEY": "sk-test", "BATCHGEN_DATABASE_URL": url}
    command = [sys.executable, "-m", "batchgen", "run", str(manifest), "-o", str(out)]
    command += ["--base-url", base_url, "--no-progress", *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def state(out: Path, manifest: Path, url: str) -> Store:
    return Store.open(out / manifest.stem / "state.sqlite", url)


def paid_twice(stats: dict) -> list[str]:
    return sorted(e for e, n in stats["submissions_per_external_id"].items() if n > 1)


def test_workers_join_one_run_and_share_its_jobs(tmp_path, postgres_url, monkeypatch):
    """Three workers started at once on one run: each row is one task at the provider, every
    video lands in the shared folder, verified, and every worker let go of its jobs."""
    monkeypatch.setenv("BATCHGEN_DATABASE_URL", postgres_url)
    manifest = write_manifest(tmp_path, 30)
    out = tmp_path / "shared"
    with simulator(latency=(0.3, 0.6), slots=12) as sim:
        procs = [worker(manifest, out, postgres_url, sim.base_url, "-c", "4") for _ in range(3)]
        ended = [(proc, proc.communicate(timeout=120)[1]) for proc in procs]
        for proc, err in ended:  # (all ended first: none left running on a failure)
            assert proc.returncode == 0, err.decode()
        stats = sim.stats()
    assert stats["tasks_total"] == 30 and not paid_twice(stats)
    assert len(read_index(out / "batch")) == 30
    assert run_cli("verify", out / "batch") == 0
    with state(out, manifest, postgres_url) as store:
        owners = {row[0] for row in store.db.all("SELECT DISTINCT owner FROM jobs")}
    assert owners == {None}  # every worker let go of its jobs as it ended


def test_a_worker_joins_only_with_the_same_manifest(tmp_path, postgres_url, monkeypatch, capsys):
    """While a worker runs a run, another started with a different manifest under the same
    run name is refused (exit 2), naming the live worker; nothing is sent for it. `status`
    shows the live worker and the jobs it holds."""
    monkeypatch.setenv("BATCHGEN_DATABASE_URL", postgres_url)
    manifest = write_manifest(tmp_path, 6)
    other = write_manifest(tmp_path / "other", 6)
    other.write_text(other.read_text().replace("slow pan", "fast zoom"))
    out = tmp_path / "shared"
    with simulator(latency=(30.0, 30.0), slots=8) as sim:
        first = worker(manifest, out, postgres_url, sim.base_url)
        while sim.stats()["tasks_total"] < 4:
            time.sleep(0.05)
        second = worker(other, out, postgres_url, sim.base_url)
        _, err = second.communicate(timeout=60)
        capsys.readouterr()
        assert run_cli("status", out / "batch", "--json") == 0
        workers = json.loads(capsys.readouterr().out)["workers"]
        assert [w["pid"] for w in workers] == [first.pid]
        assert workers[0]["jobs_held"] >= 4
        first.send_signal(signal.SIGKILL)
        first.communicate()
        assert sim.stats()["tasks_total"] == 4
    assert second.returncode == 2
    assert b"worker(s)" in err and b"another manifest" in err


@pytest.mark.slow
def test_killed_workers_jobs_are_taken_over_and_nothing_is_paid_twice(
    tmp_path, postgres_url, monkeypatch
):
    """Three workers on 300 rows; workers killed with kill -9 at seeded moments and new ones
    started in their place: every row ends with one task at the provider and its verified
    video (the jobs a dead worker held taken over once its lease ran out)."""
    monkeypatch.setenv("BATCHGEN_DATABASE_URL", postgres_url)
    monkeypatch.setenv("BATCHGEN_LEASE", "2")
    rows = 300
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "shared"
    rng = random.Random(20261202)
    with simulator(latency=(0.3, 1.0), slots=24) as sim:
        procs = [worker(manifest, out, postgres_url, sim.base_url, "-c", "4") for _ in range(3)]
        for _ in range(6):
            time.sleep(rng.uniform(0.8, 2.0))
            victim = rng.randrange(len(procs))
            procs[victim].send_signal(signal.SIGKILL)
            _, err = procs[victim].communicate(timeout=10)
            assert b"Traceback" not in err, err.decode()
            procs[victim] = worker(manifest, out, postgres_url, sim.base_url, "-c", "4")
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            assert b"Traceback" not in err, err.decode()
        # A create a kill cut before its answer stays unknown: resolved as a user would.
        finish(manifest, out, sim, "cometapi")
        stats = sim.stats()
    assert not paid_twice(stats) and stats["tasks_total"] == rows
    with state(out, manifest, postgres_url) as store:
        assert store.counts()[JobStatus.DONE] == rows
    assert len(read_index(out / "batch")) == rows
    assert run_cli("verify", out / "batch") == 0


def test_a_paused_worker_changes_nothing_it_no_longer_holds(tmp_path, postgres_url, monkeypatch):
    """A worker stopped with SIGSTOP until its leases ran out and another worker took its
    jobs over, then resumed: every row one task, every video verified, and the paused worker
    wrote nothing to the jobs it lost (it lets them go)."""
    monkeypatch.setenv("BATCHGEN_DATABASE_URL", postgres_url)
    monkeypatch.setenv("BATCHGEN_LEASE", "1")
    manifest = write_manifest(tmp_path, 16)
    out = tmp_path / "shared"
    with simulator(latency=(1.0, 2.0), slots=16) as sim:
        paused = worker(manifest, out, postgres_url, sim.base_url, "-c", "8", "-v")
        while sim.stats()["tasks_total"] < 8:
            time.sleep(0.05)
        paused.send_signal(signal.SIGSTOP)
        time.sleep(1.5)  # its leases (1 s) run out
        other = worker(manifest, out, postgres_url, sim.base_url, "-c", "8")
        _, other_err = other.communicate(timeout=120)
        paused.send_signal(signal.SIGCONT)
        _, err = paused.communicate(timeout=120)
        # Creates whose answers the paused worker had not read were unknown to the other; the
        # paused one, losing them, put their tasks in the ledger: the next run adopts them.
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        stats = sim.stats()
    assert other.returncode in (0, 1), other_err.decode()
    assert b"Traceback" not in err, err.decode()
    assert stats["tasks_total"] == 16 and not paid_twice(stats)
    assert b"took over" in other_err
    assert b"another worker took it over" in err
    assert len(read_index(out / "batch")) == 16
    assert run_cli("verify", out / "batch") == 0


def test_two_runs_on_one_account_share_its_cap_across_workers(tmp_path, postgres_url, monkeypatch):
    """Two runs of different manifests, two workers each, on an account capped at 6 (the
    ledger in the same database): never more than 6 tasks in flight at the provider."""
    monkeypatch.setenv("BATCHGEN_DATABASE_URL", postgres_url)
    one = write_manifest(tmp_path / "one", 16, name="one")
    two = write_manifest(tmp_path / "two", 16, name="two")
    two.write_text(two.read_text().replace("slow pan", "fast zoom"))
    out = tmp_path / "shared"
    with simulator(latency=(0.4, 0.8), slots=20) as sim:
        flags = ["--base-url", sim.base_url, "--api-key", "sk-test"]
        assert run_cli("account", "--slots", "6", *flags) == 0
        procs = [
            worker(m, out, postgres_url, sim.base_url, "-c", "4") for m in (one, two, one, two)
        ]
        ended = [(proc, proc.communicate(timeout=120)[1]) for proc in procs]
        for proc, err in ended:  # (all ended first: none left running on a failure)
            assert proc.returncode == 0, err.decode()
        stats = sim.stats()
    assert stats["max_active"] <= 6
    assert stats["tasks_total"] == 32 and not paid_twice(stats)
