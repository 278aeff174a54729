"""Every downloaded video is probed and checked: the simulator's faulty videos are flagged with
the right finding, its good ones with none, and a page that is no video never becomes done."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr

import batchgen
from batchgen.images import digest_ref
from batchgen.jobs import make_job
from batchgen.media import Expected, FrameStats, Probe, check_video, findings
from batchgen.pipeline import provider_clients, run_async
from batchgen.policy import RetryPolicy
from batchgen.runner import RunConfig, Runner
from batchgen.settings import Settings
from batchgen.simulator.footage import Defect
from batchgen.simulator.video import render_mp4
from batchgen.status import JobStatus
from batchgen.store import Store
from tests.conftest import read_index, run_cli, simulator, write_manifest

CODE_OF_DEFECT = {
    "black": "black_frames",
    "frozen": "frozen",
    "short": "duration_off",
    "undecodable": "undecodable",
    "aspect": "aspect_off",
    "mute": "no_audio",
}
FAST_RETRY = RetryPolicy(base_delay=0.01, max_delay=0.05)


def codes(entry: dict[str, Any]) -> list[str]:
    return [finding["code"] for finding in entry["qa"]]


def defect_of(sim: Any, task_id: str) -> str | None:
    """The defect the simulator gave a task's video (None for a good one)."""
    video = sim.app.account.book.tasks[task_id].video
    return None if video.defect is None else str(video.defect)


# -- the simulator's videos, through a whole run -------------------------------------------------


def test_each_injected_defect_is_flagged_with_its_finding_and_good_videos_with_none(tmp_path):
    """Black, frozen, short, undecodable and misshapen videos each get their finding; the rest
    get an empty list, and every video stays done on disk with its probe in index and sidecar."""
    manifest = write_manifest(tmp_path, 30)
    rates = {f"{d}_rate": 0.12 for d in ("black", "frozen", "short", "undecodable", "aspect")}
    with simulator(**rates) as sim:
        assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
        run_dir = tmp_path / "out" / "batch"
        index = read_index(run_dir)
        defects = {e["row_id"]: defect_of(sim, e["task_id"]) for e in index}
    assert len(index) == 30 and set(defects.values()) == {None, *CODE_OF_DEFECT} - {"mute"}
    for entry in index:
        defect = defects[entry["row_id"]]
        assert codes(entry) == ([CODE_OF_DEFECT[defect]] if defect else []), entry["row_id"]
        assert (run_dir / entry["video"]).is_file()
        sidecar = json.loads((run_dir / entry["video"]).with_suffix(".json").read_text())
        assert sidecar["probe"] == entry["probe"] and sidecar["qa"] == entry["qa"]


def test_status_and_report_show_what_the_checks_found(tmp_path, capsys):
    """`status` counts the findings and lists flagged rows with why; `report` counts them."""
    manifest = write_manifest(tmp_path, 6)
    with simulator(frozen_rate=0.5) as sim:
        assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
        frozen = sorted(e["row_id"] for e in read_index(tmp_path / "out" / "batch") if e["qa"])
    capsys.readouterr()
    assert run_cli("status", tmp_path / "out" / "batch") == 0
    status = capsys.readouterr().out
    assert f"QA: 6 videos checked, {len(frozen)} flagged (frozen {len(frozen)})" in status
    assert all(f"flagged {row} (" in status for row in frozen) and frozen
    assert "frozen: next to no change between frames" in status
    assert run_cli("report", tmp_path / "out" / "batch", "--json") == 0
    qa = json.loads(capsys.readouterr().out)["qa"]
    assert qa == {"checked": 6, "flagged": len(frozen), "findings": {"frozen": len(frozen)}}


def test_a_good_video_is_probed_as_what_was_asked(tmp_path, sim):
    """The probe of a clean video names its container, codec, size, rate, frames and length."""
    manifest = write_manifest(tmp_path, 1)
    assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
    (entry,) = read_index(tmp_path / "out" / "batch")
    probe = entry["probe"]
    assert (probe["container"], probe["codec"]) == ("mp4", "h264")
    assert (probe["width"], probe["height"]) == (256, 170)  # the input is 480 x 320
    assert probe["duration_s"] == 5.0 and probe["frames"] == probe["decoded"] > 1
    assert probe["fps"] > 0 and probe["has_audio"] is False
    assert entry["qa"] == []


# -- sound: on, which manifests cannot say yet: jobs straight into a state ------------------------


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 60, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def run_requests(run_dir: Path, base_url: str, requests: list[dict[str, Any]]) -> None:
    """Run these requests (their `image` as PNG bytes) with the real runner."""
    images = {digest_ref(r["image"]): r["image"] for r in requests}
    specs = [
        make_job({**r, "image": digest_ref(r["image"])}, f"r{i}") for i, r in enumerate(requests)
    ]
    settings = Settings(base_url=base_url, api_key=SecretStr("sk-test"), output=run_dir.parent)

    def payload(ref: str) -> str:
        return base64.b64encode(images[ref]).decode()

    async def run(store: Store) -> None:
        async with provider_clients(settings) as (client, downloads):
            config = RunConfig(handle_signals=False, retry=FAST_RETRY)
            await Runner(store, client, downloads, payload, run_dir, config).run()

    with Store.open(run_dir / "state.sqlite") as store:
        store.add_jobs(specs)
        store.record_images((ref, 480, 320, None) for ref in images)
        run_async(run, store)


