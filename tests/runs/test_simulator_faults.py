"""Faults that leave the client unsure what happened, and bad images, in both profiles: a 524
after the work was done, a complete 200 with a broken body, a lagging store, answers stamped
with the query time, and images accepted at create that fail seconds later (E17)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest

from tests.runs.test_simulator import BAD_IMAGE, IMAGE, Api, api, growth, png


@pytest.fixture(scope="module")
def relay() -> Iterator[Api]:
    """One cometapi simulator for the tests that compare counters before and after."""
    with api(slots=100) as a:
        yield a


PROFILES = ["cometapi", "kling"]
NOT_FOUND = {"cometapi": 400, "kling": 404}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BAD_IMAGES = {
    "not base64": "not base64!",
    "data: prefix": "data:image/png;base64," + IMAGE,
    "not an image": b64(b"GIF89a not really a picture"),
    "too small": BAD_IMAGE,
    "too wide": b64(png((900, 300))),
}


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_a_bad_image_is_accepted_then_fails_as_image_pixel_is_invalid(
    relay: Api, kind: str
) -> None:
    """The create is accepted; the task then fails with "Image pixel is invalid", an empty
    result and no final_unit_deduction (E17)."""
    before = relay.stats()
    created = relay.create(image=BAD_IMAGES[kind])
    done = relay.wait_until_done(created.json()["data"]["task_id"])
    grown = growth(before, relay.stats())
    assert created.status_code == 200
    assert done["task_status"] == "failed" and done["task_status_msg"] == "Image pixel is invalid"
    assert done["task_result"] == {} and "final_unit_deduction" not in done
    assert grown["image_rejections"] == 1 and "invalid_creates" not in grown


@pytest.mark.parametrize("profile", PROFILES)
def test_a_bad_image_fails_1_65_seconds_after_create_without_processing(profile: str) -> None:
    """A long generation with a bad image ends 1.65 s after creation and stays `submitted`
    until then; the time is the simulator's record, not a measurement."""
    with api(profile=profile, latency=(30, 30)) as a:
        task_id = a.task_id(image=BAD_IMAGE)
        status = a.get(task_id).json()["data"]["task_status"]
        ((created, finishes),) = a.sim.stats(with_tasks=True)["task_spans"].values()
    assert status == "submitted"
    assert finishes - created == pytest.approx(1.65)


@pytest.mark.parametrize("profile", PROFILES)
def test_a_gateway_timeout_answers_524_html_after_recording_the_task(profile: str) -> None:
    """`gateway_timeout_rate` answers Cloudflare's 524 page, yet the task exists and runs."""
    with api(profile=profile, gateway_timeout_rate=1.0, latency=(30, 30)) as a:
        answer = a.create(external_task_id="bg-524")
        stats = a.stats()
    assert answer.status_code == 524
    assert answer.headers["content-type"].startswith("text/html")
    assert b"524: A timeout occurred" in answer.content
    assert stats["tasks_total"] == 1 and stats["active"] == 1
    assert stats["submissions_per_external_id"] == {"bg-524": 1}
    assert stats["faults"]["gateway_timeout"] == 1


def test_a_gateway_timeout_hides_a_refusal_too() -> None:
    """A create that would be refused still answers 524: the client cannot tell."""
    with api(gateway_timeout_rate=1.0) as a:
        answer = a.create(prompt="x" * 501)
        stats = a.stats()
    assert answer.status_code == 524 and stats["tasks_total"] == 0


@pytest.mark.parametrize("profile", PROFILES)
def test_a_malformed_answer_is_a_complete_200_with_cut_json_or_html(profile: str) -> None:
    """`malformed_answer_rate` records the task, then answers a complete 200 whose body is the
    first 20 bytes of the real answer or an HTML page."""
    with api(profile=profile, malformed_answer_rate=1.0, slots=20, latency=(30, 30)) as a:
        answers = [a.create() for _ in range(10)]
        stats = a.stats()
    kinds = set()
    for answer in answers:
        assert answer.status_code == 200
        assert int(answer.headers["content-length"]) == len(answer.content)
        if answer.headers["content-type"].startswith("text/html"):
            kinds.add("html")
            assert answer.content.lstrip().lower().startswith(b"<!doctype html>")
        else:
            kinds.add("cut")
            assert len(answer.content) == 20 and answer.content.startswith(b'{"code":0')
            with pytest.raises(json.JSONDecodeError):
                json.loads(answer.content)
    assert kinds == {"cut", "html"}
    assert stats["tasks_total"] == 10 and stats["faults"]["malformed_answer"] == 10


def test_a_refused_create_is_not_malformed() -> None:
    """A malformed answer only happens to accepted creates; a refusal comes through intact."""
    with api(malformed_answer_rate=1.0) as a:
        answer = a.create(prompt="x" * 501)
        stats = a.stats()
    assert answer.status_code == 400 and answer.json()["code"] == "task_failed"
    assert stats["faults"]["malformed_answer"] == 0


@pytest.mark.parametrize("profile", PROFILES)
def test_a_new_task_is_not_found_during_the_grace(profile: str) -> None:
    """For `not_found_grace` seconds a new task answers the profile's "not found" (and is
    missing from the list); afterwards it is found."""
    with api(profile=profile, not_found_grace=60.0, latency=(30, 30)) as a:
        task_id = a.task_id(external_task_id="bg-lag")
        hidden = a.get(task_id)
        listed = a.client.get(a.path) if profile == "kling" else None
        a.sim.reconfigure(not_found_grace=0.0)
        found = a.get(task_id)
        stats = a.stats()
    assert hidden.status_code == NOT_FOUND[profile]
    assert found.status_code == 200 and found.json()["data"]["task_id"] == task_id
    if listed is not None:
        assert listed.json()["data"] == []
    assert stats["faults"]["not_found_grace"] == 1 and stats["not_found"] == 1


@pytest.mark.parametrize("profile", PROFILES)
def test_updated_at_is_the_query_time_when_stamped_by_the_relay(profile: str) -> None:
    """With updated_at_mode "query" each answer's updated_at is when it was asked; with "task"
    it is when the task last changed."""
    with api(profile=profile, latency=(30, 30), updated_at_mode="query") as a:
        task_id = a.task_id()
        stamps = []
        for _ in range(2):
            time.sleep(0.01)
            stamps.append(a.get(task_id).json()["data"]["updated_at"])
        a.sim.reconfigure(updated_at_mode="task")
        created, updated = (a.get(task_id).json()["data"][k] for k in ("created_at", "updated_at"))
    assert created < stamps[0] < stamps[1]
    assert updated == created
