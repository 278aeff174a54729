"""The Kling simulator, spoken to over real loopback HTTP as batchgen's client would."""

from __future__ import annotations

import base64
import io
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageStat

from batchgen.simulator import SimulatorConfig, running_simulator, serve
from batchgen.simulator.library import fetch_loopback, is_loopback_url
from batchgen.simulator.tasks import NewTask, TaskBook
from batchgen.simulator.video import CHUNK, FPS, padded

API = "/kling/v1/videos/image2video"
AUTH = {"Authorization": "Bearer sk-test"}
FAST = {"seed": 1, "latency": (0.05, 0.1), "slots": 8}


def png(size: tuple[int, int] = (480, 320), colour: tuple[int, int, int] = (40, 90, 160)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


IMAGE = base64.b64encode(png()).decode()


@contextmanager
def simulator(**overrides: Any) -> Iterator[Any]:
    with running_simulator(SimulatorConfig(**{**FAST, **overrides})) as sim:
        yield sim


@contextmanager
def api(**overrides: Any) -> Iterator[tuple[Any, httpx.Client]]:
    """A simulator and an httpx client pointed at its image2video route."""
    with simulator(**overrides) as sim, httpx.Client(base_url=sim.base_url, headers=AUTH) as c:
        yield sim, c


def create(client: httpx.Client, **fields: Any) -> httpx.Response:
    return client.post(API, json={"image": IMAGE, "prompt": "a slow pan", **fields})


def wait_until_done(client: httpx.Client, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        data: dict[str, Any] = client.get(f"{API}/{task_id}").json()["data"]
        if data["task_status"] in ("succeed", "failed"):
            return data
        time.sleep(0.02)
    raise AssertionError(f"task {task_id} did not finish")


def frames_in(mp4: bytes) -> int:
    with av.open(io.BytesIO(mp4), "r") as container:
        return sum(1 for _ in container.decode(video=0))


def video_url(client: httpx.Client, **fields: Any) -> str:
    task_id = create(client, **fields).json()["data"]["task_id"]
    return str(wait_until_done(client, task_id)["task_result"]["videos"][0]["url"])


def test_create_poll_download_gives_a_playable_mp4() -> None:
    """A created task goes submitted → succeed and its URL serves an H.264 MP4 that decodes."""
    with api() as (sim, client):
        answer = create(client, external_task_id="job-1").json()
        assert answer["code"] == 0 and answer["message"] == "success"
        data = answer["data"]
        assert data["task_status"] == "submitted"
        assert data["task_id"].isdigit() and len(data["task_id"]) == 19
        assert data["task_info"] == {"external_task_id": "job-1"}
        done = wait_until_done(client, data["task_id"])
        video = done["task_result"]["videos"][0]
        assert done["task_status"] == "succeed" and video["duration"] == "5"
        assert isinstance(done["final_unit_deduction"], str)
        assert video["url"].startswith(sim.base_url + "/")
        response = httpx.get(video["url"])
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert frames_in(response.content) == 5 * FPS
    with av.open(io.BytesIO(response.content), "r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.format.name == "yuv420p"
        assert stream.width <= 320 and stream.width % 2 == 0 and stream.height % 2 == 0


def test_task_states_follow_the_clock() -> None:
    """A task is submitted for its first tenth, processing until it ends, then terminal."""
    book = TaskBook(random.Random(3))
    task = book.create(NewTask("x", "key", "5", "1"), now=100.0, latency=(10, 10), fail_rate=0)
    assert [task.status(t) for t in (100.0, 100.5, 101.0, 109.9, 110.0)] == [
        "submitted", "submitted", "processing", "processing", "succeed",
    ]  # fmt: skip
    assert [task.updated(t) for t in (100.5, 105.0, 120.0)] == [100.0, 101.0, 110.0]


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


def test_a_full_account_answers_1303() -> None:
    """With every slot taken by a running task, a create answers 429 with code 1303."""
    with api(slots=2, latency=(30, 30)) as (sim, client):
        assert [create(client).status_code for _ in range(2)] == [200, 200]
        refused = create(client)
        stats = sim.stats()
    assert refused.status_code == 429
    assert refused.json()["code"] == 1303
    assert refused.json()["message"] == "parallel task over resource pack limit"
    assert stats["throttled_1303"] == 1 and stats["active"] == 2 and stats["max_active"] == 2


def test_a_reused_external_task_id_is_refused_with_1201() -> None:
    """A second create with the same external_task_id answers 400/1201 naming that id."""
    with api() as (sim, client):
        assert create(client, external_task_id="bg-abc").status_code == 200
        again = create(client, external_task_id="bg-abc")
        stats = sim.stats()
    assert again.status_code == 400 and again.json()["code"] == 1201
    assert "bg-abc" in again.json()["message"] and "external_task_id" in again.json()["message"]
    assert stats["submissions_per_external_id"] == {"bg-abc": 1}
    assert stats["duplicate_external_id_refusals"] == 1


def test_an_external_id_is_found_by_query_and_by_path() -> None:
    """Both look-up forms of §16 answer the task; an unknown id answers 404/1203."""
    with api() as (sim, client):
        task_id = create(client, external_task_id="bg-1").json()["data"]["task_id"]
        by_query = client.get(API, params={"external_task_id": "bg-1"})
        by_path = client.get(f"{API}/bg-1")
        unknown = client.get(API, params={"external_task_id": "nope"})
        stats = sim.stats()
    assert by_query.json()["data"]["task_id"] == task_id
    assert by_path.json()["data"]["task_id"] == task_id
    assert unknown.status_code == 404 and unknown.json()["code"] == 1203
    assert stats["external_lookups"] == 3


@pytest.mark.parametrize(
    ("setting", "query_works", "path_works"),
    [("query", True, False), ("path", False, True), ("none", False, False)],
)
def test_external_lookup_forms_can_be_switched_off(
    setting: str, query_works: bool, path_works: bool
) -> None:
    """`external_lookup` turns either look-up form into 404/1203, as a relay might."""
    with api(external_lookup=setting) as (_, client):
        task_id = create(client, external_task_id="bg-2").json()["data"]["task_id"]
        by_query = client.get(API, params={"external_task_id": "bg-2"})
        by_path = client.get(f"{API}/bg-2")
        by_task_id = client.get(f"{API}/{task_id}")
    assert (by_query.status_code == 200, by_path.status_code == 200) == (query_works, path_works)
    assert by_task_id.status_code == 200


def test_the_list_pages_tasks_newest_first() -> None:
    """pageNum/pageSize page through the tasks, newest first; bad numbers answer 1201."""
    with api(slots=10) as (_, client):
        ids = [create(client).json()["data"]["task_id"] for _ in range(5)]
        pages = [client.get(API, params={"pageNum": n, "pageSize": 2}) for n in (1, 2, 3, 4)]
        default = client.get(API)
        too_big = client.get(API, params={"pageSize": 501})
    listed = [[t["task_id"] for t in page.json()["data"]] for page in pages]
    assert listed == [ids[4:2:-1], ids[2:0:-1], ids[:1], []]
    assert [t["task_id"] for t in default.json()["data"]] == ids[::-1]
    assert too_big.status_code == 400 and too_big.json()["code"] == 1201


def test_the_list_endpoint_can_be_switched_off() -> None:
    """With `list_endpoint=False` the list answers 404/1202 like a relay without it."""
    with api(list_endpoint=False) as (_, client):
        answer = client.get(API, params={"pageNum": 1, "pageSize": 30})
    assert answer.status_code == 404 and answer.json()["code"] == 1202


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, 1001),
        ({"Authorization": "Bearer"}, 1001),
        ({"Authorization": "Bearer sk-wrong"}, 1000),
        ({"Authorization": "Token sk-right"}, 1002),
    ],
)
def test_credentials_are_checked(headers: dict[str, str], code: int) -> None:
    """A missing, malformed or wrong key answers 401 with Kling's code, and records nothing."""
    with simulator(api_key="sk-right") as sim:
        answer = httpx.post(sim.base_url + API, json={"image": IMAGE}, headers=headers)
        right = httpx.post(
            sim.base_url + API, json={"image": IMAGE}, headers={"Authorization": "Bearer sk-right"}
        )
        stats = sim.stats()
    assert answer.status_code == 401 and answer.json()["code"] == code
    assert right.status_code == 200 and stats["creates_accepted"] == 1


