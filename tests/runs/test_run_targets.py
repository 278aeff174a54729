"""status, report, verify, export and gallery take the run as MANIFEST, RUN or STATE; status
and report show the money spent and committed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from batchgen.money.pricing import load_prices
from tests.conftest import run_cli, simulator, write_manifest
from tests.runs.test_resilience import leave_submitting

KLING_V2_MASTER_5S = 1.32  # expected price of one job of write_manifest, kling-api.md §10
COMMANDS = {
    "status": ((), f"{'done':<12}{3:>8}"),
    "report": ((), "run batch: 3 jobs"),
    "verify": ((), "3 ok, 0 missing"),
    "export": (("-f", "csv"), "exported 3 sample(s)"),
    "gallery": ((), "3 card(s)"),
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """(manifest, output folder) of a run of three jobs, all done, in a folder not `output`."""
    folder = tmp_path_factory.mktemp("finished")
    manifest = write_manifest(folder, 3)
    out = folder / "runs"
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    return manifest, out


@pytest.mark.parametrize("form", ["manifest", "run", "state"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_that_looks_at_a_run_takes_a_manifest_a_run_or_a_state(
    finished, form, command, capsys
):
    """Each of status, report, verify, export and gallery finds the run from any of the three."""
    manifest, out = finished
    output_flag = "--runs" if command == "export" else "-o"
    target = {
        "manifest": [manifest, output_flag, out],
        "run": [out / "batch"],
        "state": [out / "batch" / "state.sqlite"],
    }[form]
    flags, expected = COMMANDS[command]
    assert run_cli(command, *target, *flags) == 0
    assert expected in capsys.readouterr().out


def test_status_json_gives_counts_failures_unknown_jobs_qa_and_money(tmp_path, capsys):
    """`status --json`: counts, each failure, each unknown job with what to do, the QA
    summary, and the dollars spent and committed."""
    manifest = write_manifest(tmp_path, 4)
    out = tmp_path / "out"
    leave_submitting(manifest, out)
    with simulator(fail_rate=0.5, seed=3) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 1
    capsys.readouterr()
    assert run_cli("status", manifest, "-o", out, "--json") == 0
    status = json.loads(capsys.readouterr().out)
    counts = status["counts"]
    assert status["total"] == 4 and counts["unknown"] == 1
    assert counts["done"] + counts["failed"] == 3
    assert len(status["failed"]) == counts["failed"]
    assert all(failure["error"] for failure in status["failed"])
    (unknown,) = status["unknown"]
    assert f"batchgen adopt {manifest} -o {out} --base-url" in unknown["what_to_do"]
    assert f"--job {unknown['row_id']}" in unknown["what_to_do"]
    assert status["qa"]["checked"] == counts["done"]
    money = status["money"]
    assert money["spent_usd"] == round(KLING_V2_MASTER_5S * counts["done"], 2)
    assert money["committed_usd"] >= KLING_V2_MASTER_5S and money["provider"] == "cometapi"


def test_status_and_report_show_what_a_kling_run_spent_in_units(tmp_path, capsys):
    """On Kling's own API the money spent is the units charged at the table's unit price,
    in `status` and in `report`."""
    manifest = write_manifest(tmp_path, 3)
    with simulator(profile="kling") as sim:
        assert run_cli("run", manifest, base_url=sim.base_url, profile="kling") == 0
    capsys.readouterr()
    assert run_cli("report", manifest, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    unit_usd = load_prices().unit_usd.value or 0.0
    assert report["provider"] == "kling" and report["committed_usd"] == 0
    assert report["spent_usd"] == round(report["units_charged"] * unit_usd, 2) > 0
    assert run_cli("status", manifest) == 0
    out = capsys.readouterr().out
    assert f"money (the bill so far): ${report['spent_usd']:,.2f} spent, $0.00 committed" in out
    assert "(on kling)" in out


def test_a_state_that_does_not_name_its_provider_is_counted_as_cometapi(tmp_path, capsys):
    """A state written before the provider was recorded is priced as CometAPI's."""
    manifest = write_manifest(tmp_path, 2)
    with simulator() as sim:
        assert run_cli("run", manifest, base_url=sim.base_url) == 0
    state = tmp_path / "output" / "batch" / "state.sqlite"
    with sqlite3.connect(state) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'provider'")
    conn.close()
    capsys.readouterr()
    assert run_cli("status", state, "--json") == 0
    money = json.loads(capsys.readouterr().out)["money"]
    assert money == {
        "spent_usd": round(2 * KLING_V2_MASTER_5S, 2),
        "committed_usd": 0.0,
        "provider": "cometapi",
    }
