"""Slot utilisation and API calls per job of batchgen beside a hand-written 0.5 s poller
(fixed_poller.py), one after the other against a fresh simulator each (same seed, profile
`cometapi`: per-task queries only, same slots), over the shapes of generation time:

    narrow     120 jobs on 8 slots, 0.9–1.1 s
    wide       120 jobs on 8 slots, 2–5 s
    relay      as wide, `updated_at` stamped with the time of each query (a relay's clock)
    short      60 jobs on 3 slots, 0.3 s
    callbacks  as narrow, batchgen with --callback-url/--listen (the poller has no receiver)
    callbacks-wide  as wide, the same
    callbacks-signed  as callbacks, signed (Kling's Standard Webhooks, with a secret): a signed
               success is acted on without a query; CometAPI's callbacks are unsigned

Everything is measured from the simulator's task spans (created, ends), on its clock:

    utilisation  Σ generation / (slots × wall), wall = first create → last task end
    steady       the same over first create → last create, where every slot has work to take
                 (the drain after the last create is shared by every client: see `ceiling`)
    ceiling      utilisation of a client that learns of every end at once, replaying the same
                 generation times in the same order: what the drain alone costs
    refill idle  mean time a freed slot waits for the next create: (Σ creates after the first
                 `slots` − Σ the earliest n − slots ends) / (n − slots), whatever the order
    calls/job    API requests the simulator routed (creates, queries, anything else) / jobs

and `demo`: the packaged demo (6 jobs on 4 slots, 1–3 s, `batchgen demo`'s settings): API
calls per job of its first wave (the first `slots` tasks: their create and their queries),
with the simulator's range known (as `batchgen demo` runs it) beside the table's start.

Run: .venv/bin/python bench/poll_shapes.py [SHAPE ...]   (all shapes and the demo by default)
"""

from __future__ import annotations

import heapq
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import figure, free_port, run_settings, simulator_process, stats, write_csv_manifest
from fixed_poller import request_bodies, run_fixed_poller
from pydantic import SecretStr

import batchgen
from batchgen.demo import DEMO_MANIFEST, DEMO_SEED, demo_settings

SEED, POLL_INTERVAL = 7, 0.5
CALLBACK_SECRET = "bench-secret"


@dataclass(frozen=True)
class Shape:
    name: str
    latency: tuple[float, float]
    jobs: int = 120
    slots: int = 8
    simulator: dict[str, Any] = field(default_factory=dict)
    callbacks: bool = False  # batchgen listens for the simulator's callbacks
    signed: bool = False  # ... signed with a secret both know
    targets: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        low, high = self.latency
        times = f"{low:g} s" if low == high else f"{low:g}–{high:g} s"
        extra = ", updated_at = query time" if self.simulator else ""
        extra += ", batchgen with callbacks" if self.callbacks else ""
        extra += " (signed)" if self.signed else ""
        return f"{self.name}: {self.jobs} jobs on {self.slots} slots, {times}{extra}"


SHAPES = {
    shape.name: shape
    for shape in (
        Shape("narrow", (0.9, 1.1)),
        Shape("wide", (2.0, 5.0), targets={"util": ">= 0.93, poller + 0.03"}),
        Shape("relay", (2.0, 5.0), simulator={"updated_at_mode": "query"}),
        Shape("short", (0.3, 0.3), jobs=60, slots=3),
        Shape("callbacks", (0.9, 1.1), callbacks=True, targets={"util": ">= 0.95, poller + 0.03"}),
        Shape("callbacks-wide", (2.0, 5.0), callbacks=True),
        Shape("callbacks-signed", (0.9, 1.1), callbacks=True, signed=True),
    )
}
FLOOR = 2.0  # API calls per job without a list endpoint: its create and one query