@pytest.mark.parametrize(("code", "status"), [(1102, 429), (1103, 403), (1000, 401)])
def test_an_account_error_answers_every_create(code: int, status: int) -> None:
    """`account_error` makes each create answer that code with its HTTP status from §6."""
    with api(account_error=code) as (sim, client):
        answers = [create(client) for _ in range(2)]
        sim.reconfigure(account_error=None)
        after = create(client)
    assert {(a.status_code, a.json()["code"]) for a in answers} == {(status, code)}
    assert after.status_code == 200


def test_too_many_requests_a_minute_answer_1302() -> None:
    """Above `rpm` API requests in the last minute the answer is 429/1302."""
    with api(rpm=3) as (sim, client):
        answers = [client.get(API).status_code for _ in range(5)]
        stats = sim.stats()
    assert answers == [200, 200, 200, 429, 429]
    assert stats["throttled_1302"] == 2


def test_server_errors_come_in_both_envelopes() -> None:
    """`error_rate` answers 5xx, half in Kling's envelope and half in CometAPI's gateway one."""
    with api(error_rate=1.0) as (sim, client):
        answers = [create(client) for _ in range(30)]
        stats = sim.stats()
    kling = [a for a in answers if "code" in a.json()]
    gateway = [a for a in answers if "error" in a.json()]
    assert kling and gateway and len(kling) + len(gateway) == 30
    assert {(a.status_code, a.json()["code"]) for a in kling} <= {
        (500, 5000), (503, 5001), (504, 5002),
    }  # fmt: skip
    assert {a.status_code for a in gateway} <= {500, 502, 503}
    for answer in gateway:
        error = answer.json()["error"]
        assert error["type"] == "comet_api_error" and "(request id: " in error["message"]
    assert stats["creates_accepted"] == 0 and stats["faults"]["server_error"] == 30


