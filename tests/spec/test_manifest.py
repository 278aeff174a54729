"""The manifest language: reading YAML and CSV, expansion, row ids and job-id stability."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from batchgen.errors import Problem, UsageError
from batchgen.jobs import JobSpec, job_id_for
from batchgen.manifest.resolve import ResolveOptions, check_manifest, resolve_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests"


def picture(path: Path, size: tuple[int, int] = (480, 320), colour: int = 90) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (colour, 120, 200)).save(path)
    return path.name


def write_yaml(folder: Path, doc: dict[str, Any], name: str = "m.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def items(path: Path, **options: Any) -> list[JobSpec | Problem]:
    return list(resolve_manifest(path, ResolveOptions(**options)).iter_jobs())


def jobs(path: Path) -> list[JobSpec]:
    found = items(path)
    problems = [item for item in found if isinstance(item, Problem)]
    assert not problems, problems
    return [item for item in found if isinstance(item, JobSpec)]


def problems(path: Path) -> list[Problem]:
    return [item for item in items(path) if isinstance(item, Problem)]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    picture(tmp_path / "a.jpg", colour=10)
    picture(tmp_path / "b.png", colour=200)
    return tmp_path


def doc(rows: list[dict[str, Any]], **header: Any) -> dict[str, Any]:
    defaults = {"model_name": "kling-v2-master", "duration": 5}
    return {"defaults": defaults, **header, "rows": rows}


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("demo.yaml", 6),
        ("matrix.yaml", 18),
        ("from-csv.yaml", 4),
        ("glob.yaml", 3),
        ("features.yaml", 4),
        ("current-models.yaml", 5),
        ("rows.csv", 4),
    ],
)
def test_example_manifests_are_valid(name: str, count: int) -> None:
    """Every example manifest in manifests/ checks clean and gives its number of jobs."""
    manifest = resolve_manifest(EXAMPLES / name)
    report = check_manifest(manifest)
    assert report.problems == [] and report.jobs == count


def test_demo_is_kling_v2_master_with_string_durations() -> None:
    """The demo's six jobs use kling-v2-master, no mode, and durations as strings."""
    found = jobs(EXAMPLES / "demo.yaml")
    assert len(found) == 6
    assert {job.request["model_name"] for job in found} == {"kling-v2-master"}
    assert {job.request["duration"] for job in found} == {"5", "10"}
    assert all("mode" not in job.request for job in found)
    assert found[0].metadata == {"scene": "beach"}


def test_request_holds_only_set_fields_with_api_types(folder: Path) -> None:
    """A job's request has only the fields set, duration as text and cfg_scale as a float."""
    rows = [{"id": "x", "image": "a.jpg", "model_name": "kling-v1", "cfg_scale": 1, "duration": 10}]
    (job,) = jobs(write_yaml(folder, {"rows": rows}))
    assert job.request["duration"] == "10" and job.request["cfg_scale"] == 1.0
    assert isinstance(job.request["cfg_scale"], float)
    assert set(job.request) == {"image", "model_name", "cfg_scale", "duration"}
    assert job.request["image"].startswith("sha256:")


def test_yaml_and_csv_rows_give_the_same_jobs(folder: Path) -> None:
    """The same rows written as YAML and as CSV resolve to the same job ids."""
    rows = [
        {
            "id": "r1",
            "image": "a.jpg",
            "prompt": "waves",
            "model_name": "kling-v1",
            "duration": 5,
            "cfg_scale": 0.5,
            "take": "1",
        },
        {
            "id": "r2",
            "image": "b.png",
            "prompt": "wind",
            "model_name": "kling-v1",
            "duration": 10,
            "cfg_scale": 0.25,
            "take": "2",
        },
    ]
    from_yaml = jobs(write_yaml(folder, {"rows": rows}))
    from_csv = jobs(write_csv(folder / "rows.csv", rows))
    assert [j.job_id for j in from_yaml] == [j.job_id for j in from_csv]
    assert [j.metadata for j in from_csv] == [{"take": "1"}, {"take": "2"}]


