"""Every downloaded video is probed and checked: the simulator's faulty videos are flagged with
the right finding, its good ones with none, and a page that is no video never becomes done."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from batchgen.media import Expected, FrameStats, Probe, check_video, findings
from batchgen.simulator.footage import Defect
from batchgen.simulator.video import render_mp4

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