def test_a_reset_before_accept_breaks_the_connection_and_records_nothing() -> None:
    """The client sees a broken connection and the provider has no task."""
    with api(reset_before_accept_rate=1.0) as (sim, client):
        with pytest.raises(httpx.RemoteProtocolError):
            create(client, external_task_id="bg-lost")
        sim.reconfigure(reset_before_accept_rate=0.0)
        lookup = client.get(API, params={"external_task_id": "bg-lost"})
        stats = sim.stats()
    assert lookup.status_code == 404
    assert stats["creates_accepted"] == 0 and stats["faults"]["reset_before_accept"] == 1


def test_a_reset_after_accept_breaks_the_connection_but_keeps_the_task() -> None:
    """The client sees a broken connection, yet the task exists and holds a slot."""
    with api(reset_after_accept_rate=1.0, latency=(30, 30)) as (sim, client):
        with pytest.raises(httpx.RemoteProtocolError):
            create(client, external_task_id="bg-kept")
        sim.reconfigure(reset_after_accept_rate=0.0)
        lookup = client.get(API, params={"external_task_id": "bg-kept"})
        stats = sim.stats()
    assert lookup.status_code == 200 and lookup.json()["data"]["task_status"] == "submitted"
    assert stats["creates_accepted"] == 1 and stats["active"] == 1
    assert stats["submissions_per_external_id"] == {"bg-kept": 1}


def test_a_slow_create_times_the_client_out_after_recording_the_task() -> None:
    """`slow_rate` delays the answer past the client's timeout; the task is already there."""
    with api(slow_rate=1.0, slow_seconds=0.6) as (sim, client):
        with pytest.raises(httpx.ReadTimeout):
            client.post(API, json={"image": IMAGE, "external_task_id": "bg-slow"}, timeout=0.2)
        sim.reconfigure(slow_rate=0.0)
        lookup = client.get(f"{API}/bg-slow")
        stats = sim.stats()
    assert lookup.status_code == 200 and stats["faults"]["slow"] == 1


def test_a_truncated_download_ends_before_its_content_length() -> None:
    """`truncate_rate` sends the full Content-Length but closes the connection early."""
    with api(truncate_rate=1.0) as (_, client):
        url = video_url(client)
        received = bytearray()
        with httpx.stream("GET", url) as response:
            expected = int(response.headers["content-length"])
            with pytest.raises(httpx.RemoteProtocolError):
                for chunk in response.iter_raw():
                    received += chunk
    assert 0 < len(received) < expected