def test_csv_rows_from_yaml_take_its_defaults(folder: Path) -> None:
    """`rows: rows.csv` reads the CSV next to the YAML and applies the YAML's defaults."""
    sub = folder / "data"
    picture(sub / "c.jpg")
    write_csv(
        sub / "rows.csv", [{"image": "c.jpg", "prompt": "p1"}, {"image": "c.jpg", "duration": "10"}]
    )
    found = jobs(
        write_yaml(
            folder,
            {"defaults": {"model_name": "kling-v2-master", "duration": 5}, "rows": "data/rows.csv"},
        )
    )
    assert [j.request["duration"] for j in found] == ["5", "10"]
    assert [j.row_id for j in found] == ["1", "2"]
    assert found[0].line == 2 and found[1].line == 3


def test_csv_empty_cell_means_unset(folder: Path) -> None:
    """An empty CSV cell leaves the field to its default, not to an empty value."""
    path = write_csv(
        folder / "m.csv",
        [{"image": "a.jpg", "prompt": "", "model_name": "kling-v1", "duration": ""}],
    )
    (job,) = jobs(path)
    assert "prompt" not in job.request and "duration" not in job.request


def test_yaml_null_clears_a_default(folder: Path) -> None:
    """`mode: null` in a row removes a default mode, for models that take none."""
    rows = [{"image": "a.jpg", "model_name": "kling-v2-master", "mode": None}]
    (job,) = jobs(write_yaml(folder, {"defaults": {"mode": "pro"}, "rows": rows}))
    assert "mode" not in job.request


def test_default_row_id_is_the_position(folder: Path) -> None:
    """A row without id is named by its 1-based position; `id: 010` stays the text "010"."""
    path = folder / "m.yaml"
    path.write_text(
        "defaults: {model_name: kling-v2-master}\nrows:\n  - {image: a.jpg}\n"
        "  - {id: 010, image: b.png}\n  - {image: a.jpg, prompt: x}\n"
    )
    assert [j.row_id for j in jobs(path)] == ["1", "010", "3"]


def test_row_lines_point_at_the_row_mapping(folder: Path) -> None:
    """Each job and problem carries the YAML line its row's mapping starts on."""
    path = folder / "m.yaml"
    path.write_text(
        "# comment\nname: lines\ndefaults:\n  model_name: kling-v2-master\nrows:\n"
        "  - id: one\n    image: a.jpg\n"
        "  - {id: two, image: b.png}\n"
        "  - id: three\n    image: missing.jpg\n"
    )
    found = items(path)
    assert [(getattr(i, "row_id", None) or i.row, i.line) for i in found] == [
        ("one", 6),
        ("two", 8),
        ("three", 9),
    ]


def test_duplicate_row_ids_name_both_rows(folder: Path) -> None:
    """Two rows with the same id: the second is refused, naming the first's line."""
    path = folder / "m.yaml"
    path.write_text(
        "defaults: {model_name: kling-v2-master}\nrows:\n  - {id: a, image: a.jpg}\n"
        "  - {id: a, image: b.png}\n"
    )
    (problem,) = problems(path)
    assert (problem.row, problem.line, problem.field) == ("a", 4, "id")
    assert "line 3" in problem.message


def test_same_request_twice_is_refused_naming_the_first_row(folder: Path) -> None:
    """Two rows resolving to the same job id (paying twice for one result) are an error."""
    rows = [
        {"id": "first", "image": "a.jpg", "prompt": "x"},
        {"id": "second", "image": "a.jpg", "prompt": "x"},
    ]
    found = items(write_yaml(folder, doc(rows)))
    assert isinstance(found[0], JobSpec)
    assert isinstance(found[1], Problem) and found[1].row == "second"
    assert "'first'" in found[1].message and "paid for twice" in found[1].message


@pytest.mark.parametrize("bad", ["a b", "-x", "x/y", "x__y", "é", "x" * 101, "a.b:c"])
def test_row_ids_must_be_file_name_safe(folder: Path, bad: str) -> None:
    """Ids with spaces, slashes, '__', non-ASCII or over 100 characters are refused."""
    (problem,) = problems(write_yaml(folder, doc([{"id": bad, "image": "a.jpg"}])))
    assert problem.field == "id" and "file name" in problem.message


