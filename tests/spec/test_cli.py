"""The commands around a run: validate, plan, schema, --max-cost, --locked, export, verify."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import run_cli, write_manifest


def bad_manifest(folder: Path) -> Path:
    path = write_manifest(folder, 4)
    doc = yaml.safe_load(path.read_text())
    doc["rows"][1]["duration"] = "7"
    doc["rows"][3]["cfg_scale"] = 3
    path.write_text(yaml.safe_dump(doc))
    return path


def test_validate_lists_every_problem_by_row_and_field_and_exits_2(tmp_path, capsys):
    path = bad_manifest(tmp_path)
    assert run_cli("validate", path) == 2
    out, err = capsys.readouterr()
    assert "row 'clip-001'" in out and "'duration'" in out
    assert "row 'clip-003'" in out and "'cfg_scale'" in out
    assert "2 problem(s) in 2 row(s)" in err and "nothing was submitted" in err


def test_validate_accepts_a_good_manifest(tmp_path, capsys):
    assert run_cli("validate", write_manifest(tmp_path, 5)) == 0
    assert "ok, 5 job(s)" in capsys.readouterr().out


def test_plan_prices_the_batch_and_estimates_wall_time(tmp_path, capsys):
    path = write_manifest(tmp_path, 10)
    assert run_cli("plan", path, "-c", "5", "--generation-seconds", "60") == 0
    out = capsys.readouterr().out
    assert "10 job(s)" in out and "kling-v2-master" in out
    assert "expected $13.20" in out  # 10 x $1.32, kling-api.md §10
    assert "~2 min at concurrency 5" in out


def test_plan_of_an_invalid_manifest_exits_2(tmp_path, capsys):
    assert run_cli("plan", bad_manifest(tmp_path)) == 2
    assert "2 problem(s)" in capsys.readouterr().err


def test_schema_is_json_describing_rows(capsys):
    assert run_cli("schema") == 0
    schema = json.loads(capsys.readouterr().out)
    assert "rows" in schema["properties"]


def test_simulate_refuses_impossible_settings(capsys):
    assert run_cli("simulate", "--error-rate", "1.5") == 2
    assert "error_rate must be between 0 and 1" in capsys.readouterr().err


def test_a_ctrl_c_in_any_command_is_said_as_interrupted_and_exits_130(capsys, monkeypatch):
    """click turns a Ctrl-C into its Abort; the user reads what happened, not 'aborted'."""
    from batchgen.cli import manifests

    def pressed(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(manifests, "manifest_json_schema", pressed)
    assert run_cli("schema") == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "interrupted"
