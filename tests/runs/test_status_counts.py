"""`status` counts what the state holds: after a run with every kind of outcome, and after each
change a user makes between runs (an edited manifest, retry, regenerate, a resend of unknown
jobs), its counts and money are those a plain count of the jobs gives, on SQLite and on
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchgen.state.records import CURRENT, pricing_fields
from batchgen.status import JobStatus
from tests.conftest import open_state, run_cli, simulator, write_manifest
from tests.runs.test_resilience import leave_submitting


def counted_by_hand(run_dir: Path) -> tuple[dict[str, int], list[Any]]:
    """The run's jobs by status (see CURRENT), and its priced groups, counted from the jobs."""
    with open_state(run_dir) as store:
        counts = dict.fromkeys((s.value for s in JobStatus), 0)
        rows = store.db.all(f"SELECT status, count(*) FROM jobs WHERE {CURRENT} GROUP BY status")
        counts |= {str(status): int(n) for status, n in rows}
        units = store.db.number("unit_deduction")
        priced = store.db.all(
            f"SELECT status, price_key, count(*), coalesce(sum({units}), 0.0), "
            "count(unit_deduction) FROM jobs WHERE reused_from IS NULL GROUP BY 1, 2"
        )
        groups = [(s, pricing_fields(k), int(n), float(u), int(r)) for s, k, n, u, r in priced]
    return counts, sorted(groups, key=repr)


def assert_status_counts_the_jobs(manifest: Path, out: Path, capsys: Any) -> dict[str, int]:
    """`status --json` shows the counts a plain GROUP BY gives, and the state's money is that
    of the jobs themselves; returns the counts."""
    capsys.readouterr()
    assert run_cli("status", manifest, "-o", out, "--json") == 0
    shown = json.loads(capsys.readouterr().out)["counts"]
    counts, groups = counted_by_hand(out / manifest.stem)
    assert shown == counts
    with open_state(out / manifest.stem) as store:
        assert sorted(store.spending.priced_groups(), key=repr) == groups
    return counts


def test_status_counts_equal_a_count_of_the_jobs_after_every_kind_of_change(
    tmp_path, capsys, database
):
    """Done, failed and unknown jobs, then rows edited out of the manifest, a retry of the
    failed, a regeneration and a resend of the unknown: status always counts what a plain
    COUNT(*) ... GROUP BY status of the jobs counts."""
    manifest = write_manifest(tmp_path, 8)
    out = tmp_path / "out"
    leave_submitting(manifest, out)
    with simulator(fail_rate=0.4) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 1
        counts = assert_status_counts_the_jobs(manifest, out, capsys)
        assert counts["done"] and counts["failed"] and counts["unknown"], counts
        write_manifest(tmp_path, 6)  # two rows left out, done or not
        run_cli("run", manifest, "-o", out, base_url=sim.base_url)
        assert_status_counts_the_jobs(manifest, out, capsys)
        run_cli("retry", manifest, "-o", out, "--failed", base_url=sim.base_url)
        assert_status_counts_the_jobs(manifest, out, capsys)
        run_cli("retry", manifest, "-o", out, "--regenerate", "clip-000", base_url=sim.base_url)
        assert_status_counts_the_jobs(manifest, out, capsys)
        run_cli("retry", manifest, "-o", out, "--unknown", "--yes", base_url=sim.base_url)
        assert_status_counts_the_jobs(manifest, out, capsys)