def test_an_expired_url_is_refused_and_a_fresh_query_gives_a_working_one() -> None:
    """After `url_ttl` a link answers 403, 404 or 410; querying the task again gives a new link."""
    with api(url_ttl=0.3) as (_, client):
        task_id = create(client).json()["data"]["task_id"]
        old = wait_until_done(client, task_id)["task_result"]["videos"][0]["url"]
        time.sleep(0.4)
        expired = httpx.get(old)
        fresh = client.get(f"{API}/{task_id}").json()["data"]["task_result"]["videos"][0]["url"]
        again = httpx.get(fresh)
    assert expired.status_code in (403, 404, 410)
    assert fresh != old and again.status_code == 200 and frames_in(again.content) > 0


def test_a_range_request_resumes_a_download_with_206() -> None:
    """`Range: bytes=N-` answers 206 with the rest of the file and a Content-Range."""
    with api(video_bytes=300_000) as (sim, client):
        url = video_url(client)
        whole = httpx.get(url).content
        rest = httpx.get(url, headers={"Range": "bytes=1000-"})
        past_end = httpx.get(url, headers={"Range": f"bytes={len(whole)}-"})
        stats = sim.stats()
    assert rest.status_code == 206 and rest.content == whole[1000:]
    assert rest.headers["content-range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    assert past_end.status_code == 416
    assert stats["range_requests"] == 1 and stats["downloads_completed"] == 2


def test_a_forged_link_is_not_served() -> None:
    """A video link whose signature does not match answers 404."""
    with api() as (_, client):
        url = video_url(client)
        forged = httpx.get(url[:-4] + "0000")
    assert forged.status_code == 404


def test_video_bytes_pads_the_file_and_it_still_plays() -> None:
    """`video_bytes` grows the MP4 with a `free` box to that size; it decodes as before."""
    with api(video_bytes=2_000_000) as (_, client):
        response = httpx.get(video_url(client))
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
    """Tasks on the same image share one rendered video."""
    with api(slots=20) as (sim, client):
        urls = [video_url(client) for _ in range(4)]
        bodies = {httpx.get(url).content for url in urls}
        stats = sim.stats()
    assert len(bodies) == 1 and stats["video_renders"] == 1


# -- videos that look like what was asked ---------------------------------------------------------


def video_of(**fields: Any) -> bytes:
    """The video a simulator makes for one create with these fields."""
    with api() as (_, client):
        return httpx.get(video_url(client, **fields)).content


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
    with api(black_rate=1.0) as (sim, client):
        frames = frames_of(httpx.get(video_url(client)).content)
        stats = sim.stats()
    assert max(ImageStat.Stat(frame).extrema[0][1] for frame in frames) < 30
    assert stats["video_defects"] == {**dict.fromkeys(stats["video_defects"], 0), "black": 1}
    with pytest.raises(ValueError, match="add up to at most 1"):
        SimulatorConfig(black_rate=0.6, frozen_rate=0.6)


def test_an_html_page_can_be_served_with_200_instead_of_the_video() -> None:
    """With html_rate 1, a video URL answers 200 with an HTML page, and the stats count it."""
    with api(html_rate=1.0) as (sim, client):
        response = httpx.get(video_url(client))
        stats = sim.stats()
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
    with image_host(png(colour=(250, 0, 0))) as url, api() as (_, client):
        fetched = httpx.get(video_url(client, image=url)).content
        elsewhere = httpx.get(video_url(client, image="https://example.com/a.png")).content
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
        ({"image": "data:image/png;base64," + IMAGE}, "image"),
        ({"image": "not base64!"}, "image"),
        ({"image": base64.b64encode(png((200, 200))).decode()}, "image"),
        ({"image": base64.b64encode(png((900, 300))).decode()}, "image"),
        ({"model_name": "kling-v9"}, "model_name"),
        ({"mode": "turbo"}, "mode"),
        ({"duration": "7"}, "duration"),
        ({"duration": 5}, "duration"),
        ({"model_name": "kling-v3", "duration": "16"}, "duration"),
        ({"cfg_scale": 1.5}, "cfg_scale"),
        ({"image_tail": IMAGE, "camera_control": {"type": "simple"}}, "image_tail"),
        ({"static_mask": IMAGE, "camera_control": {"type": "down_back"}}, "static_mask"),
        ({"camera_control": {"type": "spin"}}, "camera_control"),
    ],
)
def test_invalid_bodies_answer_1201_naming_the_field(changes: dict[str, Any], field: str) -> None:
    """A create that breaks a §3/§16 rule answers 400/1201 with a message naming the field."""
    with api() as (sim, client):
        answer = create(client, **changes)
        stats = sim.stats()
    assert answer.status_code == 400 and answer.json()["code"] == 1201
    assert answer.json()["message"].startswith(field)
    assert stats["creates_accepted"] == 0 and stats["invalid_creates"] == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"model_name": "kling-v3", "duration": "3"},
        {"model_name": "kling-v3", "duration": "15"},
        {"model_name": "kling-v2-master", "duration": "10", "mode": "pro", "cfg_scale": 0},
        {"image": None, "image_tail": IMAGE},
    ],
)
def test_valid_bodies_are_accepted(fields: dict[str, Any]) -> None:
    """Bodies within the rules (v3's 3-15 s, tail-only) are accepted."""
    with api() as (_, client):
        assert create(client, **fields).status_code == 200


