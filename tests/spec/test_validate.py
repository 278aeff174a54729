"""Pre-flight rules: each bad row gives a Problem naming row, line and field, in one pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from batchgen.errors import Problem
from batchgen.jobs import JobSpec
from batchgen.manifest.capabilities import CAPABILITIES, capability_problems
from batchgen.manifest.resolve import check_manifest, resolve_manifest
from tests.conftest import run_cli

V1 = {"model_name": "kling-v1", "mode": "std", "duration": "5"}
MASK = "mask.png"
POINTS = [{"x": 10, "y": 10}, {"x": 100, "y": 50}]


def picture(path: Path, size: tuple[int, int] = (480, 320), kind: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 120, 200)).save(path, format=kind)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    picture(tmp_path / "a.jpg")
    picture(tmp_path / "b.png")
    picture(tmp_path / MASK)
    picture(tmp_path / "small-mask.png", (240, 160))
    return tmp_path


def check_one(folder: Path, row: dict[str, Any]) -> list[Problem]:
    """The problems of a manifest holding this single row (line 2 of the file)."""
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump({"rows": [{"id": "r", "image": "a.jpg", **row}]}))
    found = list(resolve_manifest(path).iter_jobs())
    return [item for item in found if isinstance(item, Problem)]


BAD_ROWS = [
    ({"prompt": "x" * 501}, "prompt", "500"),
    ({"negative_prompt": "x" * 201}, "negative_prompt", "200"),
    ({**V1, "cfg_scale": 1.5}, "cfg_scale", "1"),
    ({**V1, "cfg_scale": True}, "cfg_scale", "between 0 and 1"),
    ({"mode": "ultra"}, "mode", "'std', 'pro' or '4k'"),
    ({"duration": "five"}, "duration", "whole seconds"),
    ({"duration": 7}, "duration", "kling-v1 takes 5 or 10"),
    ({"model_name": "kling-v9"}, "model_name", "kling-v2-master"),
    ({"prompt": ["a list"]}, "prompt", "valid string"),
    ({"callback_url": "ftp://host/x"}, "callback_url", "http"),
    ({"watermark_info": {"enabled": "maybe"}}, "watermark_info.enabled", "boolean"),
    ({"camera_control": {"type": "zoom_in"}}, "camera_control.type", "simple"),
    ({"camera_control": {"type": "simple"}}, "camera_control", "needs a config"),
    (
        {"camera_control": {"type": "down_back", "config": {"zoom": 1}}},
        "camera_control",
        "only for type simple",
    ),
    (
        {"camera_control": {"type": "simple", "config": {"zoom": 1, "pan": 2}}},
        "camera_control.config",
        "exactly one",
    ),
    (
        {"camera_control": {"type": "simple", "config": {"zoom": 11}}},
        "camera_control.config.zoom",
        "10",
    ),
    (
        {**V1, "dynamic_masks": [{"mask": MASK, "trajectories": POINTS}] * 7},
        "dynamic_masks",
        "at most 6",
    ),
    (
        {**V1, "dynamic_masks": [{"mask": MASK, "trajectories": POINTS[:1]}]},
        "dynamic_masks.0.trajectories",
        "at least 2",
    ),
    (
        {
            **V1,
            "dynamic_masks": [
                {"mask": MASK, "trajectories": [{"x": -1, "y": 0}, {"x": 1, "y": 0}]}
            ],
        },
        "dynamic_masks.0.trajectories.0.x",
        "greater than or equal to 0",
    ),
    ({"image": None, "image_tail": "b.png"}, "image", "end-frame-only"),
    ({"image": None}, "image", "required"),
    (
        {
            "model_name": "kling-v1-5",
            "mode": "pro",
            "image_tail": "b.png",
            "camera_control": {"type": "simple", "config": {"zoom": 2}},
        },
        "camera_control",
        "cannot be combined with image_tail",
    ),
    ({**V1, "static_mask": MASK, "image_tail": "b.png"}, "static_mask", "cannot be combined"),
    ({"image": "missing.jpg"}, "image", "file not found"),
    ({"image": "ftp://host/a.jpg"}, "image", "http"),
    (
        {**V1, "static_mask": "small-mask.png"},
        "static_mask",
        "size of image, 480x320 (got 240x160)",
    ),
    (
        {**V1, "dynamic_masks": [{"mask": "small-mask.png", "trajectories": POINTS}]},
        "dynamic_masks.0.mask",
        "480x320",
    ),
    (
        {**V1, "dynamic_masks": [{"mask": MASK, "trajectories": [*POINTS, {"x": 480, "y": 5}]}]},
        "dynamic_masks.0.trajectories.2",
        "outside",
    ),
]


@pytest.mark.parametrize(("row", "field", "fragment"), BAD_ROWS)
def test_each_rule_names_row_line_and_field(
    folder: Path, row: dict[str, Any], field: str, fragment: str
) -> None:
    """A row breaking one rule gives a Problem with the row id, its line, the field and the rule."""
    found = check_one(folder, row)
    assert [(p.row, p.line, p.field) for p in found] == [("r", 2, field)], found
    assert fragment in found[0].message


CAPABILITY_ROWS = [
    ({"model_name": "kling-v2-1", "cfg_scale": 0.5}, "cfg_scale", "kling-v2-1"),
    ({"model_name": "kling-v3", "cfg_scale": 0.5}, "cfg_scale", "kling-v3"),
    ({"model_name": "kling-v2-master", "mode": "pro"}, "mode", "kling-v2-master takes no mode"),
    ({"model_name": "kling-v2-1-master", "mode": "std"}, "mode", "kling-v2-1-master"),
    (
        {"model_name": "kling-v2-master", "duration": 15},
        "duration",
        "kling-v2-master takes 5 or 10",
    ),
    (
        {"model_name": "kling-v1-6", "mode": "std", "image_tail": "b.png"},
        "image_tail",
        "kling-v1-6 supports an end frame (image_tail) only in pro 5 or 10 s (got std 5 s)",
    ),
    (
        {"model_name": "kling-v2-master", "image_tail": "b.png"},
        "image_tail",
        "not supported by kling-v2-master",
    ),
    (
        {"model_name": "kling-v1", "mode": "pro", "duration": 10, "image_tail": "b.png"},
        "image_tail",
        "kling-v1",
    ),
    ({"model_name": "kling-v2-6", "static_mask": MASK}, "static_mask", "kling-v2-6"),
    (
        {
            "model_name": "kling-v1-5",
            "mode": "std",
            "dynamic_masks": [{"mask": MASK, "trajectories": POINTS}],
        },
        "dynamic_masks",
        "kling-v1-5 supports motion brush",
    ),
    (
        {"model_name": "kling-v1-6", "camera_control": {"type": "down_back"}},
        "camera_control",
        "kling-v1-6",
    ),
    (
        {"model_name": "kling-v1-5", "mode": "pro", "camera_control": {"type": "down_back"}},
        "camera_control",
        "kling-v1-5 takes camera_control type simple only",
    ),
    (
        {"model_name": "kling-v1", "camera_control": {"type": "down_back"}},
        "camera_control",
        "not supported by kling-v1",
    ),
]


@pytest.mark.parametrize(("row", "field", "fragment"), CAPABILITY_ROWS)
def test_capability_errors_name_the_model(
    folder: Path, row: dict[str, Any], field: str, fragment: str
) -> None:
    """A field, mode or duration the model does not take is refused, naming field and model."""
    found = check_one(folder, row)
    assert [(p.row, p.field) for p in found] == [("r", field)], found
    assert fragment in found[0].message


GOOD_ROWS = [
    {"model_name": "kling-v3", "mode": "pro", "duration": 3, "image_tail": "b.png"},
    {"model_name": "kling-v3", "duration": 15},
    {"model_name": "kling-v2-1", "mode": "pro", "duration": 10, "image_tail": "b.png"},
    {
        "model_name": "kling-v1-5",
        "mode": "pro",
        "static_mask": MASK,
        "dynamic_masks": [{"mask": MASK, "trajectories": POINTS}] * 6,
    },
    {
        "model_name": "kling-v1-5",
        "mode": "pro",
        "camera_control": {"type": "simple", "config": {"roll": -3}},
    },
    {"model_name": "kling-v1-6", "cfg_scale": 0},
    {"callback_url": "https://example.com/hook", "watermark_info": {"enabled": True}},
    {"image": "https://example.com/frame.jpg"},
    {"prompt": "x" * 500, "negative_prompt": "y" * 200},
]


@pytest.mark.parametrize("row", GOOD_ROWS)
def test_rows_the_capability_map_allows_pass(folder: Path, row: dict[str, Any]) -> None:
    """Combinations the capability map and §16 limits allow give no problem."""
    assert check_one(folder, row) == []


def test_unset_fields_use_the_api_defaults_for_capabilities() -> None:
    """With nothing set the model is kling-v1, std, 5 s; unknown models are named."""
    assert capability_problems({}) == []
    assert capability_problems({"model_name": "kling-v1", "image_tail": "x"}) == []
    assert capability_problems({"model_name": "nope"}) == [("model_name", "unknown model 'nope'")]
    assert set(CAPABILITIES) >= {"kling-v1", "kling-v2-master", "kling-v3"}


def test_every_problem_of_a_row_is_reported(folder: Path) -> None:
    """A row with several broken fields reports each, not only the first."""
    found = check_one(
        folder,
        {
            "prompt": "x" * 600,
            "mode": "fast",
            "image": "missing.png",
            "model_name": "kling-v2-master",
            "cfg_scale": 0.4,
        },
    )
    assert [p.field for p in found] == ["prompt", "mode", "cfg_scale", "image"]


def test_all_rows_are_checked_in_one_pass(folder: Path) -> None:
    """Problems of many rows come back from one check, and the good rows still make jobs."""
    picture(folder / "tiny.png", (200, 200))
    picture(folder / "wide.jpg", (1000, 300))
    picture(folder / "anim.gif", kind="GIF")
    rows = [
        {"id": "good-1", "image": "a.jpg"},
        {"id": "long", "image": "a.jpg", "prompt": "x" * 501},
        {"id": "tiny", "image": "tiny.png"},
        {"id": "wide", "image": "wide.jpg"},
        {"id": "gif", "image": "anim.gif"},
        {"id": "good-2", "image": "b.png"},
        {"id": "nomode", "image": "b.png", "mode": "pro"},
    ]
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"model_name": "kling-v2-master"}, "rows": rows}))
    report = check_manifest(resolve_manifest(path))
    assert report.jobs == 2
    assert [(p.row, p.field) for p in report.problems] == [
        ("long", "prompt"),
        ("tiny", "image"),
        ("wide", "image"),
        ("gif", "image"),
        ("nomode", "mode"),
    ]
    lines = path.read_text().splitlines()
    starts = [lines.index(f"- id: {p.row}") + 1 for p in report.problems]
    assert [p.line for p in report.problems] == starts
    assert "at least 300 px (got 200x200)" in report.problems[1].message
    assert "1:2.5" in report.problems[2].message
    assert report.invalid_rows == ["long", "tiny", "wide", "gif", "nomode"]


def test_matrix_variants_are_checked_one_by_one(folder: Path) -> None:
    """In a model matrix, only the variants a model refuses are problems; the rest are jobs."""
    path = folder / "m.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "matrix": {"model_name": ["kling-v1", "kling-v2-master"]},
                "rows": [{"id": "r", "image": "a.jpg", "cfg_scale": 0.5}],
            }
        )
    )
    found = list(resolve_manifest(path).iter_jobs())
    assert isinstance(found[0], JobSpec) and found[0].row_id == "r__model_name-kling-v1"
    assert isinstance(found[1], Problem) and found[1].row == "r__model_name-kling-v2-master"


def test_repeated_variant_reports_its_problem_once(folder: Path) -> None:
    """A bad row with repeat: 50 is one problem (named by its row), not fifty."""
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump({"repeat": 50, "rows": [{"id": "r", "image": "missing.jpg"}]}))
    report = check_manifest(resolve_manifest(path))
    assert report.total_problems == 1 and report.invalid_rows == ["r"]


def test_a_broken_model_name_does_not_add_capability_noise(folder: Path) -> None:
    """An unknown model is one problem; capabilities are not judged against a guessed model."""
    found = check_one(
        folder,
        {
            "model_name": "kling-v9",
            "mode": "pro",
            "duration": 10,
            "image_tail": "b.png",
            "cfg_scale": 0.5,
        },
    )
    assert [p.field for p in found] == ["model_name"]


def test_a_broken_duration_does_not_add_capability_noise(folder: Path) -> None:
    """An unusable duration is not replaced by a guess when judging the end frame."""
    found = check_one(
        folder,
        {
            "model_name": "kling-v1-6",
            "mode": "pro",
            "duration": "x",
            "image_tail": "b.png",
            "cfg_scale": 0.5,
        },
    )
    assert [p.field for p in found] == ["duration"]


def test_a_row_gives_all_its_problems_in_one_pass(folder: Path) -> None:
    """A misspelt field, a bad mode and a bad duration in one row are three problems."""
    row = {"model_name": "kling-v1", "promt": "waves", "mode": "fast", "duration": 7}
    found = check_one(folder, row)
    assert [(p.row, p.line, p.field) for p in found] == [
        ("r", 2, "promt"),
        ("r", 2, "mode"),
        ("r", 2, "duration"),
    ]
    assert "did you mean 'prompt'" in found[0].message
    assert "kling-v1 takes 5 or 10 seconds" in found[2].message


def test_a_mode_the_model_lacks_does_not_hide_a_bad_duration(folder: Path) -> None:
    """4k on kling-v2-6 and 8 s on kling-v2-6 are both reported."""
    found = check_one(folder, {"model_name": "kling-v2-6", "mode": "4k", "duration": 8})
    assert [p.field for p in found] == ["mode", "duration"]


def test_consequences_of_a_misspelt_key_are_left_out(folder: Path) -> None:
    """`imge` is one problem, not also "image: required"; `Mode: pro` does not also make the end
    frame (pro only on kling-v1-6) a problem."""
    path = folder / "m.yaml"
    rows = [
        {"id": "a", "imge": "a.jpg"},
        {
            "id": "b",
            "image": "a.jpg",
            "model_name": "kling-v1-6",
            "Mode": "pro",
            "image_tail": "b.png",
        },
    ]
    path.write_text(yaml.safe_dump({"rows": rows}))
    found = list(resolve_manifest(path).iter_jobs())
    assert [(p.row, p.field) for p in found] == [("a", "imge"), ("b", "Mode")]  # type: ignore[union-attr]


def test_a_row_with_problems_yields_no_job_even_if_its_fields_are_fine(folder: Path) -> None:
    """A bad id, repeat or key stops the row from being sent, and its fields are still checked."""
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump({"rows": [{"id": "a b", "image": "a.jpg", "repeat": 0}]}))
    found = list(resolve_manifest(path).iter_jobs())
    assert [p.field for p in found] == ["id", "repeat"]  # type: ignore[union-attr]


def test_header_problems_do_not_stop_the_rows_from_being_checked(folder: Path) -> None:
    """A bad default is reported once; each row still gets its own problems; no job is made."""
    path = folder / "m.yaml"
    path.write_text(
        "defaults:\n  mode: ultra\nrows:\n  - {id: a, image: a.jpg, prompt: ok}\n"
        "  - {id: b, image: missing.jpg}\n"
    )
    found = list(resolve_manifest(path).iter_jobs())
    assert [(p.row, p.field) for p in found] == [("(manifest)", "defaults.mode"), ("b", "image")]  # type: ignore[union-attr]


def test_validate_refuses_a_manifest_without_rows(folder: Path, capsys: Any) -> None:
    """`rows: []` is refused by validate, as by run, naming the rows key."""
    path = folder / "m.yaml"
    path.write_text("defaults: {model_name: kling-v1}\nrows: []\n")
    assert run_cli("validate", path) == 2
    assert "field 'rows': the manifest has no rows" in capsys.readouterr().out


def test_a_glob_that_matches_nothing_names_the_pattern(folder: Path, capsys: Any) -> None:
    """A top-level glob without matches is one problem naming it and the folder (no `id ''`)."""
    path = folder / "m.yaml"
    path.write_text('images: "frames/*.png"\n')
    assert run_cli("validate", path) == 2
    out = capsys.readouterr().out
    assert "field 'images': no file matches 'frames/*.png'" in out and str(folder) in out
    assert "''" not in out and out.count("error:") == 1


@pytest.mark.parametrize("name", ["...csv", "..yaml", "-x.csv"])
def test_a_run_name_from_the_file_stem_is_checked_like_name(
    folder: Path, name: str, capsys: Any
) -> None:
    """A manifest whose stem is not a usable folder name is refused before anything is written."""
    path = folder / name
    path.write_text("id,image\nr,a.jpg\n" if name.endswith(".csv") else "rows: [{image: a.jpg}]\n")
    runs = folder / "runs"
    assert run_cli("validate", path) == 2
    assert run_cli("run", path, "-o", runs / "out", base_url="http://127.0.0.1:9") == 2
    assert "the run name comes from the file name" in capsys.readouterr().err
    assert not runs.exists()  # OUTPUT/.. would be runs/


def test_a_name_key_makes_any_file_name_usable(folder: Path) -> None:
    """With `name:` set, the file's stem does not matter."""
    path = folder / "..yaml"
    path.write_text("name: good\nrows: [{image: a.jpg}]\n")
    assert resolve_manifest(path).name == "good"


def test_run_refuses_a_manifest_without_rows_even_when_skipping_invalid_rows(
    folder: Path, capsys: Any
) -> None:
    """`run --skip-invalid` of `rows: []` exits 2 like `run`: there is nothing to skip to."""
    path = folder / "m.yaml"
    path.write_text("rows: []\n")
    args = ("run", path, "-o", folder / "out")
    assert run_cli(*args, "--skip-invalid", base_url="http://127.0.0.1:9") == 2
    assert run_cli(*args, base_url="http://127.0.0.1:9") == 2
    assert "the manifest has no rows" in capsys.readouterr().err
