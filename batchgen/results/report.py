"""The run report: counts, failures by reason, QA findings, cost, money spent and committed,
wall time, slot use, API calls per job.
Written as `report.json` at the end of every run and shown by `batchgen report RUN`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from batchgen.money.pricing import Key, cost_of, job_key, load_prices
from batchgen.money.spent import Money
from batchgen.output import write_json_atomic
from batchgen.results.overview import state_money
from batchgen.results.qa_summary import QaSummary, summarize
from batchgen.runner import RunOutcome
from batchgen.state.store import Store

REPORT_NAME = "report.json"


def build_report(store: Store, outcome: RunOutcome | None = None) -> dict[str, Any]:
    """The report of a run's state, with the figures of the last run when given."""
    counts = store.counts()
    reasons: Counter[str] = Counter()
    for job in store.failed_in_job_order():
        reasons[f"{job.error_kind}: {_short(job.last_error or '')}"] += 1
    kinds: Counter[Key] = Counter()
    for fields, jobs in store.spending.done_pricing_fields():
        kinds[job_key(fields)] += jobs
    cost = cost_of(kinds, load_prices())
    report: dict[str, Any] = {
        "run": store.get_meta("run_name"),
        "counts": {status.value: n for status, n in counts.items()},
        "total": sum(counts.values()),
        "failures_by_reason": dict(reasons.most_common()),
        "qa": summarize(store).as_json(),
        "units_charged": round(store.spending.units_charged(), 3),
        "cash_reported": {c: round(v, 4) for c, v in store.spending.cash_reported().items()},
        "superseded_videos": store.superseded_count(),
        "skipped_invalid": store.inputs.skipped_rows(),
        "estimated_usd": round(cost.usd, 2),
        "unpriced_jobs": cost.unknown_usd,
        "prices_taken": cost.taken,
        **state_money(store).as_json(),
    }
    if outcome is not None:
        report["last_run"] = {
            "wall_seconds": round(outcome.wall_seconds, 3),
            "stopped": outcome.stopped,
            "api_calls": outcome.api_calls,
            "jobs_worked_on": outcome.touched,
            "api_calls_per_job": round(outcome.calls_per_job, 3),
            "concurrency": outcome.concurrency,
            "slot_utilisation": round(outcome.slot_utilisation, 4),
        }
    return report


def write_report(run_dir: Path, report: dict[str, Any]) -> Path:
    path = run_dir / REPORT_NAME
    write_json_atomic(path, report, shared=True)  # every worker of a run writes it
    return path


def load_report(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / REPORT_NAME
    if not path.is_file():
        return None
    value: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return value


def render(report: dict[str, Any]) -> str:
    counts = report["counts"]
    lines = [
        f"run {report['run']}: {report['total']} jobs",
        "  " + ", ".join(f"{n} {status}" for status, n in counts.items() if n),
        f"  units charged (final_unit_deduction, every paid task): {report['units_charged']}",
        *_cash_line(report.get("cash_reported") or {}),
        f"  estimate of the done jobs (not the bill): ~${report['estimated_usd']:,.2f} at the "
        f"price table of {report['prices_taken']}"
        + (f" ({report['unpriced_jobs']} job(s) unpriced)" if report["unpriced_jobs"] else ""),
    ]
    money = Money(report["spent_usd"], report["committed_usd"], report["provider"])
    lines.append(f"  {money.line()}")
    if report.get("superseded_videos"):
        lines.append(
            f"  {report['superseded_videos']} earlier paid video(s) of rows edited since, "
            "kept under their job id in videos/"
        )
    last = report.get("last_run")
    if last:
        lines.append(
            f"  last run: {last['wall_seconds']:.1f} s, {last['api_calls']} API calls "
            f"({last['api_calls_per_job']:.2f} per job it worked on), slot utilisation "
            f"{last['slot_utilisation']:.0%} of {last['concurrency']} slots"
            + (f", stopped ({last['stopped']})" if last["stopped"] else "")
        )
    if report.get("skipped_invalid"):
        lines.append(
            f"  {report['skipped_invalid']} invalid row(s) left out by --skip-invalid "
            "(failed.jsonl lists them)"
        )
    for reason, n in report["failures_by_reason"].items():
        lines.append(f"  failed ×{n}: {reason}")
    if "qa" in report:
        lines.append(f"  QA: {QaSummary(**report['qa']).headline()}")
    return "\n".join(lines)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cash_line(cash: dict[str, float]) -> list[str]:
    if not cash:
        return []
    said = ", ".join(f"{currency} {amount:g}" for currency, amount in sorted(cash.items()))
    return [f"  cash charged, as the provider reported it (billing[]): {said}"]
