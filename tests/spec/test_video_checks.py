"""Every downloaded video is probed and checked: the simulator's faulty videos are flagged with
the right finding, its good ones with none, and a page that is no video never becomes done."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import av
import pytest
from PIL import Image

from batchgen.media import (
    CheckWorkers,
    Expected,
    FrameStats,
    Probe,
    VideoCheck,
    check_video,
    findings,
    probe_video,
)
from batchgen.media.workers import CRASHED
from batchgen.runner.in_place import shallower
from batchgen.simulator.footage import Defect
from batchgen.simulator.video import garble, render_mp4
from batchgen.state.records import CheckRecord

# -- the simulator's videos, through a whole run -------------------------------------------------


# -- sound: on, which manifests cannot say yet: jobs straight into a state ------------------------


# -- a page that is no video -----------------------------------------------------------------------


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


# -- clips with B-frames, as real encoders write them ------------------------------------------


def b_frame_clip(
    path: Path,
    defect: str | None = None,
    seconds: int = 5,
    fps: int = 8,
    keyframe_every: int | None = None,
) -> Path:
    """An H.264 clip with B-frames (x264 `veryfast`) of a textured picture panning, or black,
    or still; `garbled` scrambles its media data from 30 % on. One keyframe, unless
    `keyframe_every` frames."""
    size = (320, 192)
    texture = Image.effect_noise((80, 48), 80).convert("RGB").resize((480, 288))
    count = seconds * fps
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "bf": "3"}
        if keyframe_every is not None:
            stream.options = {**stream.options, "g": str(keyframe_every), "sc_threshold": "0"}
        for i in range(count):
            x = 0 if defect == "frozen" else i * 160 // count
            picture = texture.crop((x, x // 2, x + size[0], x // 2 + size[1]))
            if defect == "black":
                picture = Image.new("RGB", size)
            container.mux(stream.encode(av.VideoFrame.from_image(picture)))
        container.mux(stream.encode(None))
    if defect == "garbled":
        path.write_bytes(garble(path.read_bytes()))
    return path


def test_a_clean_clip_with_b_frames_is_checked_on_its_i_and_p_frames(tmp_path):
    """Every frame is counted; the B-frames are skipped, not decoded, and nothing is found."""
    probe = probe_video(b_frame_clip(tmp_path / "clean.mp4"))
    assert probe.frames == 40 == probe.decoded + probe.skipped and probe.skipped > 0
    assert probe.error is None and probe.stats.sampled >= 8
    assert findings(probe, Expected(duration_s=5.0, aspect=320 / 192)) == []


@pytest.mark.parametrize(
    ("defect", "code"),
    [("frozen", "frozen"), ("black", "black_frames"), ("garbled", "undecodable")],
)
def test_a_defective_clip_with_b_frames_is_still_flagged(tmp_path, defect, code):
    """Skipping B-frames hides no defect of the clip: still, black and garbled are flagged."""
    check = check_video(b_frame_clip(tmp_path / f"{defect}.mp4", defect), Expected(5.0))
    assert [finding.code for finding in check.findings] == [code]


def test_a_probe_samples_a_clip_alike_whatever_clips_its_thread_probed_before(tmp_path):
    """The thread's scaler is kept from probe to probe: a clip of another size in between
    changes nothing of what a clip's samples say (its stats, alone in a new thread)."""
    image = Image.effect_mandelbrot((480, 320), (-2, -1.2, 1, 1.2), 80).convert("RGB")
    wide = tmp_path / "wide.mp4"
    wide.write_bytes(render_mp4(image, motion=5))
    small = b_frame_clip(tmp_path / "small.mp4")
    alone: dict[str, Probe] = {}

    def probe_alone(path: Path) -> None:
        alone[path.name] = probe_video(path)

    for path in (wide, small):
        thread = threading.Thread(target=probe_alone, args=(path,))
        thread.start()
        thread.join()
    in_turn = [probe_video(path) for path in (small, wide, small, wide)]
    assert [probe.stats for probe in in_turn] == [alone[p.name].stats for p in (small, wide) * 2]
    assert alone["wide.mp4"].stats != alone["small.mp4"].stats  # (two pictures, told apart)
    assert all(probe.stats.sampled >= 8 and probe.stats.change > 0 for probe in in_turn)


def test_a_clip_with_frames_that_do_not_decode_is_decoded_in_full_to_count_them(tmp_path):
    """Once a frame fails, every frame is decoded: the message counts them all, none skipped,
    and the probe says so."""
    probe = probe_video(b_frame_clip(tmp_path / "garbled.mp4", "garbled"))
    assert probe.skipped == 0 and probe.frames == 40 and probe.error is not None
    assert probe.decode == "all"
    assert probe_video(b_frame_clip(tmp_path / "clean.mp4")).decode == "I/P"


# -- --qa keyframes: the keyframes alone ---------------------------------------------------------