def test_user_columns_become_metadata_and_misspellings_are_refused(folder: Path) -> None:
    """Unknown keys are metadata, a near-miss of a field is refused, `meta.` keeps one."""
    rows = [
        {"id": "ok", "image": "a.jpg", "scene": "beach", "shot": 3, "meta.modes": "x"},
        {"id": "typo", "image": "b.png", "promt": "waves"},
        {"id": "legacy", "image": "b.png", "model": "kling-v1"},
    ]
    found = items(write_yaml(folder, doc(rows)))
    assert isinstance(found[0], JobSpec)
    assert found[0].metadata == {"scene": "beach", "shot": 3, "modes": "x"}
    assert [(p.row, p.field) for p in found[1:]] == [("typo", "promt"), ("legacy", "model")]
    assert "'prompt'" in found[1].message and "'model_name'" in found[2].message


def test_misspelt_csv_column_is_one_header_problem(folder: Path) -> None:
    """A misspelt CSV column is reported once, at the header, not on every row."""
    path = write_csv(folder / "m.csv", [{"image": "a.jpg", "Prompt": f"p{i}"} for i in range(5)])
    (problem,) = problems(path)
    assert (problem.row, problem.line, problem.field) == ("(manifest)", 1, "Prompt")


def test_top_level_matrix_is_a_cartesian_product(folder: Path) -> None:
    """mode x duration x prompt variants, named readably in the row id and the variant."""
    manifest = {
        "defaults": {"model_name": "kling-v2-1"},
        "matrix": {
            "mode": ["std", "pro"],
            "duration": [5, 10],
            "prompt": {"calm": "slow waves", "storm": "big waves"},
        },
        "rows": [{"id": "beach", "image": "a.jpg"}],
    }
    found = jobs(write_yaml(folder, manifest))
    assert len(found) == 8 and len({j.job_id for j in found}) == 8
    assert found[-1].row_id == "beach__mode-pro_duration-10_prompt-storm"
    assert found[-1].variant == {"mode": "pro", "duration": "10", "prompt": "storm", "sample": 0}
    assert found[-1].request["prompt"] == "big waves" and found[-1].source_row == "beach"


def test_row_fields_pin_axes_and_row_matrix_adds_axes(folder: Path) -> None:
    """A row that sets a field skips that axis; a row's own matrix adds axes for it only."""
    manifest = {
        "defaults": {"model_name": "kling-v2-1"},
        "matrix": {"mode": ["std", "pro"]},
        "rows": [
            {"id": "pinned", "image": "a.jpg", "mode": "pro"},
            {"id": "more", "image": "b.png", "matrix": {"duration": [5, 10]}},
        ],
    }
    ids = [j.row_id for j in jobs(write_yaml(folder, manifest))]
    assert ids == [
        "pinned",
        "more__mode-std_duration-5",
        "more__mode-std_duration-10",
        "more__mode-pro_duration-5",
        "more__mode-pro_duration-10",
    ]


def test_long_matrix_values_are_labelled_by_position(folder: Path) -> None:
    """Prompt variants that are not short tokens are labelled 1, 2, ... in the row id."""
    manifest = doc(
        [{"id": "r", "image": "a.jpg"}], matrix={"prompt": ["waves roll in", "sun sets"]}
    )
    assert [j.row_id for j in jobs(write_yaml(folder, manifest))] == ["r__prompt-1", "r__prompt-2"]


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ({"colour": ["red"]}, "not a job field"),
        ({"mode": ["std", "std"]}, "listed twice"),
        ({"mode": ["std", "ultra"]}, "'ultra'"),
        ({"mode": []}, "at least one value"),
        ({"mode": "std"}, "a list of values"),
    ],
)
def test_bad_matrix_is_a_header_problem(folder: Path, matrix: dict[str, Any], message: str) -> None:
    """A broken top-level matrix is reported once, at the matrix line, before any row."""
    found = problems(write_yaml(folder, doc([{"image": "a.jpg"}] * 3, matrix=matrix)))
    assert len(found) == 1 and found[0].row == "(manifest)"
    assert found[0].field.startswith("matrix") and message in found[0].message


def test_field_in_row_and_its_own_matrix_is_refused(folder: Path) -> None:
    """Setting a field in a row and in that row's matrix is an error."""
    rows = [
        {
            "id": "r",
            "image": "a.jpg",
            "mode": "pro",
            "model_name": "kling-v2-1",
            "matrix": {"mode": ["std", "pro"]},
        }
    ]
    (problem,) = problems(write_yaml(folder, {"rows": rows}))
    assert (problem.row, problem.field) == ("r", "mode")


