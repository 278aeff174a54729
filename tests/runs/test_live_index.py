"""The index as it is: every finished job can be exported at once, during a run and after it was
killed, and `verify` raises no false alarm while a run is under way."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

from batchgen.runner import runner
from tests.conftest import run_cli, simulator, write_manifest


def done_in_state(run_dir: Path) -> int:
    """Done jobs of the run, read as another process sees its committed state."""
    state = run_dir / "state.sqlite"
    if not state.is_file():
        return 0
    with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as conn:
        try:
            found = conn.execute("SELECT count(*) FROM jobs WHERE status = 'done'").fetchone()
        except sqlite3.OperationalError:  # the schema is still being made
            return 0
    return int(found[0])


def start_run(manifest: Path, out: Path, base_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COMETAPI_KEY": "sk-test"}
    command = [sys.executable, "-m", "batchgen", "run", str(manifest), "-o", str(out)]
    command += ["--base-url", base_url, "-c", "2", "--no-progress"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_done(run_dir: Path, at_least: int) -> None:
    while done_in_state(run_dir) < at_least:
        time.sleep(0.05)


def exported_rows(out_dir: Path) -> list[str]:
    with open(out_dir / "index.csv", newline="") as f:
        return sorted(row["row_id"] for row in csv.DictReader(f))


def test_export_during_a_run_and_after_a_kill_has_every_done_video(tmp_path, capsys):
    """While a run works and after it is killed (-9), `export` has every video the state has
    as done, though index.jsonl has not been rewritten; `verify` of the live run is clean."""
    manifest = write_manifest(tmp_path, 10)
    out = tmp_path / "out"
    run_dir = out / "batch"
    with simulator(latency=(0.2, 0.4), slots=2) as sim:
        proc = start_run(manifest, out, sim.base_url)
        try:
            wait_for_done(run_dir, 3)
            sim.reconfigure(latency=(600.0, 600.0))  # what is left stays in flight
            capsys.readouterr()
            assert run_cli("verify", run_dir) == 0
            said = capsys.readouterr().out
            assert "0 missing, 0 corrupted, 0 mismatched, 0 extra" in said, said
            assert "index.jsonl not compared" in said
            done = done_in_state(run_dir)
            assert run_cli("export", run_dir, "--format", "csv", "-o", tmp_path / "live") == 0
            assert len(exported_rows(tmp_path / "live")) >= done >= 3
        finally:
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()
    done = done_in_state(run_dir)
    assert not (run_dir / "index.jsonl").exists()  # a first run writes it when it ends
    assert run_cli("export", run_dir, "--format", "csv", "-o", tmp_path / "killed") == 0
    assert len(exported_rows(tmp_path / "killed")) == done
    capsys.readouterr()
    assert run_cli("verify", run_dir, "--json") == 0
    assert json.loads(capsys.readouterr().out)["ok"] == done


def test_a_run_says_so_when_it_writes_a_large_index_as_it_ends(tmp_path, capsys, monkeypatch):
    """The index is written from the state when a run ends: some seconds for a large run,
    said on the terminal (from INDEX_NOTICE finished jobs) instead of a silent wait after a
    Ctrl-C; nothing is said for a small one."""
    manifest = write_manifest(tmp_path, 4)
    with simulator(latency=(0.05, 0.1), slots=4) as sim:
        assert run_cli("run", manifest, "-o", "out", base_url=sim.base_url) == 0
        assert "writing index.jsonl" not in capsys.readouterr().err
        monkeypatch.setattr(runner, "INDEX_NOTICE", 4)
        assert run_cli("run", manifest, "-o", "out", base_url=sim.base_url) == 0
    assert "writing index.jsonl from the state: 4 finished jobs" in capsys.readouterr().err
