"""One card per job of a run: what the gallery shows of it, from the state (every job, in
manifest order) or, for a folder without one, from index.jsonl (the done jobs). Pure but for
reading those two files. What an index line says of a video (its probe, its findings) is taken
only where it has the type it should (`width: "640px"` is no width): a hand-edited or hostile
index gives a page with less on it, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.export.entries import read_lines
from batchgen.money.price_table import PriceTable
from batchgen.money.pricing import price_of
from batchgen.state.records import CheckRecord, JobRecord
from batchgen.state.store import Store

SHOWN_PARAMS = ("model_name", "mode", "duration", "cfg_scale", "sound", "negative_prompt")
PROBE_KINDS: dict[str, type] = {
    "width": int,
    "height": int,
    "frames": int,
    "fps": float,
    "duration_s": float,
    "codec": str,
    "audio_codec": str,
    "container": str,
    "decode": str,  # "keyframes" where only those were checked (--qa keyframes)
}
PARAM_GROUPS = ("camera_control", "static_mask", "dynamic_masks", "watermark_info")


@dataclass(frozen=True, slots=True)
class Card:
    """A job as the gallery shows it. Paths are relative to the run folder; `findings` is
    None for a video that was not checked; `reason` is why a job is not done."""

    row_id: str
    job_id: str
    status: str
    prompt: str
    params: dict[str, str]
    video: str | None = None
    sha256: str | None = None
    image: str | None = None  # image refs, as in the request
    image_tail: str | None = None
    probe: Mapping[str, Any] = field(default_factory=dict)
    findings: list[Mapping[str, Any]] | None = None
    reason: str | None = None
    units: str | None = None  # final_unit_deduction
    usd: float | None = None  # the price table's price of a done job
    metadata: Mapping[str, Any] = field(default_factory=dict)  # the row's own columns
    lookups: list[str] = field(default_factory=list)  # an unknown job's evidence, a line each

    @property
    def model(self) -> str:
        return self.params.get("model_name", "kling-v1")

    @property
    def codes(self) -> list[str]:
        return [str(f.get("code")) for f in self.findings or ()]


def cards_of_state(store: Store, prices: PriceTable) -> Iterator[Card]:
    """Every job of the run in `store`, in manifest order."""
    for job, check in store.checks.jobs_with_checks():
        looked = store.lookups.of(job.job_id, 3) if job.status == "unknown" else []
        yield _card_of_job(job, check, prices, [s.line() for s in looked])


def cards_of_index(run_dir: Path, prices: PriceTable) -> Iterator[Card]:
    """The done jobs of index.jsonl, in its order (for a run folder without its state)."""
    for line in read_lines(run_dir):
        entry = line.entry
        yield _card(
            entry["request"] if isinstance(entry.get("request"), dict) else {},
            prices,
            row_id=line.row_id,
            job_id=line.job_id,
            status="done",
            video=line.video,
            sha256=_text(entry.get("sha256")),
            probe=entry.get("probe"),
            findings=entry.get("qa"),
            units=_text(entry.get("final_unit_deduction")),
            metadata=entry.get("metadata") if isinstance(entry.get("metadata"), dict) else {},
        )


def _card_of_job(
    job: JobRecord, check: CheckRecord | None, prices: PriceTable, lookups: list[str]
) -> Card:
    done = job.status == "done"
    return _card(
        job.request,
        prices,
        row_id=job.row_id,
        job_id=job.job_id,
        status=str(job.status),
        video=job.output_path if done else None,
        sha256=job.sha256 if done else None,
        probe=check.probe if check else {},
        findings=check.findings if check else None,
        reason=None if done else job.last_error,
        units=job.unit_deduction,
        metadata=job.metadata,
        lookups=lookups,
    )


def _card(
    request: Mapping[str, Any], prices: PriceTable, probe: Any, findings: Any, **fields: Any
) -> Card:
    done = fields["status"] == "done"
    usd = price_of(request, prices, "expected").usd if done else None
    return Card(
        prompt=str(request.get("prompt") or ""),
        params=params_of(request),
        image=_ref(request.get("image")),
        image_tail=_ref(request.get("image_tail")),
        usd=usd,
        probe=shown_probe(probe),
        findings=shown_findings(findings),
        **fields,
    )


def shown_probe(probe: Any) -> dict[str, Any]:
    """The probe's values the gallery shows, each only where it has its type (numbers that
    are finite and not negative)."""
    if not isinstance(probe, Mapping):
        return {}
    shown = {}
    for name, kind in PROBE_KINDS.items():
        value = probe.get(name)
        if kind is str and isinstance(value, str):
            shown[name] = value
        elif kind is not str and _number(value) and (kind is float or isinstance(value, int)):
            shown[name] = kind(value)
    return shown


def shown_findings(findings: Any) -> list[Mapping[str, Any]] | None:
    """The QA findings as {code, message} texts; None when the video was not checked."""
    if not isinstance(findings, list):
        return None
    return [
        {"code": str(f.get("code")), "message": str(f.get("message", ""))}
        for f in findings
        if isinstance(f, Mapping)
    ]


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value < 2**53
    )


def params_of(request: Mapping[str, Any]) -> dict[str, str]:
    """The request's parameters worth a line each, as text (groups by their presence)."""
    shown = {name: str(request[name]) for name in SHOWN_PARAMS if request.get(name) is not None}
    if "duration" in shown:
        shown["duration"] += " s asked"
    for name in PARAM_GROUPS:
        value = request.get(name)
        if value:
            shown[name] = str(value.get("type", "yes")) if isinstance(value, Mapping) else "yes"
    return shown


def _text(value: Any) -> str | None:
    """A value as the card shows it: numbers briefly, nothing for a missing or structured one."""
    if value is None or isinstance(value, dict | list):
        return None
    return f"{value:g}" if isinstance(value, float) else str(value)


def _ref(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