def test_repeat_makes_samples_with_their_own_job_ids(folder: Path) -> None:
    """`repeat: 3` gives samples 0..2 named __s0..__s2; sample 0 is the single-run job."""
    single = jobs(write_yaml(folder, doc([{"id": "r", "image": "a.jpg"}])))
    found = jobs(write_yaml(folder, doc([{"id": "r", "image": "a.jpg"}], repeat=3)))
    assert [j.row_id for j in found] == ["r__s0", "r__s1", "r__s2"]
    assert [j.sample for j in found] == [0, 1, 2]
    assert found[0].job_id == single[0].job_id
    assert found[2].job_id == job_id_for(found[2].request, 2)


def test_row_repeat_overrides_the_top_level(folder: Path) -> None:
    """A row's own repeat replaces the manifest's."""
    found = jobs(write_yaml(folder, doc([{"id": "r", "image": "a.jpg", "repeat": 2}], repeat=5)))
    assert len(found) == 2


def test_glob_makes_one_row_per_file(folder: Path) -> None:
    """`images: frames/*.png` gives one row per file, sorted, ids from the file stems."""
    for i in (2, 1, 3):
        picture(folder / "frames" / f"f{i}.png", colour=i * 40)
    (folder / "frames" / "notes.txt").write_text("not matched")
    manifest = {
        "defaults": {"model_name": "kling-v2-master", "prompt": "p"},
        "images": "frames/*.png",
    }
    found = jobs(write_yaml(folder, manifest))
    assert [j.row_id for j in found] == ["f1", "f2", "f3"]


def test_glob_row_with_id_prefixes_the_stems(folder: Path) -> None:
    """A row with `images:` and `id:` names its rows `<id>-<stem>`."""
    picture(folder / "frames" / "f1.png")
    rows = [{"id": "set", "images": "frames/*.png", "prompt": "p"}]
    assert [j.row_id for j in jobs(write_yaml(folder, doc(rows)))] == ["set-f1"]


def test_glob_without_matches_is_a_problem(folder: Path) -> None:
    """A glob that matches nothing is reported on its row."""
    (problem,) = problems(write_yaml(folder, doc([{"id": "g", "images": "none/*.png"}])))
    assert (problem.row, problem.field) == ("g", "images")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rows: [\n  {id: a, image: a.jpg\n", "line"),
        ("", "empty"),
        ("- just a list\n", "mapping"),
        ("rows: []\n---\nrows: []\n", "one YAML document"),
    ],
)
def test_unparseable_yaml_is_a_usage_error(folder: Path, text: str, fragment: str) -> None:
    """A file that is not a YAML manifest raises UsageError naming the file."""
    path = folder / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        resolve_manifest(path)
    assert "bad.yaml" in str(caught.value) and fragment in str(caught.value)


def test_missing_manifest_and_csv_are_usage_errors(folder: Path) -> None:
    """A missing manifest, or a missing `rows:` CSV, raises UsageError."""
    with pytest.raises(UsageError, match="not found"):
        resolve_manifest(folder / "nope.yaml")
    with pytest.raises(UsageError, match=r"rows\.csv"):
        resolve_manifest(write_yaml(folder, {"rows": "rows.csv"}))


def test_header_problems_are_reported_alone(folder: Path) -> None:
    """Bad defaults and unknown top-level keys are reported once, with their lines."""
    path = folder / "m.yaml"
    path.write_text(
        "defaults:\n  mode: ultra\nfoo: 1\nrows:\n  - {image: a.jpg}\n  - {image: b.png}\n"
    )
    found = items(path)
    assert [(p.row, p.line, p.field) for p in found] == [  # type: ignore[union-attr]
        ("(manifest)", 3, "foo"),
        ("(manifest)", 1, "defaults.mode"),
    ]


def test_problem_report_is_capped_and_counted(folder: Path) -> None:
    """The report keeps the first max_problems problems and counts them all."""
    rows = [{"id": f"r{i}", "image": "missing.jpg"} for i in range(30)]
    manifest = resolve_manifest(write_yaml(folder, doc(rows)), ResolveOptions(max_problems=5))
    report = check_manifest(manifest)
    assert len(report.problems) == 5 and report.total_problems == 30
    assert report.invalid_rows == ["r0", "r1", "r2", "r3", "r4"] and report.jobs == 0