def keyframes_of(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(packet.is_keyframe for packet in container.demux(video=0) if packet.size)


@pytest.mark.parametrize(
    ("defect", "code"), [(None, None), ("frozen", "frozen"), ("black", "black_frames")]
)
def test_keyframes_alone_are_decoded_and_judged_where_a_clip_has_several(tmp_path, defect, code):
    """A keyframe every 8 frames: 5 of 40 decoded, each one a sample, every frame still
    counted; black and still clips flagged as with every I/P frame decoded."""
    clip = b_frame_clip(tmp_path / f"{defect}.mp4", defect, keyframe_every=8)
    assert keyframes_of(clip) == 5
    check = check_video(clip, Expected(5.0, 320 / 192), decode="keyframes")
    probe = check.probe
    assert (probe.frames, probe.decoded, probe.skipped) == (40, 5, 35)
    assert probe.decode == "keyframes" and probe.stats.sampled == 5 and probe.error is None
    assert [finding.code for finding in check.findings] == ([code] if code else [])
    full = check_video(clip, Expected(5.0, 320 / 192))
    assert full.probe.decoded > probe.decoded
    assert [f.code for f in full.findings] == [f.code for f in check.findings]


def test_keyframes_alone_cannot_call_a_one_keyframe_clip_frozen_and_say_so(tmp_path):
    """What --qa keyframes gives up, as its help says: a still clip with one keyframe has one
    sample, and is not called frozen; its facts and a black first frame are still checked."""
    still = b_frame_clip(tmp_path / "still.mp4", "frozen")
    probe = probe_video(still, decode="keyframes")
    assert (probe.decoded, probe.stats.sampled, probe.decode) == (1, 1, "keyframes")
    assert findings(probe, Expected(5.0)) == []
    assert [f.code for f in check_video(still, Expected(5.0)).findings] == ["frozen"]
    black = check_video(b_frame_clip(tmp_path / "black.mp4", "black"), Expected(3.0), "keyframes")
    assert [finding.code for finding in black.findings] == ["duration_off", "black_frames"]


def test_workers_check_with_the_decode_they_were_given(tmp_path):
    clip = b_frame_clip(tmp_path / "clip.mp4", keyframe_every=10)

    async def main() -> tuple[VideoCheck, VideoCheck]:
        async with CheckWorkers(1, decode="keyframes") as keyframes, CheckWorkers(1) as full:
            return await keyframes.check(clip, Expected()), await full.check(clip, Expected())

    keyframes, full = anyio.run(main)
    assert (keyframes.probe.decode, keyframes.probe.decoded) == ("keyframes", 4)
    assert full.probe.decode == "I/P" and full.probe.decoded > 4


# -- the checks in worker processes ----------------------------------------------------------------


def pid_of_checker(path: Path, expected: Expected) -> VideoCheck:
    """A check that says which process ran it (in `codec`)."""
    return VideoCheck(Probe(codec=str(os.getpid())), ())


def dies_on_deadly_files(path: Path, expected: Expected) -> VideoCheck:
    """A check whose process dies, as when the decoder crashes, on files named `deadly*`."""
    if path.name.startswith("deadly"):
        os._exit(1)
    return pid_of_checker(path, expected)


def meets_another_checker(path: Path, expected: Expected) -> VideoCheck:
    """A check that leaves its pid in the folder `path` and waits (up to 30 s) to see another
    check's there; `codec` says how many it saw."""
    (path / str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(list(path.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return VideoCheck(Probe(codec=str(len(list(path.iterdir())))), ())


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_check_runs_in_a_worker_process_that_ends_with_the_block(tmp_path):
    """A real video is judged in a child process as in this one; leaving the block ends it."""
    path = tmp_path / "frozen.mp4"
    path.write_bytes(render_mp4(Image.new("RGB", (480, 320), (40, 90, 160)), defect=Defect.FROZEN))

    async def check() -> tuple[VideoCheck, set[int]]:
        async with CheckWorkers(1) as workers:
            checked = await workers.check(path, Expected(5.0))
        async with CheckWorkers(2, pid_of_checker) as workers:
            pids = {int((await workers.check(path, Expected())).probe.codec or 0) for _ in "ab"}
        return checked, pids

    checked, pids = anyio.run(check)
    assert [finding.code for finding in checked.findings] == ["frozen"]
    assert checked == check_video(path, Expected(5.0))
    assert os.getpid() not in pids and not any(running(pid) for pid in pids)


def test_n_workers_check_n_videos_at_once(tmp_path):
    """Two checks given to two workers run together, each in its own process."""

    async def check_two() -> list[str | None]:
        seen: list[str | None] = []
        workers = CheckWorkers(2, meets_another_checker)
        async with workers, anyio.create_task_group() as group:
            for _ in range(2):
                group.start_soon(seen_by, workers, seen)
        return seen

    async def seen_by(workers: CheckWorkers, seen: list[str | None]) -> None:
        seen.append((await workers.check(tmp_path, Expected())).probe.codec)

    assert anyio.run(check_two) == ["2", "2"]


def test_a_worker_that_dies_is_replaced_and_a_file_that_kills_it_twice_is_flagged(tmp_path):
    """The check is tried once more in a new process; a file that kills that one too is
    undecodable, and the next file is checked as usual."""
    deadly, fine = tmp_path / "deadly.mp4", tmp_path / "fine.mp4"

    async def check() -> tuple[VideoCheck, VideoCheck]:
        async with CheckWorkers(2, dies_on_deadly_files) as workers:
            return await workers.check(deadly, Expected()), await workers.check(fine, Expected())

    flagged, after = anyio.run(check)
    assert [finding.message for finding in flagged.findings] == [CRASHED]
    assert flagged.findings[0].code == "undecodable" and after.findings == ()


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


@pytest.mark.parametrize(
    ("recorded", "asked", "owed"),
    [
        (None, "keyframes", True),  # no check at all
        ("keyframes", "I/P", True),
        ("keyframes", "keyframes", False),
        ("I/P", "keyframes", False),
        ("I/P", "I/P", False),
        ("all", "I/P", False),  # every frame, after one failed
        ("(none)", "I/P", False),  # a check from before the probe said: its I/P frames
        ("(none)", "keyframes", False),
    ],
)
def test_a_check_is_owed_where_the_one_recorded_looked_at_less(recorded, asked, owed):
    """`verify --qa`: which done videos get checked again, by what their check decoded."""
    probe = {"codec": "h264"} if recorded == "(none)" else {"decode": recorded}
    check = None if recorded is None else CheckRecord(json.dumps(probe), "[]")
    assert shallower(check, asked) is owed
