"""Probe + QA cost per video: CPU, share of its download's time, and throughput over cores.

Three videos: the simulator's own (256 px, 8 fps, 5 s), and a 720p and a 1080p 24 fps 5 s
H.264 clip made here with the bitrate of real generations (~5 and ~13 MB; libx264 `veryfast`,
so B-frames and one keyframe). Each is downloaded over loopback with batchgen's downloader
(stream to .part, sha256, fsync, rename) and then checked as the runner checks it
(`check_video`: the I/P frames decoded, 16 sampled thumbnails, the QA rules), median of TRIES
each, and as `--qa keyframes` checks it (the keyframes alone: these clips have one each).
Loopback is the fastest a download can be, so the share printed is the most the probe can
cost; the break-even rate is the download speed (per worker) below which the probe takes less
time than the download.

CPU: the process's CPU time for one check, beside the same probe decoding every frame (what
the probe did before B-frames were skipped), measured here in the same run. Throughput: 4 × N
checks of the 1080p clip through `CheckWorkers` with 1 and with N = os.cpu_count() worker
processes (each pool warmed first), clips per second as a ratio.
"""

from __future__ import annotations

import base64
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anyio
import av
import httpx
from common import figure, free_port, simulator_process, write_csv_manifest
from PIL import Image

from batchgen.download import download
from batchgen.media import CheckWorkers, Expected, check_video, findings, probe_video
from batchgen.pipeline import run_async
from batchgen.wire import download_client

TRIES = 5
MB = 2**20