@dataclass(frozen=True)
class SlotUse:
    """How a run used the provider's slots, from the simulator's task spans."""

    utilisation: float
    steady: float
    ceiling: float
    refill_idle: float  # seconds
    wall: float  # first create → last end, seconds
    calls_per_job: float
    client_seconds: float  # the client's own start → return (loading, downloads included)

    @classmethod
    def of(cls, spans: list[tuple[float, float]], slots: int, calls: int, client: float) -> SlotUse:
        spans = sorted(spans)
        first, last_create = spans[0][0], spans[-1][0]
        last_end = max(end for _, end in spans)
        busy = sum(end - start for start, end in spans)
        in_steady = sum(min(end, last_create) - start for start, end in spans)
        steady_wall = last_create - first
        creates = [start for start, _ in spans[slots:]]
        ends = sorted(end for _, end in spans)[: len(creates)]
        return cls(
            utilisation=busy / (slots * (last_end - first)),
            steady=in_steady / (slots * steady_wall) if steady_wall > 0 else 1.0,
            ceiling=ceiling([end - start for start, end in spans], slots),
            refill_idle=(sum(creates) - sum(ends)) / len(creates) if creates else 0.0,
            wall=last_end - first,
            calls_per_job=calls / len(spans),
            client_seconds=client,
        )


def ceiling(generations: list[float], slots: int) -> float:
    """Utilisation of a client that refills each slot the moment it frees, in the same order."""
    free = [0.0] * slots
    last_end = 0.0
    for generation in generations:
        end = heapq.heappop(free) + generation
        last_end = max(last_end, end)
        heapq.heappush(free, end)
    return sum(generations) / (slots * last_end)


def measured(url: str, slots: int, client_seconds: float) -> SlotUse:
    s = stats(url, tasks=True)
    spans = [(start, end) for start, end in s["task_spans"].values()]
    return SlotUse.of(spans, slots, s["requests_total"], client_seconds)


def run_batchgen(shape: Shape, folder: Path) -> SlotUse:
    with simulator_process(**simulator_config(shape)) as url:
        manifest = write_csv_manifest(folder, shape.jobs)
        extra: dict[str, Any] = {}
        if shape.callbacks:
            port = free_port()
            extra = {"callback_url": f"http://127.0.0.1:{port}/cb", "listen": f"127.0.0.1:{port}"}
        if shape.signed:
            extra["callback_secret"] = SecretStr(CALLBACK_SECRET)
        settings = run_settings(folder, url, shape.slots, **extra)
        started = time.monotonic()
        outcome = batchgen.run(manifest, settings)
        client = time.monotonic() - started
        assert outcome.exit_code == 0, outcome
        if shape.callbacks:
            print(f"    callbacks: {outcome.callbacks}")
        return measured(url, shape.slots, client)


def run_poller(shape: Shape, folder: Path) -> SlotUse:
    with simulator_process(**simulator_config(shape)) as url:
        bodies = request_bodies(write_csv_manifest(folder, shape.jobs))
        result = run_fixed_poller(url, bodies, shape.slots, POLL_INTERVAL, folder / "videos")
        use = measured(url, shape.slots, result.wall_seconds)
        if result.api_calls != round(use.calls_per_job * shape.jobs):
            print(f"    (the poller counted {result.api_calls} calls, the simulator otherwise)")
        return use


def simulator_config(shape: Shape) -> dict[str, Any]:
    return {
        "seed": SEED,
        "profile": "cometapi",
        "latency": shape.latency,
        "slots": shape.slots,
        **shape.simulator,
        **({"callback_secret": CALLBACK_SECRET} if shape.signed else {}),
    }


def report(shape: Shape, ours: SlotUse, base: SlotUse) -> None:
    ideal_wall = ours.wall * ours.utilisation / ours.ceiling
    print(f"  ceiling (every end seen at once) {ours.ceiling:.3f}, ideal wall {ideal_wall:.1f} s")
    report_utilisation(shape, ours, base)
    calls_target = report_calls(shape, ours, base)
    figure("  wall, first create to last end", ours.wall, "-", f"{base.wall:.1f} s", " s")
    client, base_client = ours.client_seconds, f"{base.client_seconds:.1f} s"
    figure("    the client's, load to last download", client, "-", base_client, " s")
    figure("  utilisation, batchgen / poller", ours.utilisation / base.utilisation, "> 1")
    figure("  utilisation, batchgen − poller", ours.utilisation - base.utilisation, ">= 0.03")
    calls = ours.calls_per_job / base.calls_per_job
    figure("  calls per job, batchgen / poller", calls, "-" if calls_target == "-" else "< 1")
    figure("  wall, batchgen / poller", ours.wall / base.wall, "-")


