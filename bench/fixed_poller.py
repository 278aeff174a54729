"""The baseline of bench/poll_shapes.py: a hand-written client as a user would write one in an
afternoon. One worker per slot submits a job, asks about its task every `interval` seconds
(one GET per task: CometAPI has no task list), and, once the task has succeeded, hands the
video to a download worker and submits the next job at once. It counts every API request it
sends; downloads are not API requests.

No state, no retries beyond waiting out a throttle: the simulator here injects no faults.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROUTE = "/kling/v1/videos/image2video"  # CometAPI's
DOWNLOAD_WORKERS = 4  # batchgen's default


@dataclass(frozen=True, slots=True)
class PollerResult:
    api_calls: int
    wall_seconds: float  # its start to the last video written


def request_bodies(manifest: Path) -> list[dict[str, Any]]:
    """The create bodies of a bench CSV manifest (common.write_csv_manifest), images inline."""
    lines = manifest.read_text().splitlines()[1:]
    images: dict[str, str] = {}
    bodies = []
    for line in lines:
        _, image, prompt, model, duration = line.split(",")
        if image not in images:
            images[image] = base64.b64encode((manifest.parent / image).read_bytes()).decode()
        bodies.append(
            {"model_name": model, "image": images[image], "prompt": prompt, "duration": duration}
        )
    return bodies


def run_fixed_poller(
    url: str, bodies: list[dict[str, Any]], slots: int, interval: float, out: Path
) -> PollerResult:
    """Submit every body into `slots` slots, polling each task every `interval` seconds."""
    poller = FixedPoller(url, slots, interval, out)
    started = time.monotonic()
    asyncio.run(poller.run(deque(bodies)))
    return PollerResult(poller.calls, time.monotonic() - started)


class FixedPoller:
    def __init__(self, url: str, slots: int, interval: float, out: Path) -> None:
        self.url = url
        self.slots = slots
        self.interval = interval
        self.out = out
        self.calls = 0

    async def run(self, bodies: deque[dict[str, Any]]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        videos: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()
        headers = {"authorization": "Bearer sk-bench"}
        async with (
            httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30) as api,
            httpx.AsyncClient(timeout=120) as files,
        ):
            downloads = [
                asyncio.create_task(self._download(files, videos)) for _ in range(DOWNLOAD_WORKERS)
            ]
            await asyncio.gather(*(self._slot(api, bodies, videos) for _ in range(self.slots)))
            for _ in downloads:
                videos.put_nowait(None)
            await asyncio.gather(*downloads)

    async def _slot(
        self,
        api: httpx.AsyncClient,
        bodies: deque[dict[str, Any]],
        videos: asyncio.Queue[tuple[str, str] | None],
    ) -> None:
        while bodies:
            task_id = await self._create(api, bodies.popleft())
            videos.put_nowait((task_id, await self._follow(api, task_id)))

    async def _create(self, api: httpx.AsyncClient, body: dict[str, Any]) -> str:
        while True:
            self.calls += 1
            answer = await api.post(ROUTE, json=body)
            if answer.status_code != 429:
                answer.raise_for_status()
                return str(answer.json()["data"]["task_id"])
            await asyncio.sleep(self.interval)

    async def _follow(self, api: httpx.AsyncClient, task_id: str) -> str:
        """Poll until the task has ended; its video URL."""
        while True:
            await asyncio.sleep(self.interval)
            self.calls += 1
            answer = await api.get(f"{ROUTE}/{task_id}")
            answer.raise_for_status()
            task = answer.json()["data"]
            if task["task_status"] == "failed":
                raise RuntimeError(f"task {task_id} failed: {task['task_status_msg']}")
            if task["task_status"] == "succeed":
                return str(task["task_result"]["videos"][0]["url"])

    async def _download(
        self, files: httpx.AsyncClient, videos: asyncio.Queue[tuple[str, str] | None]
    ) -> None:
        while (item := await videos.get()) is not None:
            task_id, video_url = item
            answer = await files.get(video_url)
            answer.raise_for_status()
            (self.out / f"{task_id}.mp4").write_bytes(answer.content)