def real_clip(path: Path, width: int, height: int, seconds: int = 5, fps: int = 24) -> None:
    """A panning textured picture with film grain: about the bitrate of a real generation."""
    size = (int(width * 1.3), int(height * 1.3))
    texture = Image.effect_noise((width // 8, height // 8), 80).convert("RGB").resize(size)
    fractal = Image.effect_mandelbrot(size, (-2, -1.2, 1, 1.2), 80).convert("RGB")
    base = Image.blend(texture, fractal, 0.5)
    grain = [Image.effect_noise((width, height), 60).convert("RGB") for _ in range(3)]
    frames = seconds * fps
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "22"}
        for i in range(frames):
            x, y = int(i / frames * 0.27 * width), int(i / frames * 0.15 * height)
            picture = Image.blend(base.crop((x, y, x + width, y + height)), grain[i % 3], 0.12)
            container.mux(stream.encode(av.VideoFrame.from_image(picture)))
        container.mux(stream.encode(None))


def simulator_video_url(url: str, image: Path) -> str:
    headers = {"Authorization": "Bearer sk-bench"}
    body = {"model_name": "kling-v2-master", "image": base64.b64encode(image.read_bytes()).decode()}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        task_id = client.post("/kling/v1/videos/image2video", json=body).json()["data"]["task_id"]
        while True:
            data = client.get(f"/kling/v1/videos/image2video/{task_id}").json()["data"]
            if data["task_status"] == "succeed":
                return str(data["task_result"]["videos"][0]["url"])
            time.sleep(0.05)


def median_seconds(
    action: Callable[[], object], clock: Callable[[], float] = time.perf_counter
) -> float:
    times = []
    for _ in range(TRIES):
        started = clock()
        action()
        times.append(clock() - started)
    return statistics.median(times)


def every_frame_check(path: Path, expected: Expected) -> None:
    """The check as it was: the probe decoding every frame, then the QA rules."""
    findings(probe_video(path, decode="all"), expected)


def timed_download(url: str, dest: Path) -> float:
    async def fetch() -> None:
        async with download_client(httpx.Timeout(120), 1) as client:
            await download(client, url, dest)

    return median_seconds(lambda: run_async(fetch))


def measure(name: str, url: str, dest: Path, aspect: float) -> None:
    fetch = timed_download(url, dest)
    expected = Expected(duration_s=5.0, aspect=aspect)
    probe = median_seconds(lambda: check_video(dest, expected))
    check = check_video(dest, expected)
    found = check.probe
    assert found.decoded + found.skipped == found.frames > 0 and not check.findings, check
    size = dest.stat().st_size / MB
    baseline = f"download {fetch * 1000:.1f} ms ({size:.2f} MB over loopback)"
    figure(f"{name}: probe + QA, share of download time", probe / fetch, "-", baseline)
    figure("  probe + QA per video", probe * 1000, "-", unit=" ms")
    figure("  break-even download speed per worker", size / probe, "-", unit=" MB/s")
    cpu = median_seconds(lambda: check_video(dest, expected), time.process_time)
    before = median_seconds(lambda: every_frame_check(dest, expected), time.process_time)
    every = f"every frame decoded {before * 1000:.0f} ms"
    figure("  probe + QA CPU per video", cpu * 1000, "<= 150 (1080p)", every, " ms")
    figure("  ratio of CPU to every frame decoded", cpu / before, "<= 0.21 (150/705)")
    keyframes = median_seconds(lambda: check_video(dest, expected, "keyframes"), time.process_time)
    decoded = check_video(dest, expected, "keyframes").probe.decoded
    note = f"{decoded} of {found.frames} frames decoded; I/P: {found.decoded}"
    figure("  the same with --qa keyframes", keyframes * 1000, "<= 150 (1080p)", note, " ms")


def throughput(path: Path, expected: Expected, processes: int) -> tuple[float, float]:
    """Clips checked per second by `processes` worker processes, 4 per process in flight, and
    the cores the workers kept busy meanwhile (their CPU time over the wall time: on a machine
    others share, fewer than `processes`)."""

    async def check_all() -> tuple[float, float]:
        async with CheckWorkers(processes) as workers:
            async with anyio.create_task_group() as group:  # warm: every worker started
                for _ in range(processes):
                    group.start_soon(workers.check, path, expected)
            started, cpu = time.perf_counter(), children_cpu()
            async with anyio.create_task_group() as group:
                for _ in range(4 * processes):
                    group.start_soon(workers.check, path, expected)
            wall = time.perf_counter() - started
        # The workers' CPU is counted once they are reaped (the block's end), their start-up
        # (an interpreter and PyAV's import, a fraction of a check) included; the warm-up
        # checks are taken out as one check's CPU per process.
        busy = children_cpu() - cpu - processes * check_cpu(path, expected)
        return 4 * processes / wall, busy / wall

    return run_async(check_all)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check_cpu(path: Path, expected: Expected) -> float:
    started = time.process_time()
    check_video(path, expected)
    return time.process_time() - started


def scaling(path: Path) -> None:
    expected = Expected(duration_s=5.0, aspect=16 / 9)
    cores = os.cpu_count() or 1
    (one, one_busy), (many, many_busy) = (throughput(path, expected, n) for n in (1, cores))
    baseline = f"{one:.2f} clips/s with 1 process"
    figure(f"1080p checks/s, {cores} worker processes", many, "-", baseline)
    figure(f"  ratio {cores} processes / 1", many / one, f"~{cores}")
    busy = f"{one_busy:.2f} with 1 process"
    figure(f"  cores the {cores} workers kept busy", many_busy, f"~{cores}", busy)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_csv_manifest(folder, 1)
        served = folder / "served"
        served.mkdir()
        real_clip(served / "720p.mp4", 1280, 720)
        real_clip(served / "1080p.mp4", 1920, 1080)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "-b", "127.0.0.1", "-d", str(served)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with simulator_process(latency=(0, 0), slots=4) as url:
                link = simulator_video_url(url, folder / "images" / "0.png")
                measure("simulator 256 px, 5 s", link, folder / "sim.mp4", 1.0)
            time.sleep(0.5)  # http.server binds while the simulator run went on
            for name in ("720p", "1080p"):
                clip = f"http://127.0.0.1:{port}/{name}.mp4"
                measure(f"{name} 24 fps, 5 s", clip, folder / f"{name}.mp4", 16 / 9)
            scaling(folder / "1080p.mp4")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