def report_utilisation(shape: Shape, ours: SlotUse, base: SlotUse) -> None:
    target = shape.targets.get("util", "poller + 0.03")
    poller = f"{base.utilisation:.3f} ({POLL_INTERVAL:g} s poller)"
    figure("  slot utilisation", ours.utilisation, target, poller)
    share = f"{base.utilisation / base.ceiling:.3f}"
    figure("    share of the ceiling", ours.utilisation / ours.ceiling, "-", share)
    figure("    steady part (first to last create)", ours.steady, "-", f"{base.steady:.3f}")
    figure("    refill idle per task", ours.refill_idle, "-", f"{base.refill_idle:.3f} s", " s")


def report_calls(shape: Shape, ours: SlotUse, base: SlotUse) -> str:
    """Print API calls per job; answers their target."""
    target = shape.targets.get("calls", "< poller's")
    figure("  API calls per job", ours.calls_per_job, target, f"{base.calls_per_job:.2f}")
    if target != "-" and base.calls_per_job <= FLOOR:
        print(f"    (out of reach: every job needs a create and a query, {FLOOR:.0f} calls)")
    return target


DEMO_LATENCY, DEMO_SLOTS = (1.0, 3.0), 4


def demo_first_wave(folder: Path, *, known: bool) -> tuple[float, float]:
    """(calls per job of the demo's first wave, of the whole demo run)."""
    config = {"seed": DEMO_SEED, "profile": "cometapi", "latency": DEMO_LATENCY}
    with simulator_process(**config, slots=DEMO_SLOTS) as url:
        settings = demo_settings(
            url, folder, "cometapi", DEMO_SLOTS, DEMO_LATENCY if known else None
        ).model_copy(update={"progress": "off"})
        assert batchgen.run(DEMO_MANIFEST, settings).exit_code == 0
        s = stats(url, tasks=True)
    first = sorted(s["task_spans"], key=lambda task: s["task_spans"][task][0])[:DEMO_SLOTS]
    queries = s["queries_by_task"]
    wave = sum(1 + queries.get(task, 0) for task in first) / len(first)
    return wave, s["requests_total"] / len(s["task_spans"])


def report_demo() -> None:
    print(f"demo: the packaged demo, {DEMO_SLOTS} slots, 1–3 s (load {os.getloadavg()[0]:.1f})")
    with tempfile.TemporaryDirectory() as ours, tempfile.TemporaryDirectory() as table:
        wave, run = demo_first_wave(Path(ours), known=True)
        base_wave, base_run = demo_first_wave(Path(table), known=False)
    figure("  first wave, API calls per job", wave, "<= 4", f"{base_wave:.2f} (table's start)")
    figure("  whole demo, API calls per job", run, "-", f"{base_run:.2f}")


def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(SHAPES) - {"demo"})
    if unknown:
        raise SystemExit(f"unknown shape {', '.join(unknown)}; shapes: {', '.join(SHAPES)}")
    print(f"batchgen beside a {POLL_INTERVAL:g} s per-task poller; simulator cometapi, seed {SEED}")
    for name in names or [*SHAPES, "demo"]:
        if name == "demo":
            report_demo()
            continue
        shape = SHAPES[name]
        load = os.getloadavg()[0]
        print(f"{shape.describe()} (load {load:.1f} on {os.cpu_count()} cores)", flush=True)
        with tempfile.TemporaryDirectory() as ours_dir, tempfile.TemporaryDirectory() as base_dir:
            ours = run_batchgen(shape, Path(ours_dir))
            base = run_poller(shape, Path(base_dir))
        report(shape, ours, base)


if __name__ == "__main__":
    main(sys.argv[1:])