def test_shared_image_is_read_once_for_thousands_of_rows(folder: Path) -> None:
    """A CSV of 3,000 rows over two images reads and hashes each image once."""
    rows = [
        {
            "id": f"r{i}",
            "image": "a.jpg" if i % 2 else "b.png",
            "prompt": f"take {i}",
            "model_name": "kling-v2-master",
        }
        for i in range(3000)
    ]
    manifest = resolve_manifest(write_csv(folder / "big.csv", rows))
    assert check_manifest(manifest).jobs == 3000
    assert manifest.catalog.reads == 2


ROW_IDS = st.lists(st.integers(0, 40), min_size=2, max_size=12, unique=True)


def stable_rows(numbers: list[int]) -> list[dict[str, Any]]:
    return [
        {"id": f"row-{n}", "image": "a.jpg" if n % 2 else "b.png", "prompt": f"take {n}"}
        for n in numbers
    ]


def job_map(folder: Path, rows: list[dict[str, Any]]) -> dict[str, str]:
    return {j.row_id: j.job_id for j in jobs(write_yaml(folder, doc(rows)))}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(numbers=ROW_IDS, data=st.data())
def test_job_ids_survive_reordering_adding_and_removing(
    folder: Path, numbers: list[int], data: st.DataObject
) -> None:
    """Reordering, adding or removing rows leaves every other row's job id unchanged."""
    before = job_map(folder, stable_rows(numbers))
    shuffled = data.draw(st.permutations(numbers))
    kept = [*shuffled[1:], 99]
    after = job_map(folder, stable_rows(kept))
    assert all(after[row] == before[row] for row in after if row in before)
    assert len(after) == len(kept)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(numbers=ROW_IDS, data=st.data(), prompt=st.text(min_size=1, max_size=40))
def test_editing_one_row_changes_only_its_job_id(
    folder: Path, numbers: list[int], data: st.DataObject, prompt: str
) -> None:
    """Changing one row's prompt changes that row's job id and no other."""
    rows = stable_rows(numbers)
    before = job_map(folder, rows)
    index = data.draw(st.integers(0, len(rows) - 1))
    edited = rows[index]["id"]
    rows[index] = {**rows[index], "prompt": f"edited: {prompt}"}
    after = job_map(folder, rows)
    changed = {row for row in before if before[row] != after[row]}
    assert changed == {edited}


def test_yaml_anchors_and_merge_keys_work_in_streamed_rows(folder: Path) -> None:
    """Rows may reuse an anchored mapping (kept under an `x-` key) with `<<: *name`."""
    path = folder / "m.yaml"
    path.write_text(
        "defaults: {model_name: kling-v2-master}\n"
        "x-base: &base {image: a.jpg, prompt: shared}\n"
        "rows:\n  - {<<: *base, id: one}\n  - {<<: *base, id: two, prompt: other}\n"
    )
    assert [(j.row_id, j.request["prompt"]) for j in jobs(path)] == [
        ("one", "shared"),
        ("two", "other"),
    ]


def test_key_set_twice_in_a_row_is_a_problem(folder: Path) -> None:
    """A YAML row that sets the same key twice is refused instead of keeping the last."""
    path = folder / "m.yaml"
    path.write_text("rows:\n  - {id: r, image: a.jpg, prompt: a, prompt: b}\n")
    (problem,) = problems(path)
    assert (problem.row, problem.line, problem.field) == ("r", 2, "prompt")


def test_control_keys_in_defaults_are_refused(folder: Path) -> None:
    """`repeat` or `matrix` inside defaults would be ignored, so they are refused."""
    found = problems(write_yaml(folder, doc([{"image": "a.jpg"}], defaults={"repeat": 3})))
    assert [(p.row, p.field) for p in found] == [("(manifest)", "defaults.repeat")]


@pytest.mark.parametrize("key", ["external_task_id", "aspect_ratio"])
def test_provider_fields_batchgen_does_not_send_are_refused(folder: Path, key: str) -> None:
    """A provider field batchgen does not send is refused, not silently kept as metadata."""
    (problem,) = problems(write_yaml(folder, doc([{"id": "r", "image": "a.jpg", key: "on"}])))
    assert (problem.row, problem.field) == ("r", key) and "meta." in problem.message
