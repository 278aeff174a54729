"""Local overhead: end-to-end jobs/s (submit, poll, download a small file, probe + QA it, state
commits, index) with the simulator at zero latency, for 20,000 jobs. Baseline: a bare async
httpx client doing the same create / query / download for as many jobs with the same
concurrency and nothing else, on the same event loop (uvloop where installed), first, against
a new simulator of its own: what the simulator and loopback allow on this machine, and the CPU
the network client alone costs a job.

    ratio          batchgen jobs/s / the bare client's
    CPU per job    batchgen's process (threads included; QA worker processes, where the run
                   has them, added) / jobs; and less the bare client's CPU per job: our own
                   overhead, beside the network client's; that split into the QA workers'
                   (the probe decodes each clip's I/P frames) and the run's process's own
    the cores      the simulator's CPU per job in each run (it shares the machine); how many
                   cores the bare client's process and the run's process kept busy (CPU per
                   job x jobs/s): where the bare client's is 1, its one event loop is what
                   limits it, and a run as bound to one core could reach the ratio of their
                   CPU per job at most (the run's threads write and sync files beside its
                   loop, so it may pass it by a little)

The run's account ledger is a temporary file (common.py), not the user's."""

from __future__ import annotations

import base64
import importlib.util
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import httpx
from common import (
    figure,
    peak_rss_mb,
    run_settings,
    simulator_process,
    stats,
    write_csv_manifest,
)

import batchgen

ARGS = [arg for arg in sys.argv[1:] if not arg.startswith("--qa=")]
JOBS = int(ARGS[0]) if ARGS else 20_000
QA = next((arg[5:] for arg in sys.argv[1:] if arg.startswith("--qa=")), "full")  # as --qa
SLOTS = 64
LOOP = {"use_uvloop": True} if importlib.util.find_spec("uvloop") else {}  # as batchgen's run


def server_cpu_seconds(url: str) -> float:
    """The simulator process's CPU time so far (its threads included)."""
    return float(stats(url)["process_cpu_seconds"])


def cpu_seconds() -> float:
    """CPU of this process and of its children that have ended (QA worker processes)."""
    return own_cpu_seconds() + children_cpu_seconds()


def own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def children_cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


def bare_client(
    url: str, image_paths: list[Path], n: int, workers: int = SLOTS
) -> tuple[float, float]:
    """Jobs/s and CPU seconds a job of a bare async client against the same simulator:
    create, query until done, download; no state, no checks, no index. What the server and
    loopback allow."""
    images = [base64.b64encode(path.read_bytes()).decode() for path in image_paths]

    async def one(client: httpx.AsyncClient, i: int) -> None:
        image = images[i % len(images)]  # as the manifest's rows take them: the same renders
        body = {"model_name": "kling-v2-master", "image": image, "prompt": f"bare {i}"}
        answer = await client.post(f"{url}/kling/v1/videos/image2video", json=body)
        task_id = answer.json()["data"]["task_id"]
        while True:
            data = (await client.get(f"{url}/kling/v1/videos/image2video/{task_id}")).json()
            if data["data"]["task_status"] == "succeed":
                break
        video = data["data"]["task_result"]["videos"][0]["url"]
        await client.get(video)

    async def main() -> float:
        jobs = iter(range(n))
        limits = httpx.Limits(max_connections=workers)
        headers = {"Authorization": "Bearer sk-bench"}
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as client:

            async def worker() -> None:
                for i in jobs:
                    await one(client, i)

            started = time.monotonic()
            async with anyio.create_task_group() as tg:
                for _ in range(workers):
                    tg.start_soon(worker)
            return n / (time.monotonic() - started)

    cpu_before = cpu_seconds()
    rate = anyio.run(main, backend_options=LOOP)
    return rate, (cpu_seconds() - cpu_before) / n


SIMULATOR = {"latency": (0.0, 0.0), "slots": 10_000, "seed": 3, "video_bytes": 4096}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_csv_manifest(Path(tmp), JOBS)
        # Each client against a simulator of its own, new, for the same number of jobs: the
        # server's work grows with the tasks it holds, and neither gets the other's leftovers.
        with simulator_process(**SIMULATOR) as url:
            server_before = server_cpu_seconds(url)
            images = sorted((Path(tmp) / "images").glob("*.png"), key=lambda p: int(p.stem))
            bare, bare_cpu = bare_client(url, images, JOBS)
            bare_server = (server_cpu_seconds(url) - server_before) / JOBS
        with simulator_process(**SIMULATOR) as url:
            settings = run_settings(Path(tmp), url, SLOTS, download_workers=16, qa=QA)
            server_before = server_cpu_seconds(url)
            started, cpu_before = time.monotonic(), cpu_seconds()
            checks_before = children_cpu_seconds()
            outcome = batchgen.run(manifest, settings)
            wall, cpu = time.monotonic() - started, cpu_seconds() - cpu_before
            checks = children_cpu_seconds() - checks_before
            server = (server_cpu_seconds(url) - server_before) / JOBS
        assert outcome.exit_code == 0, outcome
        rate = JOBS / wall
    figure(
        f"jobs/s end to end ({JOBS} jobs, incl. load, --qa {QA})",
        rate,
        ">= 500",
        f"{bare:.0f} jobs/s (bare client, a simulator alike)",
    )
    figure("  ratio to the bare client", rate / bare, ">= 0.9")
    figure("  run-only jobs/s (excl. manifest load)", JOBS / outcome.wall_seconds, "-")
    per_job = cpu / JOBS * 1000
    figure(
        "  batchgen CPU per job",
        per_job,
        "-",
        f"{bare_cpu * 1000:.2f} ms (bare client)",
        unit=" ms",
    )
    figure(
        "  our own CPU per job (less the bare client's)",
        per_job - bare_cpu * 1000,
        "<= 3",
        unit=" ms",
    )
    figure("    of which the QA workers' (probe + QA)", checks / JOBS * 1000, "-", unit=" ms")
    figure(
        "    of which the run's process, less the bare client's",
        (cpu - checks) / JOBS * 1000 - bare_cpu * 1000,
        "-",
        unit=" ms",
    )
    figure("  jobs/s batchgen could do on one free core", JOBS / cpu, ">= 500")
    # Where the bare client keeps one core busy, its one event loop is its limit; a run held
    # to one core the same way could reach the ratio of their CPU per job, no more.
    note = f"{bare_server * 1000:.2f} ms (bare client's run)"
    figure("  the simulator's CPU per job", server * 1000, "-", note, unit=" ms")
    figure("  cores the bare client's process kept busy", bare * bare_cpu, "-")
    process = (cpu - checks) / JOBS
    figure("  cores batchgen's process kept busy", rate * process, "-")
    at_most = bare_cpu / process
    figure("  ratio one core allows (bare CPU per job / the run process's)", at_most, "-")
    figure("  API calls per job", outcome.api_calls / JOBS, "-")
    figure("  peak RSS", peak_rss_mb(), "-", unit=" MB")


if __name__ == "__main__":
    main()
