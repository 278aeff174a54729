"""What the account ledger says (state/ledger.py): every run it knows, and for each account its
slots (the cap, who holds them) and the money its tasks cost, as values for `batchgen runs`
and `batchgen account` (text or JSON)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

from batchgen.state.leases import holders_of
from batchgen.state.ledger import Ledger, RunEntry


def runs_json(ledger: Ledger) -> list[dict[str, Any]]:
    """Every run the ledger knows, the most recently active first."""
    return [_run_json(entry) for entry in ledger.runs()]


def _run_json(entry: RunEntry) -> dict[str, Any]:
    found = dataclasses.asdict(entry)
    found["jobs"] = sum(entry.counts.values())
    found["last_active_at"] = _when(entry.last_active)
    return found


def runs_lines(runs: list[dict[str, Any]]) -> list[str]:
    if not runs:
        return ["no run yet: the ledger records every run started on this machine"]
    lines = [
        f"{'NAME':<20} {'LAST ACTIVE':<19} {'JOBS':>6} {'DONE':>6} {'FAILED':>6} {'UNKNOWN':>7} "
        f"{'SPENT':>9}  STATE"
    ]
    for run in runs:
        counts = run["counts"]
        name = run["name"] + (" *" if run["running"] else "")
        lines.append(
            f"{name[:20]:<20} {run['last_active_at']:<19} {run['jobs']:>6} "
            f"{counts.get('done', 0):>6} {counts.get('failed', 0):>6} "
            f"{counts.get('unknown', 0):>7} {'$' + format(run['spent_usd'], ',.2f'):>9}  "
            f"{run['state_path']}"
        )
    lines.append("(* running, or killed before it could say it ended; manifest in --json)")
    return lines


def accounts_json(ledger: Ledger, account: str | None = None) -> list[dict[str, Any]]:
    """Each account (or the one named): its slots, their holders, and its money."""
    now = time.time()
    names = {entry.state_id: entry for entry in ledger.runs()}
    found = []
    for fingerprint, provider, base_url, slots, learned in ledger.accounts():
        if account is not None and fingerprint != account:
            continue
        holders = holders_of(ledger.db, fingerprint, now)
        today, today_tasks = ledger.spent(fingerprint, _midnight(now))
        total, total_tasks = ledger.spent(fingerprint)
        found.append(
            {
                "account": fingerprint,
                "provider": provider,
                "base_url": base_url,
                "slots_set": slots,
                "slots_learned": learned,
                # (a run alone on the account keeps the slots of its ended tasks: leases.py)
                "slots_in_use": sum(h.held for h in holders),
                "holders": [_holder_json(h, names.get(h.state_id)) for h in holders],
                "spent_today_usd": round(today, 4),
                "tasks_today": today_tasks,
                "spent_total_usd": round(total, 4),
                "tasks_total": total_tasks,
            }
        )
    return found


def _holder_json(holder: Any, run: RunEntry | None) -> dict[str, Any]:
    return {
        "run": run.name if run else None,
        "state_path": run.state_path if run else None,
        "held": holder.held,
        "waiting": holder.wanting,
        "share": holder.share,
        "lease_until": _when(holder.expires_at),
    }


def account_lines(accounts: list[dict[str, Any]]) -> list[str]:
    if not accounts:
        return ["no account yet: the ledger records each account a run sends to"]
    lines = []
    for found in accounts:
        cap = found["slots_set"] or found["slots_learned"]
        how = "set" if found["slots_set"] else "learned from 1303" if cap else "not known yet"
        lines += [
            f"account {found['account'][:12]} ({found['provider']}, {found['base_url']})",
            f"  slots: cap {cap if cap else '-'} ({how}), {found['slots_in_use']} held by runs",
        ]
        for holder in found["holders"]:
            wait = ", waiting for a slot" if holder["waiting"] else ""
            lines.append(
                f"    {holder['run'] or '?'}: {holder['held']} held (share {holder['share']})"
                f"{wait}, lease until {holder['lease_until']}  {holder['state_path'] or ''}"
            )
        lines.append(
            f"  spent: ${found['spent_today_usd']:,.2f} today ({found['tasks_today']} tasks), "
            f"${found['spent_total_usd']:,.2f} in total ({found['tasks_total']} tasks); "
            "estimates at the price table, the provider's bill is the truth"
        )
    return lines


def _when(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")


def _midnight(now: float) -> float:
    day = dt.datetime.fromtimestamp(now).date()
    return dt.datetime.combine(day, dt.time()).timestamp()
