"""Money and time of what is left: `plan` of a manifest run before prices what is still to send
apart from what is done, and `--max-cost` caps only what this run may newly spend."""

from __future__ import annotations

import json

import yaml

from batchgen.state.connect import state_exists
from tests.conftest import run_cli, write_manifest


def add_row(manifest, row_id: str) -> None:
    doc = yaml.safe_load(manifest.read_text())
    doc["rows"].append({"id": row_id, "image": doc["rows"][0]["image"], "prompt": "one more"})
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_plan_after_a_run_shows_done_apart_from_what_is_left_to_send(
    tmp_path, sim, capsys, database
):
    """Before any run, `plan` says all 4 to send and makes no state; 4 rows done and 1 added:
    it says 1 to send and 4 done (read from the run's database), and its cost and wall time
    are those of the one job; with nothing left, the wall time is nothing."""
    manifest = write_manifest(tmp_path, 4)
    out = tmp_path / "out"
    assert run_cli("plan", manifest, "-o", out, "--json") == 0
    assert json.loads(capsys.readouterr().out)["to_send"] == 4
    assert not state_exists(out / "batch" / "state.sqlite", database)
    assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    capsys.readouterr()
    assert run_cli("plan", manifest, "-o", out, "--json") == 0
    done = json.loads(capsys.readouterr().out)
    assert done["to_send"] == 0 and done["already"] == {"done": 4}
    assert done["cost"]["usd"] == 0 and done["wall_seconds"] == 0
    assert done["done_cost"]["jobs"] == 4
    add_row(manifest, "extra")
    assert run_cli("plan", manifest, "-o", out) == 0
    text = capsys.readouterr().out
    assert text.startswith("5 job(s): 1 to send, 4 done")
    assert "estimated cost of the 1 job(s) to send: low $1.32" in text
    assert "wall time of the 1 job(s) to send: ~2 min" in text
    assert "already done: 4 job(s), expected $5.28" in text


def test_max_cost_caps_what_this_run_newly_spends(tmp_path, sim, capsys):
    """After 4 paid jobs ($5.28), one added row ($1.32) runs under --max-cost 2; a limit below
    the one new job is refused, nothing sent."""
    manifest = write_manifest(tmp_path, 4)
    out = tmp_path / "out"
    assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    add_row(manifest, "extra")
    creates = sim.stats()["creates_accepted"]
    assert run_cli("run", manifest, "-o", out, "--max-cost", "1", base_url=sim.base_url) == 2
    assert "for the 1 job(s) to send" in capsys.readouterr().err
    assert sim.stats()["creates_accepted"] == creates
    assert run_cli("run", manifest, "-o", out, "--max-cost", "2", base_url=sim.base_url) == 0
    assert sim.stats()["creates_accepted"] == creates + 1
