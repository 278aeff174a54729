"""Shared pieces of the benchmarks: a simulator in its own process, manifests, figures."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
from PIL import Image
from pydantic import SecretStr

from batchgen.settings import Settings

# A bench's runs (its child processes too) keep their account ledger apart from the user's.
os.environ["BATCHGEN_LEDGER"] = str(Path(tempfile.mkdtemp(prefix="bench-")) / "ledger.sqlite")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def simulator_process(**config: Any) -> Iterator[str]:
    """A simulator in a child process (so it does not share the client's GIL); yields its URL."""
    port = free_port()
    code = (
        "import json, sys\n"
        "from batchgen.simulator import SimulatorConfig, serve\n"
        "cfg = json.loads(sys.argv[1])\n"
        "cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}\n"
        "serve(SimulatorConfig(**cfg), host='127.0.0.1', port=int(sys.argv[2]))\n"
    )
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(config), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        try:
            _wait_until_serving(proc, url, errors)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _wait_until_serving(proc: subprocess.Popen[bytes], url: str, errors: IO[bytes]) -> None:
    """Until the simulator answers; RuntimeError with its last words if it exits first."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            errors.seek(0)
            last = errors.read().decode(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"simulator exited at start: {' '.join(last)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/_sim/stats", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("simulator did not start")


def stats(url: str, *, tasks: bool = False) -> dict[str, Any]:
    """The simulator's counters; with `tasks`, also `task_spans` {task_id: [created, ends]}."""
    query = "?tasks=1" if tasks else ""
    value: dict[str, Any] = httpx.get(f"{url}/_sim/stats{query}", timeout=30).json()
    return value


def write_csv_manifest(folder: Path, rows: int, *, images: int = 4, name: str = "bench") -> Path:
    """A CSV manifest of `rows` distinct jobs sharing a few small images."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    for i in range(images):
        Image.new("RGB", (320, 320), (60 * i % 256, 120, 200)).save(folder / "images" / f"{i}.png")
    path = folder / f"{name}.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "image", "prompt", "model_name", "duration"])
        writer.writerows(_csv_rows(range(rows), images))
    return path


def grow_csv_manifest(path: Path, rows: int, more: int, *, images: int = 4) -> None:
    """Append `more` rows to a manifest `write_csv_manifest` wrote with `rows` rows."""
    with open(path, "a", newline="") as f:
        csv.writer(f).writerows(_csv_rows(range(rows, rows + more), images))


def _csv_rows(numbers: range, images: int) -> Iterator[list[str]]:
    for i in numbers:
        yield [f"r{i}", f"images/{i % images}.png", f"prompt {i}", "kling-v2-master", "5"]


# The simulator's `profile="kling"` (Kling's own API: task list, look-ups by external id) takes
# a JWT made from these; `profile="cometapi"` (the default) takes any bearer key.
KLING_CREDENTIALS: dict[str, Any] = {
    "provider": "kling",
    "access_key": SecretStr("sim-access"),
    "secret_key": SecretStr("sim-secret"),
}


def run_settings(folder: Path, url: str, concurrency: int, **extra: Any) -> Settings:
    """Settings of a benchmark run against the simulator at `url`, writing under `folder`."""
    return Settings(
        output=folder / "out",
        base_url=url,
        concurrency=concurrency,
        api_key=SecretStr("sk-bench"),
        progress="off",
        **extra,
    )


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def figure(name: str, value: float, target: str, baseline: str = "", unit: str = "") -> None:
    """Print one benchmark figure with its target (and a baseline, where there is one)."""
    line = f"{name:<44} {value:>10.3f}{unit:<6} target {target}"
    if baseline:
        line += f"   baseline {baseline}"
    print(line, flush=True)


def env_without_key() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "COMETAPI_KEY"}
