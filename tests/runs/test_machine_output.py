"""Machine output on stdout: `run --progress json` writes JSON lines alone on stdout (human text
on stderr), and `validate`, `export` and `gallery` answer `--json` with one JSON document."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from tests.conftest import run_cli, write_manifest


def test_run_progress_json_writes_only_json_lines_on_stdout(tmp_path, sim):
    """`batchgen run M --progress json | jq -c .done` works: every stdout line is a JSON object,
    the last one says every job is done; the header and the summary go to stderr."""
    manifest = write_manifest(tmp_path, 4)
    env = {**os.environ, "COMETAPI_KEY": "sk-test"}
    command = [sys.executable, "-m", "batchgen", "run", str(manifest), "-o", str(tmp_path / "o")]
    command += ["--base-url", sim.base_url, "--progress", "json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert records[0]["event"] == "start" and records[-1]["event"] == "end"
    assert records[-1]["done"] == 4 and records[-1]["total"] == 4
    assert "batch: 4 jobs" in done.stderr and "4 done, 0 failed" in done.stderr
    assert "{" not in done.stderr


def test_validate_json_lists_every_problem_as_fields(tmp_path, capsys):
    """`validate --json` prints one object: ok, jobs, and each problem's row, line, field and
    message (exit 2 as without --json)."""
    manifest = write_manifest(tmp_path, 2)
    doc = yaml.safe_load(manifest.read_text())
    doc["rows"][1]["image"] = "images/nowhere.jpg"
    manifest.write_text(yaml.safe_dump(doc))
    assert run_cli("validate", manifest, "--json") == 2
    found = json.loads(capsys.readouterr().out)
    assert found["ok"] is False and found["jobs"] == 1 and found["total_problems"] == 1
    assert found["problems"][0]["row"] == "clip-001"
    assert found["problems"][0]["field"] == "image"


def test_export_and_gallery_answer_json(tmp_path, sim, capsys):
    """`export --json` says the format, folder and count; `gallery --json` the page and cards."""
    manifest = write_manifest(tmp_path, 2)
    assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
    capsys.readouterr()
    run_dir = tmp_path / "out" / "batch"
    assert run_cli("export", run_dir, "--format", "csv", "--json") == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["exported"] == 2 and exported["format"] == "csv"
    assert exported["without_inputs"] == 0 and exported["skipped_missing"] == []
    assert run_cli("gallery", run_dir, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["cards"] == 2 and shown["page"].endswith("gallery.html")
