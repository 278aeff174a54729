"""The Kling simulator, spoken to over real loopback HTTP as batchgen's client would: what both
profiles share (task lifecycle, videos, faults, validation, settings). Helpers here are shared
by the other test_simulator_*.py files."""

from __future__ import annotations

import base64
import io
import random
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import httpx
import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.warnings import InsecureKeyLengthWarning
from PIL import Image, ImageChops, ImageStat

from batchgen.simulator import SimulatorConfig, SimulatorHandle, running_simulator, serve
from batchgen.simulator.library import fetch_loopback, is_loopback_url
from batchgen.simulator.tasks import NewTask, TaskBook
from batchgen.simulator.video import CHUNK, FPS, padded

COMETAPI_PATH = "/kling/v1/videos/image2video"
KLING_PATH = "/v1/videos/image2video"
KEY = {"Authorization": "Bearer sk-test"}
FAST = {"seed": 1, "latency": (0.05, 0.1), "slots": 8}


def png(size: tuple[int, int] = (480, 320), colour: tuple[int, int, int] = (40, 90, 160)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


IMAGE = base64.b64encode(png()).decode()
BAD_IMAGE = base64.b64encode(png((200, 200))).decode()  # too small: accepted, then fails


def token(
    access: str = "sim-access",
    secret: str = "sim-secret",
    expires_in: float = 1800,
    not_before: float = -5,
) -> str:
    """A Kling JWT as §1 builds it (the default secret is a short test value PyJWT warns of)."""
    now = time.time()
    claims = {"iss": access, "exp": int(now + expires_in), "nbf": int(now + not_before)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})


def credentials(profile: str) -> dict[str, str]:
    """The Authorization header a profile accepts with its default settings."""
    return KEY if profile == "cometapi" else {"Authorization": f"Bearer {token()}"}


