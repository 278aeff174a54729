"""The commands around a run: validate, plan, schema, --max-cost, --locked, export, verify."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import tarfile
import time

import httpx
import pyarrow.parquet as pq
import yaml

from batchgen.output import PROVIDER_FIELDS
from tests.conftest import read_index, run_cli, simulator, write_manifest
from tests.spec.test_cli import bad_manifest


def test_max_cost_below_the_estimate_submits_nothing(tmp_path, capsys):
    path = write_manifest(tmp_path, 10)
    with simulator() as sim:
        assert run_cli("run", path, "--max-cost", "5", base_url=sim.base_url) == 2
        assert sim.stats()["creates_received"] == 0
        assert "above --max-cost $5.00" in capsys.readouterr().err
        assert run_cli("run", path, "--max-cost", "20", base_url=sim.base_url) == 0
        assert sim.stats()["creates_accepted"] == 10


def test_locked_refuses_a_manifest_that_changed(tmp_path, capsys):
    path = write_manifest(tmp_path, 3)
    with simulator() as sim:
        assert run_cli("run", path, base_url=sim.base_url) == 0
        assert run_cli("run", path, "--locked", base_url=sim.base_url) == 0
        doc = yaml.safe_load(path.read_text())
        doc["rows"][0]["prompt"] = "something else"
        path.write_text(yaml.safe_dump(doc))
        assert run_cli("run", path, "--locked", base_url=sim.base_url) == 2
        assert "clip-000" in capsys.readouterr().err
        assert sim.stats()["creates_received"] == 3


def test_two_builds_of_one_manifest_give_the_same_index_but_for_provenance(tmp_path):
    """A dataset built again from the same rows on the same account has the same index, the
    same videos included (the second build takes the first's); only where each came from
    differs. On another account, all but the provider's fields and bytes are the same."""
    path = write_manifest(tmp_path, 12)
    with simulator() as sim:
        for out in ("a", "b"):
            assert run_cli("run", path, "-o", tmp_path / out, base_url=sim.base_url) == 0
    with simulator() as other_account:
        assert run_cli("run", path, "-o", tmp_path / "c", base_url=other_account.base_url) == 0
    a, b, c = (read_index(tmp_path / out / "batch") for out in ("a", "b", "c"))
    assert [e["job_id"] for e in a] == sorted(e["job_id"] for e in a)
    assert all(e["reused_from"] is None for e in (*a, *c))
    assert all(e["reused_from"] for e in b)
    for entry in (*a, *b):
        entry.pop("reused_from")
    assert a == b
    for entry in (*a, *c):
        for name in PROVIDER_FIELDS:
            entry.pop(name)
        entry.pop("sha256"), entry.pop("bytes")  # the simulator renders each task afresh
        entry.pop("reused_from", None)
    assert a == c


def test_export_from_the_command_line_reads_back(tmp_path, capsys):
    path = write_manifest(tmp_path, 5)
    run_dir = tmp_path / "output" / "batch"
    with simulator() as sim:
        assert run_cli("run", path, base_url=sim.base_url) == 0
    assert run_cli("export", run_dir, "--format", "webdataset", "--shard-size", "2") == 0
    shards = sorted((run_dir / "export" / "webdataset").glob("*.tar"))
    assert [s.name for s in shards] == ["000000.tar", "000001.tar", "000002.tar"]
    names = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            names += tar.getnames()
    assert sum(n.endswith(".mp4") for n in names) == 5
    assert run_cli("export", run_dir, "-f", "hf", "-o", tmp_path / "hf") == 0
    names = pq.read_table(tmp_path / "hf" / "metadata.parquet").column("file_name").to_pylist()
    assert len(names) == 5 and all((tmp_path / "hf" / name).is_file() for name in names)
    assert "exported 5 sample(s) as hf" in capsys.readouterr().out


def test_verify_finds_damage_and_repair_downloads_again_without_paying(tmp_path, capsys):
    path = write_manifest(tmp_path, 4)
    run_dir = tmp_path / "output" / "batch"
    with simulator() as sim:
        assert run_cli("run", path, base_url=sim.base_url) == 0
        assert run_cli("verify", run_dir) == 0
        entries = read_index(run_dir)
        damaged = run_dir / entries[0]["video"]
        data = bytearray(damaged.read_bytes())
        data[len(data) // 2] ^= 0xFF
        damaged.write_bytes(bytes(data))
        (run_dir / entries[1]["video"]).unlink()
        (run_dir / "videos" / "stray.mp4").write_bytes(b"x")
        capsys.readouterr()
        assert run_cli("verify", run_dir) == 1
        out = capsys.readouterr().out
        assert "1 missing, 1 corrupted, 0 mismatched, 1 extra" in out
        (run_dir / "videos" / "stray.mp4").unlink()
        args = ["verify", run_dir, "--repair", "--base-url", sim.base_url, "--api-key", "sk-t"]
        assert run_cli(*args) == 0
        assert sim.stats()["creates_accepted"] == 4
    for entry in read_index(run_dir):
        video = (run_dir / entry["video"]).read_bytes()
        assert hashlib.sha256(video).hexdigest() == entry["sha256"]


def test_skip_invalid_runs_the_valid_rows_and_names_the_skipped(tmp_path, capsys):
    path = bad_manifest(tmp_path)
    with simulator() as sim:
        assert run_cli("run", path, "--skip-invalid", base_url=sim.base_url) == 1
        assert sim.stats()["creates_accepted"] == 2
    err = capsys.readouterr().err
    assert "skipped invalid row 'clip-001'" in err and "skipped invalid row 'clip-003'" in err
    assert {e["row_id"] for e in read_index(tmp_path / "output" / "batch")} == {
        "clip-000",
        "clip-002",
    }


def test_simulate_serves_the_api_on_a_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [sys.executable, "-m", "batchgen", "simulate", "--port", str(port), "--slots", "2"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/_sim/config", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        assert answer.json()["slots"] == 2
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_report_counts_units_and_prices_the_done_jobs(tmp_path, capsys):
    path = write_manifest(tmp_path, 5)
    run_dir = tmp_path / "output" / "batch"
    with simulator() as sim:
        assert run_cli("run", path, base_url=sim.base_url) == 0
    capsys.readouterr()
    assert run_cli("report", run_dir, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    units = sum(float(e["final_unit_deduction"]) for e in read_index(run_dir))
    assert report["counts"]["done"] == report["total"] == 5
    assert report["units_charged"] == round(units, 3) > 0
    assert report["estimated_usd"] == 6.6  # 5 x kling-v2-master 5 s at $1.32, kling-api.md §10
    assert report["last_run"]["api_calls_per_job"] > 0
