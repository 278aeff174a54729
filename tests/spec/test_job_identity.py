"""Job ids of an unchanged manifest stay the same across upgrades; `model_name` is always sent."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from batchgen.jobs import JobSpec, canonical_json, job_id_for, make_job, resolve_body
from batchgen.manifest.resolve import resolve_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests"
# The ids these examples had before sound, 4k, multi-shot, voices and elements were added
# (commit c445bf8): a resumed run must find its jobs again, or it would pay for them twice.
IDS_BEFORE = {
    "demo.yaml": ["5c4be0c59e65f5d13987", "07a252d5af0e7721f161", "2b86e5a19128a214a1d8",
                  "a5d62b41ed18b55ae86b", "56d6f8662ab0868b1cea", "0408bea036092e1c5df2"],
    "features.yaml": ["f14f55ba0404a2345cc9", "49f4f88db47331fff720", "d2841fca01ce00c91e87",
                      "aa93d82c8ac7aa239f67"],
    "from-csv.yaml": ["f9487b6c90e3dce84b64", "0213a8aac730718a8573", "01df81fb99523784db54",
                      "e7800fbea10b85a4487e"],
    "glob.yaml": ["21a03aadf82a252651b9", "a4b19b7cd701ef2b0fac", "0465200f67c174e94364"],
    "matrix.yaml": ["d96f08f4e45ec6e40fdb", "33cce84351386d7cb973", "9c8d2c11b9ac4adf4ef6",
                    "dd68c7fe9bdc70bd7332", "9bbbf427616f24f62e02", "77e957bc8e78adae93dc",
                    "22cd0ea6841139ebccea", "223000ad4ef7da7a9694", "18b2aebc3ed681451d47",
                    "da546c085b312fe94633", "78d8c31fab540f99b296", "83ebfe9f8ddbe6170d2b",
                    "e2f05a5a73272df73bdf", "5e959436bb710c47d565", "4ddd0bbeb30d787822f9",
                    "48a78c05538dbfd889e1", "9a4ea8557fe547e6fabd", "a9870aa5a3b2065b5052"],
    "rows.csv": ["962922d6f6a28d13e2e6", "fc3c43930277b75730aa", "2bd2152439e44264009b",
                 "416c75f740981916d713"],
}  # fmt: skip


def job_ids(path: Path) -> list[str]:
    return [item.job_id for item in resolve_manifest(path).iter_jobs() if isinstance(item, JobSpec)]


@pytest.mark.parametrize("name", sorted(IDS_BEFORE))
def test_job_ids_of_an_unchanged_manifest_are_unchanged(name: str) -> None:
    """Each example resolves to exactly the job ids it had before the 2026 fields came in."""
    assert job_ids(EXAMPLES / name) == IDS_BEFORE[name]


def no_model_manifest(tmp_path: Path) -> Path:
    path = tmp_path / "plain.yaml"
    image = (EXAMPLES / "images" / "beach.jpg").as_posix()
    path.write_text(
        yaml.safe_dump({"rows": [{"id": "plain", "image": image, "prompt": "waves roll in"}]})
    )
    return path


def test_a_row_without_model_name_is_sent_with_the_documented_default(tmp_path: Path) -> None:
    """The body carries model_name kling-v1; the request (and so the job id) does not."""
    manifest = resolve_manifest(no_model_manifest(tmp_path))
    (job,) = manifest.iter_jobs()
    assert isinstance(job, JobSpec) and "model_name" not in job.request
    assert job.job_id == "75f5cf438e5fe0f11b3d"  # its id before model_name was always sent
    body = resolve_body(job.request, manifest.catalog.payload, "bg-x")
    assert body["model_name"] == "kling-v1" and body["external_task_id"] == "bg-x"


def test_a_model_set_in_the_manifest_is_sent_as_it_is() -> None:
    """resolve_body never replaces a model the row chose."""
    body = resolve_body({"model_name": "kling-v3", "image": "https://x/a.jpg"}, str, "bg-y")
    assert body["model_name"] == "kling-v3"


REQUESTS = [
    {},
    {"prompt": "a cat", "model_name": "kling-v2-master", "duration": "5"},
    {"prompt": 'café ☕ «guillemets» \u2028 "quoted" \\ back', "cfg_scale": 0.5},
    {"image": "sha256:" + "ab" * 32, "camera_control": {"type": "simple", "config": {"zoom": -3}}},
    {"dynamic_masks": [{"mask": "sha256:00", "trajectories": [{"x": 1, "y": 2}]}], "z": None},
    {"multi_prompt": [{"index": 1, "prompt": "one", "duration": "2"}], "cfg_scale": 1e-7},
    {"voice_list": [{"voice_id": "v"}], "sound": "on", "list": [True, False, 1.5, "x"]},
]


@pytest.mark.parametrize("request_", REQUESTS)
@pytest.mark.parametrize("sample", [0, 1, 7, 123])
def test_a_job_id_is_the_hash_of_its_request_and_sample_as_one_canonical_document(
    request_: dict[str, object], sample: int
) -> None:
    """The id written from the request's JSON once is the id of the whole document, as ids
    were always made; the state stores that same JSON."""
    document = json.dumps(
        {"request": request_, "sample": sample},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    expected = hashlib.sha256(document.encode()).hexdigest()[:20]
    job = make_job(request_, "row", sample=sample)
    assert job.job_id == expected == job_id_for(request_, sample)
    assert (
        job.request_text()
        == canonical_json(request_)
        == json.dumps(request_, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    )
    assert JobSpec(job.job_id, "row", request_).request_text() == job.request_text()
