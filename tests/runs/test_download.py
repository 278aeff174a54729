"""The downloader against the simulator's real video URLs: exact bytes and digest, nothing left
behind when it gives up, expired URLs told apart."""

from __future__ import annotations

import base64
import hashlib
import time

import anyio
import httpx
import pytest

from batchgen.download import PART_SUFFIX, download
from batchgen.errors import RetryableError, UrlExpired
from batchgen.wire import download_client
from tests.conftest import make_images, simulator


def video_url(base_url: str, image: bytes) -> str:
    headers = {"Authorization": "Bearer sk-test"}
    body = {"model_name": "kling-v2-master", "image": base64.b64encode(image).decode()}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        task_id = client.post("/kling/v1/videos/image2video", json=body).json()["data"]["task_id"]
        for _ in range(200):
            data = client.get(f"/kling/v1/videos/image2video/{task_id}").json()["data"]
            if data["task_status"] == "succeed":
                return str(data["task_result"]["videos"][0]["url"])
            time.sleep(0.05)
    raise AssertionError("the task did not finish")


def fetch(url: str, dest):
    async def go():
        async with download_client(httpx.Timeout(30), 4) as client:
            return await download(client, url, dest)

    return anyio.run(go)


@pytest.fixture
def image(tmp_path):
    return (tmp_path / make_images(tmp_path / "images", 1)[0]).read_bytes()


def test_a_large_video_arrives_byte_for_byte_with_its_digest(tmp_path, image):
    with simulator(video_bytes=5 * 2**20) as sim:
        url = video_url(sim.base_url, image)
        expected = httpx.get(url).content
        result = fetch(url, tmp_path / "out" / "v.mp4")
    assert (tmp_path / "out" / "v.mp4").read_bytes() == expected
    assert result.sha256 == hashlib.sha256(expected).hexdigest()
    assert result.size == len(expected) > 5 * 2**20 - 1024
    assert not list((tmp_path / "out").glob(f"*{PART_SUFFIX}"))


def test_the_download_client_takes_a_video_off_the_socket_in_pieces_past_64_kib(image):
    """httpcore alone reads 64 KiB at a time; the download client's reads are wider (wire.py),
    and the bytes are the same."""

    async def chunks(url: str) -> list[bytes]:
        async with (
            download_client(httpx.Timeout(30), 1) as client,
            client.stream("GET", url) as response,
        ):
            return [chunk async for chunk in response.aiter_raw()]

    with simulator(video_bytes=8 * 2**20) as sim:
        url = video_url(sim.base_url, image)
        expected = httpx.get(url).content
        got = anyio.run(chunks, url)
    assert b"".join(got) == expected
    assert max(map(len, got)) > 64 * 1024


def test_downloads_always_cut_short_give_up_leaving_nothing(tmp_path, image):
    with simulator(video_bytes=2**20) as sim:
        url = video_url(sim.base_url, image)
        sim.reconfigure(truncate_rate=1.0)
        with pytest.raises(RetryableError):
            fetch(url, tmp_path / "v.mp4")
    assert list(tmp_path.glob("v.mp4*")) == []


def test_an_expired_url_is_told_apart_from_a_failure(tmp_path, image):
    with simulator(url_ttl=0.2) as sim:
        url = video_url(sim.base_url, image)
        time.sleep(0.4)
        with pytest.raises(UrlExpired):
            fetch(url, tmp_path / "v.mp4")
    assert list(tmp_path.glob("v.mp4*")) == []


def test_downloads_cut_short_are_resumed_to_the_exact_bytes(tmp_path, image):
    with simulator(video_bytes=2**20) as sim:
        url = video_url(sim.base_url, image)
        expected = httpx.get(url).content
        sim.reconfigure(truncate_rate=0.5)
        for i in range(6):
            dest = tmp_path / f"v{i}.mp4"
            try:
                result = fetch(url, dest)
            except RetryableError:
                continue
            assert dest.read_bytes() == expected
            assert result.sha256 == hashlib.sha256(expected).hexdigest()
        assert sim.stats()["faults"]["truncate"] > 0


class _StalledBody(httpx.AsyncByteStream):
    """A body that sends `sent` bytes of a larger video, then waits forever."""

    def __init__(self, sent: int) -> None:
        self.sent = sent

    async def __aiter__(self):
        yield b"\x00\x00\x00\x20ftypisom" + bytes(self.sent - 12)
        await anyio.sleep_forever()


def test_a_download_cut_by_an_interrupt_leaves_the_earlier_file_and_no_part(tmp_path):
    """Cancelled with bytes written (Ctrl-C, a deadline), nothing replaces what `dest` held and
    no `.part` stays behind."""
    dest = tmp_path / "v.mp4"
    dest.write_bytes(b"the earlier video")
    body = _StalledBody(9 * 2**20)  # past a batch: some bytes are on disk when it stalls

    def stalled(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-length": str(2**30)}, stream=body)

    async def go() -> None:
        transport = httpx.MockTransport(stalled)
        async with (
            httpx.AsyncClient(transport=transport) as client,
            anyio.create_task_group() as group,
        ):
            group.start_soon(download, client, "http://cdn.test/v.mp4", dest)
            while not any(p.stat().st_size for p in tmp_path.glob(f"*{PART_SUFFIX}")):
                await anyio.sleep(0.01)
            group.cancel_scope.cancel()

    anyio.run(go)
    assert dest.read_bytes() == b"the earlier video"
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]