def test_a_body_that_is_not_json_answers_1200() -> None:
    """Bytes that are not JSON answer 400/1200."""
    with api() as (_, client):
        answer = client.post(API, content=b"{not json")
    assert answer.status_code == 400 and answer.json()["code"] == 1200


def test_a_failed_generation_carries_its_reason() -> None:
    """With `fail_rate=1` tasks end `failed` with a task_status_msg and nothing charged."""
    with api(fail_rate=1.0) as (_, client):
        done = wait_until_done(client, create(client).json()["data"]["task_id"])
    assert done["task_status"] == "failed" and done["task_status_msg"]
    assert done["task_result"] == {} and done["final_unit_deduction"] == "0"


def scripted_run(seed: int) -> list[Any]:
    """What a fixed sequence of requests sees from a simulator with this seed."""
    seen: list[Any] = []
    with api(seed=seed, slots=50, error_rate=0.3, fail_rate=0.5, latency=(0.01, 0.03)) as (
        sim,
        client,
    ):
        for i in range(15):
            answer = create(client, external_task_id=f"e{i}")
            body = answer.json()
            seen.append((answer.status_code, body.get("code"), body.get("data", {}).get("task_id")))
        time.sleep(0.1)
        seen += [
            client.get(f"{API}/e{i}").json().get("data", {}).get("task_status") for i in range(15)
        ]
        spans = sim.stats(with_tasks=True)["task_spans"]
        seen.append(sorted((t, round(f - c, 9)) for t, (c, f) in spans.items()))
    return seen


def test_a_seeded_run_is_reproducible() -> None:
    """The same seed and requests give the same faults, task ids, latencies and outcomes."""
    first, second, other = scripted_run(5), scripted_run(5), scripted_run(6)
    assert first == second
    assert first != other


def test_settings_and_stats_are_served_over_http() -> None:
    """POST /_sim/config changes settings at run time; GET /_sim/stats shows the counters."""
    with api() as (sim, client):
        changed = client.post("/_sim/config", json={"fail_rate": 1.0, "latency": [0, 0]})
        refused = client.post("/_sim/config", json={"no_such_setting": 1})
        done = wait_until_done(client, create(client).json()["data"]["task_id"])
        over_http = client.get("/_sim/stats").json()
    assert changed.status_code == 200 and changed.json()["latency"] == [0, 0]
    assert refused.status_code == 400 and "no_such_setting" in refused.json()["error"]
    assert done["task_status"] == "failed" and sim.config.fail_rate == 1.0
    assert over_http["creates_accepted"] == 1 and over_http["queries"] == 1


def test_only_loopback_addresses_are_served() -> None:
    """Asking to serve on a non-loopback address fails before anything is bound."""
    with pytest.raises(ValueError, match="loopback"):
        serve(SimulatorConfig(), host="0.0.0.0", port=0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        SimulatorConfig(error_rate=2.0)