@dataclass
class Api:
    """A running simulator and an httpx client holding the credentials its profile takes."""

    sim: SimulatorHandle
    client: httpx.Client

    @property
    def path(self) -> str:
        return self.sim.api_path

    def create(self, **fields: Any) -> httpx.Response:
        return self.client.post(self.path, json={"image": IMAGE, "prompt": "a slow pan", **fields})

    def task_id(self, **fields: Any) -> str:
        return str(self.create(**fields).json()["data"]["task_id"])

    def get(self, key: str) -> httpx.Response:
        return self.client.get(f"{self.path}/{key}")

    def wait_until_done(self, task_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data: dict[str, Any] = self.get(task_id).json()["data"]
            if data["task_status"] in ("succeed", "failed"):
                return data
            time.sleep(0.02)
        raise AssertionError(f"task {task_id} did not finish")

    def video_url(self, **fields: Any) -> str:
        done = self.wait_until_done(self.task_id(**fields))
        return str(done["task_result"]["videos"][0]["url"])

    def stats(self) -> dict[str, Any]:
        return self.sim.stats()


@contextmanager
def api(**overrides: Any) -> Iterator[Api]:
    """A simulator with FAST settings and `overrides`, and a client for it."""
    config = SimulatorConfig(**{**FAST, **overrides})
    with (
        running_simulator(config) as sim,
        httpx.Client(base_url=sim.base_url, headers=credentials(config.profile)) as client,
    ):
        yield Api(sim, client)


@pytest.fixture(scope="module")
def shared() -> Iterator[Api]:
    """One default (cometapi) simulator for the tests of a module that only read answers and
    compare counters before and after."""
    with api(slots=100, latency=(0.05, 0.1)) as a:
        yield a


GAUGES = ("active", "max_active")  # they move as tasks end, whatever a test asked


def growth(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The counters that changed between two stats snapshots, and by how much."""
    return {
        name: after[name] - before[name]
        for name in before
        if isinstance(before[name], int) and after[name] != before[name] and name not in GAUGES
    }


def wait_for(condition: Any, what: str, timeout: float = 10.0) -> None:
    """Poll `condition()` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def frames_in(mp4: bytes) -> int:
    with av.open(io.BytesIO(mp4), "r") as container:
        return sum(1 for _ in container.decode(video=0))


def test_create_poll_download_gives_a_playable_mp4() -> None:
    """A created task goes submitted → succeed and its URL serves an H.264 MP4 that decodes."""
    with api() as a:
        data = a.create(external_task_id="job-1").json()["data"]
        assert data["task_status"] == "submitted"
        assert data["task_id"].isdigit() and len(data["task_id"]) == 19
        done = a.wait_until_done(data["task_id"])
        video = done["task_result"]["videos"][0]
        assert done["task_status"] == "succeed" and video["duration"] == "5"
        assert isinstance(done["final_unit_deduction"], str)
        assert video["url"].startswith(a.sim.base_url + "/")
        response = httpx.get(video["url"])
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert frames_in(response.content) == 5 * FPS
    with av.open(io.BytesIO(response.content), "r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"
        assert stream.width <= 320 and stream.width % 2 == 0 and stream.height % 2 == 0


def test_cometapi_is_the_default_profile() -> None:
    """A simulator made without a profile imitates CometAPI's relay under /kling/v1."""
    assert SimulatorConfig().profile == "cometapi"
    with api() as a:
        assert a.path == COMETAPI_PATH and a.stats()["profile"] == "cometapi"


def test_task_states_follow_the_clock() -> None:
    """A task is submitted for its first tenth, processing until it ends, then terminal."""
    book = TaskBook(random.Random(3))
    task = book.create(NewTask("x", "key", "5", "1"), now=100.0, latency=(10, 10), fail_rate=0)
    assert [task.status(t) for t in (100.0, 100.5, 101.0, 109.9, 110.0)] == [
        "submitted", "submitted", "processing", "processing", "succeed",
    ]  # fmt: skip
    assert [task.updated(t) for t in (100.5, 105.0, 120.0)] == [100.0, 101.0, 110.0]
    assert task.changes() == [100.0, 101.0, 110.0]


def test_slots_are_held_until_the_terminal_time_at_scale() -> None:
    """Twenty thousand tasks: slots free exactly when tasks end, busy time adds up."""
    book = TaskBook(random.Random(1))
    for i in range(20_000):
        book.create(NewTask(f"e{i}", "k", "5", "1"), now=i * 0.001, latency=(1, 3), fail_rate=0)
    assert 1000 <= book.max_active <= 3001
    assert book.active(1e9) == 0
    spans = [finish - created for _, created, finish in book.spans()]
    assert book.busy_seconds == pytest.approx(sum(spans))
    assert len({t for t, _, _ in book.spans()}) == 20_000


def test_a_reset_before_accept_breaks_the_connection_and_records_nothing() -> None:
    """The client sees a broken connection and the provider has no task."""
    with api(reset_before_accept_rate=1.0) as a:
        with pytest.raises(httpx.RemoteProtocolError):
            a.create(external_task_id="bg-lost")
        stats = a.stats()
    assert stats["tasks_total"] == 0 and stats["creates_accepted"] == 0
    assert stats["faults"]["reset_before_accept"] == 1


def test_a_reset_after_accept_breaks_the_connection_but_keeps_the_task() -> None:
    """The client sees a broken connection, yet the task exists and holds a slot."""
    with api(reset_after_accept_rate=1.0, latency=(30, 30)) as a:
        with pytest.raises(httpx.RemoteProtocolError):
            a.create(external_task_id="bg-kept")
        stats = a.stats()
    assert stats["creates_accepted"] == 1 and stats["active"] == 1
    assert stats["submissions_per_external_id"] == {"bg-kept": 1}
    assert stats["faults"]["reset_after_accept"] == 1


def test_a_slow_create_times_the_client_out_after_recording_the_task() -> None:
    """`slow_rate` delays the answer past the client's timeout; the task is already there."""
    with api(slow_rate=1.0, slow_seconds=0.6) as a:
        with pytest.raises(httpx.ReadTimeout):
            a.client.post(a.path, json={"image": IMAGE, "external_task_id": "bg-slow"}, timeout=0.2)
        stats = a.stats()
    assert stats["tasks_total"] == 1 and stats["faults"]["slow"] == 1


def test_a_truncated_download_ends_before_its_content_length() -> None:
    """`truncate_rate` sends the full Content-Length but closes the connection early."""
    with api(truncate_rate=1.0) as a:
        url = a.video_url()
        received = bytearray()
        with httpx.stream("GET", url) as response:
            expected = int(response.headers["content-length"])
            with pytest.raises(httpx.RemoteProtocolError):
                for chunk in response.iter_raw():
                    received += chunk
    assert 0 < len(received) < expected


def test_an_expired_url_is_refused_and_a_fresh_query_gives_a_working_one() -> None:
    """After `url_ttl` a link answers 403, 404 or 410; querying the task again gives a new link.
    (A TTL of seconds: the new link is fetched at once, well within it, however loaded the
    machine; with 0.3 s a CI run that shared its 2 cores saw the new link expire too.)"""
    with api(url_ttl=2.0) as a:
        task_id = a.task_id()
        old = a.wait_until_done(task_id)["task_result"]["videos"][0]["url"]
        time.sleep(2.1)
        expired = httpx.get(old)
        fresh = a.get(task_id).json()["data"]["task_result"]["videos"][0]["url"]
        again = httpx.get(fresh)
    assert expired.status_code in (403, 404, 410)
    assert fresh != old and again.status_code == 200 and frames_in(again.content) > 0


def test_a_range_request_resumes_a_download_with_206() -> None:
    """`Range: bytes=N-` answers 206 with the rest of the file and a Content-Range."""
    with api(video_bytes=300_000) as a:
        url = a.video_url()
        whole = httpx.get(url).content
        rest = httpx.get(url, headers={"Range": "bytes=1000-"})
        past_end = httpx.get(url, headers={"Range": f"bytes={len(whole)}-"})
        stats = a.stats()
    assert rest.status_code == 206 and rest.content == whole[1000:]
    assert rest.headers["content-range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    assert past_end.status_code == 416
    assert stats["range_requests"] == 1 and stats["downloads_completed"] == 2


def test_a_forged_link_is_not_served() -> None:
    """A video link whose signature does not match answers 404."""
    with api() as a:
        forged = httpx.get(a.video_url()[:-4] + "0000")
    assert forged.status_code == 404


def test_video_bytes_pads_the_file_and_it_still_plays() -> None:
    """`video_bytes` grows the MP4 with a `free` box to that size; it decodes as before."""
    with api(video_bytes=2_000_000) as a:
        response = httpx.get(a.video_url())
    assert len(response.content) == 2_000_000
    assert frames_in(response.content) == 5 * FPS


@settings(max_examples=40, deadline=None)
@given(
    total=st.integers(0, 2 * CHUNK + 5000),
    bounds=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_any_byte_range_of_a_padded_video_is_its_slice(
    total: int, bounds: tuple[float, float]
) -> None:
    """Chunks of any [start, stop) of a padded video equal that slice of the whole file."""
    video = padded(b"\x00\x00\x00\x10ftypisom" + bytes(range(200)), total)
    whole = b"".join(video.chunks(0, video.size))
    start, stop = sorted(int(b * video.size) for b in bounds)
    assert len(whole) == video.size == (total if total - 212 >= 16 else 212)
    assert b"".join(video.chunks(start, stop)) == whole[start:stop]


def test_one_image_is_rendered_once_for_many_tasks() -> None:
    """Tasks on the same image share one rendered video; each task's file still has bytes of
    its own (a trailing `free` box naming the task), as a real provider's generations do."""
    with api(slots=20) as a:
        urls = [a.video_url() for _ in range(4)]
        bodies = {httpx.get(url).content for url in urls}
        stats = a.stats()
    assert len(bodies) == 4 and stats["video_renders"] == 1
    assert len({body[: body.rindex(b"free") - 4] for body in bodies}) == 1


# -- videos that look like what was asked ---------------------------------------------------------


def video_of(**fields: Any) -> bytes:
    """The video a simulator makes for one create with these fields."""
    with api() as a:
        return httpx.get(a.video_url(**fields)).content


def frames_of(mp4: bytes) -> list[Image.Image]:
    with av.open(io.BytesIO(mp4), "r") as container:
        return [frame.to_image().convert("L") for frame in container.decode(video=0)]


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute luma difference of two frames (0..255)."""
    return float(ImageStat.Stat(ImageChops.difference(a, b.resize(a.size))).mean[0])


@pytest.mark.parametrize(("model", "duration"), [("kling-v2-master", "10"), ("kling-v3", "3")])
def test_a_video_lasts_as_long_as_asked(model: str, duration: str) -> None:
    """The video stream lasts the `duration` of the create, in seconds."""
    mp4 = video_of(model_name=model, duration=duration)
    with av.open(io.BytesIO(mp4), "r") as container:
        stream = container.streams.video[0]
        assert float(stream.duration * stream.time_base) == float(duration)


@pytest.mark.parametrize("size", [(320, 560), (600, 300), (400, 400)])
def test_a_video_has_the_input_images_shape(size: tuple[int, int]) -> None:
    """Width over height of the video is the input image's, to even-pixel rounding."""
    mp4 = video_of(image=base64.b64encode(png(size)).decode())
    with av.open(io.BytesIO(mp4), "r") as container:
        stream = container.streams.video[0]
        assert stream.width / stream.height == pytest.approx(size[0] / size[1], rel=0.02)


def test_two_prompts_on_one_image_give_different_videos() -> None:
    """The prompt picks the motion: the same image moves differently under two prompts."""
    waves = frames_of(video_of(prompt="waves roll in"))
    cat = frames_of(video_of(prompt="a cat walks by"))
    assert difference(waves[-1], cat[-1]) > 5
    assert difference(waves[0], waves[-1]) > 5


def test_a_video_fades_into_its_end_frame() -> None:
    """With image_tail, the first frame is the image and the last one the end frame."""
    tail = png((480, 320), (230, 230, 40))
    frames = frames_of(video_of(image_tail=base64.b64encode(tail).decode()))
    end = Image.open(io.BytesIO(tail)).convert("L")
    assert difference(frames[-1], end) < 3 < 30 < difference(frames[0], end)


def test_sound_on_gives_the_video_an_audio_track() -> None:
    """A create with `sound: on` gets an audio stream; one without gets none."""
    for sound, streams in (("on", 1), ("off", 0)):
        mp4 = video_of(model_name="kling-v2-6", mode="pro", sound=sound)
        with av.open(io.BytesIO(mp4), "r") as container:
            assert len(container.streams.audio) == streams


def test_video_defects_come_at_their_seeded_rates() -> None:
    """With black_rate 1 every video is black; the stats count each defect drawn."""
    with api(black_rate=1.0) as a:
        frames = frames_of(httpx.get(a.video_url()).content)
        stats = a.stats()
    assert max(ImageStat.Stat(frame).extrema[0][1] for frame in frames) < 30
    assert stats["video_defects"] == {**dict.fromkeys(stats["video_defects"], 0), "black": 1}
    with pytest.raises(ValueError, match="add up to at most 1"):
        SimulatorConfig(black_rate=0.6, frozen_rate=0.6)


def test_an_html_page_can_be_served_with_200_instead_of_the_video() -> None:
    """With html_rate 1, a video URL answers 200 with an HTML page, and the stats count it."""
    with api(html_rate=1.0) as a:
        response = httpx.get(a.video_url())
        stats = a.stats()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.content.startswith(b"<!DOCTYPE html>")
    assert stats["faults"]["html_page"] == 1


@contextmanager
def image_host(data: bytes) -> Iterator[str]:
    """A loopback HTTP server answering every GET with `data` (a PNG)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/red.png"
    finally:
        server.shutdown()
        server.server_close()


def mean_red(mp4: bytes) -> float:
    with av.open(io.BytesIO(mp4), "r") as container:
        frame = next(container.decode(video=0)).to_image()
    reds = [frame.getpixel((x, y)) for x in range(0, 64, 8) for y in range(0, 64, 8)]
    return sum(float(red[0]) for red in reds if isinstance(red, tuple)) / len(reds)


def test_image_urls_are_fetched_only_from_loopback() -> None:
    """A loopback image URL becomes the video; any other host gets a pattern, unfetched."""
    with image_host(png(colour=(250, 0, 0))) as url, api() as a:
        fetched = httpx.get(a.video_url(image=url)).content
        elsewhere = httpx.get(a.video_url(image="https://example.com/a.png")).content
    assert mean_red(fetched) > 200 and mean_red(elsewhere) < 200
    assert [is_loopback_url(u) for u in ("http://127.0.0.9/a", "http://[::1]:8/a")] == [True, True]
    assert not is_loopback_url("http://example.com/a.png")
    assert fetch_loopback("http://192.0.2.1/a.png") is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt": "x" * 501}, "prompt"),
        ({"negative_prompt": "x" * 201}, "negative_prompt"),
        ({"image": None}, "image"),
        ({"image": 12}, "image"),
        ({"model_name": "kling-v9"}, "model_name"),
        ({"mode": "turbo"}, "mode"),
        ({"duration": "7"}, "duration"),
        ({"duration": 5}, "duration"),
        ({"model_name": "kling-v3", "duration": "16"}, "duration"),
        ({"cfg_scale": 1.5}, "cfg_scale"),
        ({"image_tail": IMAGE, "camera_control": {"type": "simple"}}, "image_tail"),
        ({"static_mask": IMAGE, "camera_control": {"type": "down_back"}}, "static_mask"),
        ({"camera_control": {"type": "spin"}}, "camera_control"),
        ({"external_task_id": 7}, "external_task_id"),
        ({"callback_url": ["http://127.0.0.1/"]}, "callback_url"),
    ],
)
def test_a_badly_shaped_body_is_refused_at_create_naming_the_field(
    shared: Api, changes: dict[str, Any], field: str
) -> None:
    """A create that breaks a §3/§16 shape rule is refused (the relay's task_failed, 400) with
    a message naming the field, and no task is made."""
    before = shared.stats()
    answer = shared.create(**changes)
    assert answer.status_code == 400 and answer.json()["code"] == "task_failed"
    assert answer.json()["message"].startswith(field)
    assert growth(before, shared.stats()) == {
        "requests_total": 1,
        "creates_received": 1,
        "invalid_creates": 1,
    }


@pytest.mark.parametrize(
    "fields",
    [
        {"model_name": "kling-v3", "duration": "3"},
        {"model_name": "kling-v3", "duration": "15"},
        {"model_name": "kling-v2-master", "duration": "10", "mode": "pro", "cfg_scale": 0},
        {"image": None, "image_tail": IMAGE},
    ],
)
def test_valid_bodies_are_accepted(shared: Api, fields: dict[str, Any]) -> None:
    """Bodies within the rules (v3's 3-15 s, tail-only) are accepted."""
    assert shared.create(**fields).status_code == 200


def test_a_failed_generation_carries_its_reason() -> None:
    """With `fail_rate=1` tasks end `failed` with a task_status_msg and nothing charged."""
    with api(fail_rate=1.0) as a:
        done = a.wait_until_done(a.task_id())
    assert done["task_status"] == "failed" and done["task_status_msg"]
    assert done["task_result"] == {} and done["final_unit_deduction"] == "0"


def scripted_run(seed: int) -> list[Any]:
    """What a fixed sequence of requests sees from a simulator with this seed."""
    seen: list[Any] = []
    with api(seed=seed, slots=50, error_rate=0.3, fail_rate=0.5, latency=(0.01, 0.03)) as a:
        for i in range(15):
            answer = a.create(external_task_id=f"e{i}")
            body = answer.json()
            seen.append(
                (answer.status_code, body.get("code"), (body.get("data") or {}).get("task_id"))
            )
        time.sleep(0.1)
        for _, _, task_id in seen[:15]:
            seen.append((a.get(task_id).json().get("data") or {}).get("task_status"))
        spans = a.sim.stats(with_tasks=True)["task_spans"]
        seen.append(sorted((t, round(f - c, 9)) for t, (c, f) in spans.items()))
    return seen


def test_a_seeded_run_is_reproducible() -> None:
    """The same seed and requests give the same faults, task ids, latencies and outcomes."""
    first, second, other = scripted_run(5), scripted_run(5), scripted_run(6)
    assert first == second
    assert first != other


def test_settings_and_stats_are_served_over_http() -> None:
    """POST /_sim/config changes settings at run time; GET /_sim/stats shows the counters."""
    with api() as a:
        changed = a.client.post("/_sim/config", json={"fail_rate": 1.0, "latency": [0, 0]})
        refused = a.client.post("/_sim/config", json={"no_such_setting": 1})
        fixed = a.client.post("/_sim/config", json={"profile": "kling"})
        done = a.wait_until_done(a.task_id())
        over_http = a.client.get("/_sim/stats").json()
    assert changed.status_code == 200 and changed.json()["latency"] == [0, 0]
    assert changed.json()["secret_key"] == "***"
    assert refused.status_code == 400 and "no_such_setting" in refused.json()["error"]
    assert fixed.status_code == 400 and "profile" in fixed.json()["error"]
    assert done["task_status"] == "failed" and a.sim.config.fail_rate == 1.0
    assert over_http["creates_accepted"] == 1 and over_http["queries"] >= 1


def test_only_loopback_addresses_are_served() -> None:
    """Asking to serve on a non-loopback address fails before anything is bound."""
    with pytest.raises(ValueError, match="loopback"):
        serve(SimulatorConfig(), host="0.0.0.0", port=0)


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"error_rate": 2.0}, "between 0 and 1"),
        ({"error_rate": 0.6, "gateway_timeout_rate": 0.6}, "add up to at most 1"),
        ({"profile": "openai"}, "profile"),
        ({"updated_at_mode": "never"}, "updated_at_mode"),
        ({"not_found_grace": -1}, "not_found_grace"),
    ],
)
def test_impossible_settings_are_refused(settings_: dict[str, Any], message: str) -> None:
    """A config that cannot be simulated raises ValueError saying why."""
    with pytest.raises(ValueError, match=message):
        SimulatorConfig(**settings_)
