"""Taking back what the run folder says a lost state paid for, and never overwriting a paid
video: what the provider's answer allows, and which files are kept aside."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from batchgen import output
from batchgen.errors import ProviderUnreachable, TaskNotFound
from batchgen.providers import TaskInfo
from batchgen.runner.rebuild import Evidence, verdict

JOB = "a" * 20
OTHER = "b" * 20


def task(status: str = "succeed", external: str | None = None) -> TaskInfo:
    return TaskInfo("123", status, external_task_id=external)


@pytest.mark.parametrize(
    ("intact", "answer", "action"),
    [
        (True, task(), "done"),
        (False, task(), "follow"),
        (True, task(external=f"bg-{JOB}"), "done"),
        (True, task(external=f"bg-{JOB}-r2"), "done"),
        (True, task(external=f"bg-{OTHER}"), "refuse"),
        (False, task(external="someone-else"), "refuse"),
        (True, task("failed"), "refuse"),
        (True, TaskNotFound("gone"), "done"),
        (False, TaskNotFound("gone"), "refuse"),
        (True, ProviderUnreachable("down"), "done"),
        (False, ProviderUnreachable("down"), "follow"),
    ],
)
def test_the_provider_can_only_refuse_what_the_run_folder_names(intact, answer, action):
    """An intact video is taken back unless the provider says its task is another job's or
    failed; a lost one is followed only where the task may still exist."""
    assert verdict(JOB, intact, answer)[0] == action


@pytest.mark.parametrize(
    "entry",
    [
        None,
        [],
        {"job_id": JOB},
        {"job_id": JOB, "task_id": ""},
        {"job_id": JOB, "task_id": "x" * 100_000},
        {"job_id": JOB, "task_id": "a b"},
        {"job_id": 5, "task_id": "123"},
    ],
)
def test_a_sidecar_naming_no_usable_task_is_no_evidence(entry):
    """Entries without a job id and a plausible task id are passed over."""
    assert Evidence.of(entry) is None


def test_a_video_path_outside_the_run_is_not_believed():
    """A sidecar whose video climbs out of the run names a task but no video."""
    evidence = Evidence.of({"job_id": JOB, "task_id": "1", "video": "../../etc/passwd"})
    assert evidence is not None and evidence.video is None


def paid(run: Path, name: str, job_id: str, data: bytes) -> Path:
    """A video and the sidecar that vouches for it, as a run writes them."""
    video = run / "videos" / name
    video.parent.mkdir(parents=True, exist_ok=True)
    video.write_bytes(data)
    entry = {
        "job_id": job_id,
        "task_id": "9",
        "video": f"videos/{name}",
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
    video.with_suffix(".json").write_text(json.dumps(entry))
    return video


def test_a_vouched_paid_video_is_kept_aside_before_another_takes_its_name(tmp_path):
    """The file moves (as a link) to videos/<its job id>.mp4 with its sidecar."""
    paid(tmp_path, "clip.mp4", OTHER, b"paid bytes")
    kept = output.keep_paid_file(tmp_path, "videos/clip.mp4", hashlib.sha256(b"new").hexdigest())
    assert kept == f"videos/{OTHER}.mp4"
    assert (tmp_path / kept).read_bytes() == b"paid bytes"
    sidecar = json.loads((tmp_path / kept).with_suffix(".json").read_text())
    assert sidecar["video"] == kept and sidecar["job_id"] == OTHER


def test_a_kept_name_holding_other_bytes_is_not_replaced_either(tmp_path):
    """Where videos/<job id>.mp4 holds other bytes, the file is kept under a longer name."""
    paid(tmp_path, f"{OTHER}.mp4", "c" * 32, b"another paid video")
    paid(tmp_path, "clip.mp4", OTHER, b"paid bytes")
    kept = output.keep_paid_file(tmp_path, "videos/clip.mp4", "0" * 64)
    assert kept is not None and kept != f"videos/{OTHER}.mp4"
    assert (tmp_path / kept).read_bytes() == b"paid bytes"
    assert (tmp_path / "videos" / f"{OTHER}.mp4").read_bytes() == b"another paid video"


@pytest.mark.parametrize("case", ["same bytes", "no sidecar", "changed since", "nothing there"])
def test_files_nothing_vouches_for_or_the_same_bytes_are_not_kept(tmp_path, case):
    """The same bytes again, a file without a sidecar, or one that is not what its sidecar
    says (a cut-off download of this very job) is replaced as before."""
    video = paid(tmp_path, "clip.mp4", OTHER, b"paid bytes")
    new = hashlib.sha256(b"paid bytes" if case == "same bytes" else b"new").hexdigest()
    if case == "no sidecar":
        video.with_suffix(".json").unlink()
    elif case == "changed since":
        video.write_bytes(b"paid bytez")
    elif case == "nothing there":
        video.unlink()
    assert output.keep_paid_file(tmp_path, "videos/clip.mp4", new) is None
    assert not (tmp_path / "videos" / f"{OTHER}.mp4").exists()


def test_keeping_a_video_never_replaces_another_file_at_its_name(tmp_path):
    """Where videos/<job id>.mp4 already holds other bytes, the video is kept beside it under
    a longer name; keeping the same bytes twice makes nothing new."""
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"paid bytes")
    taken = tmp_path / f"{OTHER}.mp4"
    taken.write_bytes(b"other paid bytes")
    kept = output.keep_as(source, taken)
    assert kept != taken and kept.read_bytes() == b"paid bytes"
    assert taken.read_bytes() == b"other paid bytes"
    assert output.keep_as(source, taken) == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["clip.mp4", taken.name, kept.name])
