"""Downloads: a 100 MB video from the simulator through batchgen's downloader (stream to .part,
sha256 while streaming, writeback started as it comes, one fsync, rename) against `curl -o` of
the same URL, in the same run, best of three each. Memory: the downloader's peak RSS for a 10 MB
and a 100 MB file, each in a fresh process, should be the same.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import figure, simulator_process, write_csv_manifest

MB = 2**20
TRIES = 3
DOWNLOADER = """
import sys, time, anyio, httpx
from pathlib import Path
from batchgen import download as module
from batchgen.pipeline import run_async
from batchgen.wire import download_client

durable = [0.0]
def timed(fn):
    def wrapper(*args):
        started = time.monotonic()
        try:
            return fn(*args)
        finally:
            durable[0] += time.monotonic() - started
    return wrapper
module._sync_fd, module._install = timed(module._sync_fd), timed(module._install)

async def main(url, dest):
    async with download_client(httpx.Timeout(120), 1) as client:
        started, cpu = time.monotonic(), time.process_time()
        result = await module.download(client, url, Path(dest))
        print(time.monotonic() - started, result.size, durable[0], time.process_time() - cpu)

run_async(main, sys.argv[1], sys.argv[2])  # the event loop batchgen runs on (uvloop if there)
"""


def video_url(url: str, image: Path) -> str:
    """Create one task and wait for its video URL."""
    import base64

    headers = {"Authorization": "Bearer sk-bench"}
    body = {"model_name": "kling-v2-master", "image": base64.b64encode(image.read_bytes()).decode()}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        task_id = client.post("/kling/v1/videos/image2video", json=body).json()["data"]["task_id"]
        while True:
            data = client.get(f"/kling/v1/videos/image2video/{task_id}").json()["data"]
            if data["task_status"] == "succeed":
                return str(data["task_result"]["videos"][0]["url"])
            time.sleep(0.05)


def ours(url: str, dest: Path) -> tuple[float, int, float, float, float]:
    """(seconds, bytes, peak RSS MB, seconds of fsync + rename, CPU seconds: its threads') of
    one download in a fresh process."""
    proc = subprocess.Popen(
        [sys.executable, "-c", DOWNLOADER, url, str(dest)], stdout=subprocess.PIPE, text=True
    )
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    seconds, size, durable, cpu = out.split()
    return float(seconds), int(size), usage.ru_maxrss / 1024, float(durable), float(cpu)


def curl(url: str, dest: Path) -> tuple[float, int, float]:
    """(seconds, bytes, CPU seconds) of `curl -o`."""
    started = time.monotonic()
    proc = subprocess.Popen(["curl", "-sS", "-o", str(dest), url])
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return time.monotonic() - started, dest.stat().st_size, usage.ru_utime + usage.ru_stime


def sha256_cpu(size: int) -> float:
    """CPU seconds hashlib's sha256 takes over `size` bytes in 1 MB pieces (what the
    downloader does to every byte and curl does not)."""
    piece = os.urandom(MB)
    digest, started = hashlib.sha256(), time.process_time()
    for _ in range(size // MB):
        digest.update(piece)
    return time.process_time() - started


def main() -> None:
    if shutil.which("curl") is None:
        sys.exit("curl is not installed: the baseline needs it")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_csv_manifest(folder, 1)
        image = folder / "images" / "0.png"
        results = {}
        for size_mb in (10, 100):
            with simulator_process(latency=(0, 0), slots=4, video_bytes=size_mb * MB) as url:
                link = video_url(url, image)
                runs = [ours(link, folder / f"ours-{i}.mp4") for i in range(TRIES)]
                curls = [curl(link, folder / f"curl-{i}.mp4") for i in range(TRIES)]
            best = min(runs)
            best_curl = min(curls)
            assert best[1] == best_curl[1], (best, best_curl)
            results[size_mb] = (best, best_curl, max(r[2] for r in runs))
    (seconds, size, _, durable, cpu), (curl_seconds, _, curl_cpu), rss_100 = results[100]
    rss_10 = results[10][2]
    ours_mbs, curl_mbs = size / MB / seconds, size / MB / curl_seconds
    figure("100 MB download, batchgen", ours_mbs, "-", unit=" MB/s")
    figure("100 MB download, ratio to curl", ours_mbs / curl_mbs, ">= 0.85", f"{curl_mbs:.0f} MB/s")
    figure("  of its time, fsync + rename (curl does neither)", durable / seconds, "-")
    per_100 = 100 * MB / size * 1000
    curl_note = f"{curl_cpu * per_100:.0f} ms (curl)"
    figure("  CPU per 100 MB, its threads", cpu * per_100, "-", curl_note, " ms")
    hashing = sha256_cpu(size) * per_100
    figure("    sha256 of as many bytes, alone (curl: none)", hashing, "-", unit=" ms")
    rss_note = f"{rss_10:.0f} MB (10 MB file)"
    figure("peak RSS of the downloader, 100 MB file", rss_100, "-", rss_note, " MB")
    figure("  ratio of RSS 100 MB / 10 MB", rss_100 / rss_10, "~1.0")


if __name__ == "__main__":
    main()
