"""The fields of the current models (sound, 4k, multi-shot, elements, voices), accepted where the
model takes them and refused, naming row, field and model, where it does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from batchgen.errors import Problem
from batchgen.jobs import JobSpec
from batchgen.manifest.resolve import resolve_manifest

V3 = {"model_name": "kling-v3", "mode": "pro", "duration": 8}
V26 = {"model_name": "kling-v2-6", "mode": "pro", "duration": 5}
VOICE = {"voice_list": [{"voice_id": "v-1"}], "prompt": "<<<voice_1>>> says hello"}
SHOTS = [{"prompt": "wide shot", "duration": 3}, {"prompt": "close-up", "duration": 5}]
MULTI = {"multi_shot": True, "shot_type": "customize", "multi_prompt": SHOTS}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, colour in (("a.png", 10), ("b.png", 200)):
        Image.new("RGB", (480, 320), (colour, 90, 160)).save(tmp_path / name)
    return tmp_path


def resolve_row(folder: Path, row: dict[str, Any]) -> list[JobSpec | Problem]:
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump({"rows": [{"id": "r", "image": "a.png", **row}]}))
    return list(resolve_manifest(path).iter_jobs())


ACCEPTED = [
    pytest.param({**V3, "sound": "on"}, id="v3 pro sound on"),
    pytest.param({**V3, "mode": "std", "sound": "on"}, id="v3 std sound on"),
    pytest.param({**V3, "mode": "4k", "duration": 15}, id="v3 4k 15 s"),
    pytest.param({**V3, "duration": 3, "sound": "off"}, id="v3 3 s sound off"),
    pytest.param({**V3, "sound": "on", "image_tail": "b.png"}, id="v3 sound with end frame"),
    pytest.param({**V26, "sound": "on"}, id="v2-6 pro sound on"),
    pytest.param({**V26, "mode": "std", "sound": "off"}, id="v2-6 std sound off"),
    pytest.param({**V26, "sound": "on", **VOICE}, id="v2-6 pro voices"),
    pytest.param({**V3, "sound": "on", **VOICE}, id="v3 voices"),
    pytest.param({**V3, "element_list": [{"element_id": 7}] * 3}, id="v3 three elements"),
    pytest.param({**V3, **MULTI}, id="v3 multi-shot customize"),
    pytest.param({**V3, **MULTI, "image_tail": "b.png"}, id="v3 multi-shot with end frame"),
    pytest.param(
        {**V3, "multi_shot": True, "shot_type": "intelligence", "prompt": "a, then b"},
        id="v3 multi-shot intelligence",
    ),
]


@pytest.mark.parametrize("row", ACCEPTED)
def test_current_model_fields_are_accepted_where_the_model_takes_them(
    folder: Path, row: dict[str, Any]
) -> None:
    """Each row gives one job, and its request carries the new fields as the API wants them."""
    (job,) = resolve_row(folder, row)
    assert isinstance(job, JobSpec), job
    assert job.request.get("sound") == row.get("sound")


REFUSED = [
    ({"model_name": "kling-v1", "sound": "off"}, "sound", "kling-v1 has no sound option"),
    ({**V26, "mode": "std", "sound": "on"}, "sound", "kling-v2-6 makes sound only in pro"),
    ({**V26, "sound": "on", "image_tail": "b.png"}, "sound", "kling-v2-6 makes end-frame"),
    ({"model_name": "kling-v2-5-turbo", "sound": "on"}, "sound", "kling-v2-5-turbo has no sound"),
    ({**V26, "mode": "4k"}, "mode", "kling-v2-6 takes mode std or pro (got '4k')"),
    ({"model_name": "kling-v2-master", "mode": "4k"}, "mode", "kling-v2-master takes no mode"),
    ({**V26, "duration": 8}, "duration", "kling-v2-6 takes 5 or 10 seconds"),
    ({**V3, "duration": 16}, "duration", "whole seconds from 3 to 15"),
    ({**V26, "mode": "std", **VOICE}, "voice_list", "kling-v2-6 supports voice control"),
    ({"model_name": "kling-v2-1", **VOICE}, "voice_list", "not supported by kling-v2-1"),
    ({**V26, "element_list": [{"element_id": 1}]}, "element_list", "not supported by kling-v2-6"),
    ({**V3, "element_list": [{"element_id": 1}] * 4}, "element_list", "at most 3"),
    ({**V3, "sound": "on", "voice_list": [{"voice_id": "v"}] * 3}, "voice_list", "at most 2"),
    ({**V26, **MULTI}, "multi_shot", "multi-shot is not supported by kling-v2-6"),
    ({**V3, **MULTI, "multi_prompt": SHOTS * 4}, "multi_prompt", "at most 6"),
    (
        {**V3, **MULTI, "multi_prompt": [{"prompt": "x" * 513, "duration": 8}]},
        "multi_prompt.0.prompt",
        "at most 512",
    ),
    ({**V3, **MULTI, "duration": 10}, "multi_prompt", "3 + 5 = 8 s, not the duration 10 s"),
    ({**V3, "multi_shot": True}, "shot_type", "required with multi_shot: true"),
    ({**V3, "shot_type": "customize"}, "shot_type", "needs multi_shot: true"),
    ({**V3, "multi_shot": True, "shot_type": "customize"}, "multi_prompt", "required"),
    (
        {**V3, "multi_shot": True, "shot_type": "intelligence"},
        "prompt",
        "required with shot_type intelligence",
    ),
    ({**V3, "sound": "off", **VOICE}, "sound", "must be on with voice_list"),
    (
        {**V3, "sound": "on", **VOICE, "element_list": [{"element_id": 1}]},
        "element_list",
        "cannot be combined with voice_list",
    ),
    (
        {**V3, "sound": "on", **VOICE, "prompt": "<<<voice_1>>> and <<<voice_2>>>"},
        "prompt",
        "<<<voice_2>>> but voice_list has 1 voice(s)",
    ),
    ({**V3, "sound": "on", **VOICE, "prompt": "no voice"}, "prompt", "write <<<voice_1>>>"),
    ({"model_name": "kling-v1", "cfg_scale": 0.5, "sound": "loud"}, "sound", "'on' or 'off'"),
]


@pytest.mark.parametrize(("row", "field", "message"), REFUSED)
def test_current_model_fields_are_refused_naming_row_field_and_model(
    folder: Path, row: dict[str, Any], field: str, message: str
) -> None:
    """The row gives no job and one problem, on its line, naming the field (and the model)."""
    found = resolve_row(folder, row)
    assert not [item for item in found if isinstance(item, JobSpec)]
    assert [(p.row, p.line, p.field) for p in found] == [("r", 2, field)]  # type: ignore[union-attr]
    assert message in found[0].message  # type: ignore[union-attr]


def test_shots_are_numbered_in_the_request(folder: Path) -> None:
    """multi_prompt shots get their 1-based index; durations are strings, as the API wants."""
    (job,) = resolve_row(folder, {**V3, **MULTI})
    assert isinstance(job, JobSpec)
    assert job.request["multi_prompt"] == [
        {"index": 1, "prompt": "wide shot", "duration": "3"},
        {"index": 2, "prompt": "close-up", "duration": "5"},
    ]


def test_a_shot_index_out_of_place_is_refused(folder: Path) -> None:
    """A shot written with the index of another position is refused."""
    shots = [{**SHOTS[0], "index": 2}, SHOTS[1]]
    (problem,) = resolve_row(folder, {**V3, **MULTI, "multi_prompt": shots})
    assert isinstance(problem, Problem) and problem.field == "multi_prompt"
    assert "shot 1 has index 2" in problem.message


def test_unquoted_on_in_yaml_is_the_text_on(folder: Path) -> None:
    """`sound: on` unquoted (a YAML 1.1 boolean) is read as the text "on", as meant."""
    path = folder / "m.yaml"
    path.write_text("rows:\n  - {image: a.png, model_name: kling-v3, sound: on}\n")
    (job,) = resolve_manifest(path).iter_jobs()
    assert isinstance(job, JobSpec) and job.request["sound"] == "on"


def test_current_model_fields_from_a_csv(folder: Path) -> None:
    """In a CSV, voice_list and multi_prompt are JSON cells; sound and multi_shot plain text."""
    path = folder / "rows.csv"
    path.write_text(
        "id,image,model_name,mode,duration,sound,multi_shot,shot_type,multi_prompt\n"
        'a,a.png,kling-v3,pro,8,on,true,customize,"[{""prompt"": ""x"", ""duration"": 8}]"\n'
    )
    (job,) = resolve_manifest(path).iter_jobs()
    assert isinstance(job, JobSpec), job
    assert job.request["multi_shot"] is True and job.request["sound"] == "on"
