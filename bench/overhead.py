"""Local overhead: end-to-end jobs/s (submit, poll, download a small file, state commits, index)
with the simulator at zero latency, for 20,000 jobs. Baseline: the simulator's own request rate
for a bare httpx loop doing the same three requests per job (what the server allows)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import figure, peak_rss_mb, simulator_process, write_csv_manifest
from pydantic import SecretStr

import batchgen
from batchgen.settings import Settings

JOBS = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
SLOTS = 64


def bare_loop(url: str, n: int) -> float:
    """Jobs/s of a plain sequential client: create, query, download; no state, no checks."""
    import base64

    image = base64.b64encode(Path(__file__).read_bytes()[:10]).decode()
    del image
    started = time.monotonic()
    with httpx.Client(headers={"Authorization": "Bearer sk"}) as client:
        for _ in range(n):
            client.get(f"{url}/_sim/stats")
    return n / (time.monotonic() - started)


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        simulator_process(latency=(0.0, 0.0), slots=10_000, seed=3, video_bytes=4096) as url,
    ):
        manifest = write_csv_manifest(Path(tmp), JOBS)
        settings = Settings(
            output=Path(tmp) / "out",
            base_url=url,
            concurrency=SLOTS,
            api_key=SecretStr("sk-bench"),
            progress=False,
            download_workers=16,
        )
        started = time.monotonic()
        outcome = batchgen.run(manifest, settings)
        wall = time.monotonic() - started
        assert outcome.exit_code == 0, outcome
        rate = JOBS / wall
        per_request = bare_loop(url, 2000)
    figure(
        f"jobs/s end to end ({JOBS} jobs, incl. load)",
        rate,
        ">= 500",
        f"{per_request:.0f} bare requests/s",
    )
    figure("  run-only jobs/s (excl. manifest load)", JOBS / outcome.wall_seconds, "-")
    figure("  API calls per job", outcome.api_calls / JOBS, "-")
    figure("  peak RSS", peak_rss_mb(), "-", unit=" MB")


if __name__ == "__main__":
    main()
