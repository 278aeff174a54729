"""A run's state in PostgreSQL: moved there from SQLite and back (`state copy`), one process
per run across output folders, and errors that name the server but never its password."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from batchgen.state import runlock
from batchgen.state.store import Store
from tests.conftest import read_index, run_cli, simulator, write_manifest
from tests.runs.test_resilience import assert_one_paid_video_per_job, finish, spawn_run


def status_json(capsys, *args) -> dict:
    assert run_cli("status", *args, "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_a_run_copied_to_postgresql_mid_run_finishes_there_paying_nothing_twice(
    tmp_path, postgres_url, monkeypatch, capsys
):
    """Killed mid-run on SQLite, copied to PostgreSQL, finished there: every row one task at
    the provider and one verified video; `status` reads the same jobs on both."""
    rows = 20
    manifest = write_manifest(tmp_path, rows)
    out = tmp_path / "out"
    run_dir = out / "batch"
    with simulator(latency=(0.3, 0.8), slots=4) as sim:
        proc = spawn_run(manifest, out, sim.base_url, "-c", "4")
        deadline = time.monotonic() + 60
        while sim.stats()["downloads_completed"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)  # mid-run: some videos in, others to come
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        before = status_json(capsys, run_dir)
        assert run_cli("state", "copy", run_dir, postgres_url) == 0
        assert "counts and hashes match" in capsys.readouterr().out
        monkeypatch.setenv("BATCHGEN_DATABASE_URL", postgres_url)
        assert status_json(capsys, run_dir) == before
        finish(manifest, out, sim, "cometapi")
        stats = sim.stats()
    assert_one_paid_video_per_job(run_dir, rows, stats)
    assert run_cli("report", run_dir) == 0 and f"{rows}" in capsys.readouterr().out


def test_a_state_copied_to_postgresql_and_back_reads_the_same(tmp_path, postgres_url, sim, capsys):
    """SQLite → PostgreSQL → a new SQLite file: every table the same, status the same."""
    manifest = write_manifest(tmp_path, 4)
    out = tmp_path / "out"
    assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    first = status_json(capsys, out / "batch")
    assert run_cli("state", "copy", out / "batch", postgres_url) == 0
    back = tmp_path / "back" / "batch" / "state.sqlite"
    assert run_cli("state", "copy", postgres_url, back, "--run", "batch") == 0
    assert "copied 4 job(s)" in capsys.readouterr().out
    with sqlite3.connect(out / "batch" / "state.sqlite") as a, sqlite3.connect(back) as b:
        for table in ("jobs", "meta", "inputs", "images", "video_checks"):
            query = f"SELECT * FROM {table} ORDER BY 1"
            assert a.execute(query).fetchall() == b.execute(query).fetchall(), table
    assert status_json(capsys, back) == first


def test_a_copy_into_a_state_that_is_not_empty_is_refused(tmp_path, postgres_url, sim, capsys):
    """A destination that holds a state is never overwritten: exit 2, saying so."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    assert run_cli("state", "copy", out / "batch", postgres_url) == 0
    capsys.readouterr()
    assert run_cli("state", "copy", out / "batch", postgres_url) == 2
    err = capsys.readouterr().err
    assert "already holds a state" in err and "nothing was copied" in err
    assert "Traceback" not in err


def test_a_copy_that_reads_back_different_is_refused_and_leaves_nothing(
    tmp_path, postgres_url, sim, capsys
):
    """A value PostgreSQL cannot hold as SQLite did (a fraction in an integer column) makes
    the hashes differ: exit 2 naming the table, and the destination stays empty."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    with sqlite3.connect(out / "batch" / "state.sqlite") as db:
        db.execute("UPDATE jobs SET bytes = bytes + 0.5")
    capsys.readouterr()
    assert run_cli("state", "copy", out / "batch", postgres_url) == 2
    err = capsys.readouterr().err
    assert "the table jobs read back different" in err and "Traceback" not in err
    with Store.open(out / "batch" / "state.sqlite", postgres_url, create=False) as copied:
        assert sum(copied.counts().values()) == 0 and copied.get_meta("run_name") is None
    assert run_cli("state", "copy", out / "batch", postgres_url) == 2  # not "already holds"
    assert "read back different" in capsys.readouterr().err


@pytest.mark.slow
def test_a_second_run_joins_and_a_command_needing_the_run_alone_is_refused(
    tmp_path, postgres_url, monkeypatch
):
    """One database, one run name: a second `run` joins the first as a worker (each row
    still paid once), while `retry`, which needs the run alone, exits 2 naming a worker."""
    monkeypatch.setenv("BATCHGEN_DATABASE_URL", postgres_url)
    manifest = write_manifest(tmp_path, 6)
    out = tmp_path / "out"
    state = out / "batch" / "state.sqlite"
    with simulator(latency=(1.0, 1.5), slots=2) as sim:
        first = spawn_run(manifest, out, sim.base_url)
        deadline = time.monotonic() + 20
        while runlock.holder(state, postgres_url) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        retry = subprocess.run(
            [sys.executable, "-m", "batchgen", "retry", str(manifest), "-o", str(out), "--failed"],
            capture_output=True,
            timeout=60,
        )
        second = spawn_run(manifest, out, sim.base_url)
        _, second_err = second.communicate(timeout=60)
        _, first_err = first.communicate(timeout=60)
        accepted = sim.stats()["submissions_per_external_id"]
    assert retry.returncode == 2, retry.stderr.decode()
    assert "(batchgen run)" in retry.stderr.decode()
    assert second.returncode == 0, second_err.decode()
    assert first.returncode == 0, first_err.decode()
    assert len(accepted) == 6 and set(accepted.values()) == {1}
    assert len(read_index(out / "batch")) == 6


@pytest.mark.parametrize("command", ["status", "run"])
def test_a_server_that_cannot_be_reached_is_named_without_its_password(tmp_path, capsys, command):
    """A --database nobody answers on: exit 2 naming the server, never the password."""
    manifest = write_manifest(tmp_path, 1)
    url = "postgresql://batch:s3cret-Pw@127.0.0.1:9/jobs?password=other-s3cret"
    extra = ["--api-key", "sk-test"] if command == "run" else []
    assert run_cli(command, manifest, "--database", url, *extra) == 2
    err = capsys.readouterr().err
    assert "127.0.0.1" in err and "s3cret" not in err and "Traceback" not in err


def test_a_database_that_is_not_postgresql_is_a_usage_error(tmp_path, capsys):
    """--database takes postgresql:// URLs only; a file is --state's."""
    manifest = write_manifest(tmp_path, 1)
    assert run_cli("status", manifest, "--database", "mysql://u:pw@127.0.0.1/db") == 2
    err = capsys.readouterr().err
    assert "postgresql://" in err and "pw@" not in err