def test_sound_on_without_an_audio_track_is_flagged_no_audio(tmp_path):
    """With `sound: on`, a video without audio gets `no_audio`; one with audio gets nothing."""
    request = {"model_name": "kling-v2-6", "mode": "pro", "image": png((480, 320)), "sound": "on"}
    requests = [{**request, "prompt": f"waves, take {i}"} for i in range(8)]
    with simulator(mute_rate=0.5) as sim:
        run_requests(tmp_path / "run", sim.base_url, requests)
        index = read_index(tmp_path / "run")
        defects = {e["row_id"]: defect_of(sim, e["task_id"]) for e in index}
    assert set(defects.values()) == {None, "mute"}
    for entry in index:
        muted = defects[entry["row_id"]] == "mute"
        assert codes(entry) == (["no_audio"] if muted else [])
        assert entry["probe"]["has_audio"] is not muted


# -- a page that is no video -----------------------------------------------------------------------


def test_an_html_page_served_with_200_never_becomes_done(tmp_path):
    """The page is kept as .rejected, the job stays downloading with the reason, and the next
    run, once the URL serves the video, downloads it and finishes."""
    manifest = write_manifest(tmp_path, 2)
    settings = Settings(
        output=tmp_path / "out", api_key=SecretStr("sk-test"), progress="off", concurrency=2
    )
    with simulator(html_rate=1.0) as sim:
        settings = settings.model_copy(update={"base_url": sim.base_url})
        first = batchgen.run(manifest, settings, retry=FAST_RETRY, download_attempts=2)
        run_dir = tmp_path / "out" / "batch"
        with Store.open(run_dir / "state.sqlite") as store:
            jobs = list(store.jobs_with_checks())
        kept = [(run_dir / "videos" / f"{job.row_id}.mp4.rejected").read_bytes() for job, _ in jobs]
        sim.reconfigure(html_rate=0.0)
        second = batchgen.run(manifest, settings, retry=FAST_RETRY)
    assert first.counts[JobStatus.DOWNLOADING] == 2 and first.exit_code == 1
    for job, check in jobs:
        assert job.status == JobStatus.DOWNLOADING and check is None
        assert job.error_kind == "not_a_video"
        assert "an HTML page, not a video" in (job.last_error or "")
    assert all(page.startswith(b"<!DOCTYPE html>") for page in kept)
    assert second.exit_code == 0
    assert [codes(entry) for entry in read_index(run_dir)] == [[], []]
    assert not list(run_dir.glob("videos/*.rejected"))  # the video replaced what it explained


@pytest.mark.parametrize("picture", ["flat", "textured"])
def test_a_frozen_video_is_flagged_whatever_the_picture(tmp_path, picture):
    """Encoder refinement of a detailed still picture is not taken for motion."""
    size = (480, 320)
    image = Image.new("RGB", size, (40, 90, 160))
    if picture == "textured":
        noise = Image.effect_noise((60, 40), 80).convert("RGB").resize(size)
        fractal = Image.effect_mandelbrot(size, (-2, -1.2, 1, 1.2), 80).convert("RGB")
        image = Image.blend(noise, fractal, 0.5)
    for defect, found in ((Defect.FROZEN, ["frozen"]), (None, [])):
        path = tmp_path / f"{defect}.mp4"
        path.write_bytes(render_mp4(image, motion=5, defect=defect))
        check = check_video(path, Expected(duration_s=5.0, aspect=1.5))
        assert [finding.code for finding in check.findings] == found


# -- the rules, on probes ----------------------------------------------------------------------


def clean_probe(**changes: Any) -> Probe:
    values: dict[str, Any] = {
        "container": "mp4",
        "codec": "h264",
        "width": 1280,
        "height": 720,
        "fps": 24.0,
        "frames": 122,
        "decoded": 122,
        "duration_s": 5.1,
        "stats": FrameStats(sampled=16, black=0, change=30.0),
    }
    return Probe(**{**values, **changes})


ASKED = Expected(duration_s=5.0, aspect=16 / 9, sound=False)


@pytest.mark.parametrize(
    ("changes", "expected", "code"),
    [
        ({}, ASKED, None),
        ({"duration_s": 5.5}, ASKED, None),
        ({"duration_s": 5.6}, ASKED, "duration_off"),
        ({"duration_s": 4.4}, ASKED, "duration_off"),
        ({"width": 1248}, ASKED, None),
        ({"width": 960}, ASKED, "aspect_off"),
        ({"width": 960}, Expected(duration_s=5.0), None),
        ({"decoded": 100, "error": "22 of 122 frames do not decode"}, ASKED, "undecodable"),
        ({"stats": FrameStats(16, 1, 30.0)}, ASKED, "black_frames"),
        ({"stats": FrameStats(16, 0, 2.4)}, ASKED, "frozen"),
        ({"stats": FrameStats(16, 0, 2.6)}, ASKED, None),
        ({"stats": FrameStats(16, 16, 0.0)}, ASKED, "black_frames"),
        (
            {
                "decoded": 7,
                "error": "33 of 40 frames do not decode",
                "stats": FrameStats(3, 0, 0.5),
            },
            ASKED,
            "undecodable",
        ),
        ({}, Expected(duration_s=5.0, aspect=16 / 9, sound=True), "no_audio"),
        ({"has_audio": True}, Expected(duration_s=5.0, aspect=16 / 9, sound=True), None),
    ],
    ids=[
        "clean",
        "half a second long is fine",
        "more than half a second long",
        "too short",
        "even-pixel rounding",
        "4:3 for a 16:9 image",
        "input image size unknown",
        "frames that do not decode",
        "one black frame",
        "frozen",
        "a small but real change",
        "all black is not also frozen",
        "a clip cut short by bad frames is not also frozen",
        "sound asked, none in the file",
        "sound asked and there",
    ],
)
def test_each_rule_flags_only_what_it_is_about(changes, expected, code):
    """A probe one step past a threshold gets exactly that finding; within it, none."""
    found = [finding.code for finding in findings(clean_probe(**changes), expected)]
    assert found == ([code] if code else [])
