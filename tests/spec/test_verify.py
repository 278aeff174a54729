"""`batchgen verify`: every done job's video is there, whole, and nothing else is in videos/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchgen.errors import EXIT_USAGE, NothingToVerify, UsageError
from batchgen.export import IndexInvalid
from batchgen.results.verify import jobs_to_repair, verify_run
from tests.spec.test_export import RunFolder, build_run


@pytest.fixture
def run(tmp_path: Path) -> RunFolder:
    return build_run(tmp_path)


def flip_byte(path: Path, at: int = 3) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def rewrite_index(run: RunFolder, entries: list[dict]) -> None:
    text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    (run.path / "index.jsonl").write_text(text, encoding="utf-8")


def test_an_intact_run_is_clean(run):
    """A run as the runner leaves it verifies clean, every job ok, sidecars not flagged."""
    report = verify_run(run.path)
    assert report.clean and not report.problems
    assert report.ok == 5
    assert report.checked == ("index.jsonl", "state.sqlite")
    assert "every video is intact" in report.render()
    assert jobs_to_repair(report) == []


def test_a_flipped_byte_is_corrupted(run):
    """A file of the right size whose sha256 differs is corrupted and due for repair."""
    job = run.jobs[2]
    flip_byte(run.video(job))
    report = verify_run(run.path)
    assert [(i.job_id, i.path) for i in report.corrupted] == [(job.job_id, job.output_path)]
    assert "sha256" in report.corrupted[0].reason
    assert report.ok == 4 and not report.clean
    assert jobs_to_repair(report) == [job.job_id]


def test_a_truncated_file_is_corrupted_by_its_size(run):
    """A shorter file is corrupted, reported with both sizes."""
    job = run.jobs[0]
    run.video(job).write_bytes(run.video(job).read_bytes()[:-1])
    report = verify_run(run.path)
    assert [i.job_id for i in report.corrupted] == [job.job_id]
    assert f"{job.bytes - 1} bytes" in report.corrupted[0].reason


def test_a_missing_file_is_missing(run):
    """A done job whose video is gone is missing and due for repair."""
    job = run.jobs[4]
    run.video(job).unlink()
    report = verify_run(run.path)
    assert [(i.job_id, i.row_id) for i in report.missing] == [(job.job_id, job.row_id)]
    assert jobs_to_repair(report) == [job.job_id]


def test_stray_files_and_part_leftovers_are_extra(run):
    """Files no job names are extra: a stray video, a .part, and a sidecar of no video."""
    videos = run.path / "videos"
    (videos / "stray.mp4").write_bytes(b"x")
    (videos / "clip-000.mp4.part").write_bytes(b"half")
    (videos / "gone.json").write_text("{}")
    report = verify_run(run.path)
    reasons = {i.path: i.reason for i in report.extra}
    assert set(reasons) == {"videos/clip-000.mp4.part", "videos/gone.json", "videos/stray.mp4"}
    assert ".part" in reasons["videos/clip-000.mp4.part"]
    assert report.ok == 5 and jobs_to_repair(report) == []


def test_index_and_state_disagreeing_is_a_mismatch_not_a_corruption(run):
    """An index sha256 differing from the state is mismatched; the file matches the state."""
    entries = run.index
    entries[1]["sha256"] = "0" * 64
    rewrite_index(run, entries)
    report = verify_run(run.path)
    assert [i.job_id for i in report.mismatched] == [entries[1]["job_id"]]
    assert "sha256" in report.mismatched[0].reason
    assert not report.corrupted and jobs_to_repair(report) == []


def test_a_done_job_absent_from_the_index_is_a_mismatch(run):
    """A job the state has done but the index leaves out is mismatched, and its files are known."""
    entries = run.index
    dropped = entries.pop(0)
    rewrite_index(run, entries)
    report = verify_run(run.path)
    assert [(i.job_id, i.reason[:40]) for i in report.mismatched] == [
        (dropped["job_id"], "done in the state but not in index.jsonl")
    ]
    assert "the next `batchgen run`" in report.mismatched[0].reason
    assert not report.extra


def test_without_a_state_files_are_checked_against_the_index(run):
    """With no state.sqlite the index alone is the record, and a flipped byte is still found."""
    (run.path / "state.sqlite").unlink()
    flip_byte(run.video(run.jobs[0]))
    report = verify_run(run.path)
    assert report.checked == ("index.jsonl",)
    assert [i.job_id for i in report.corrupted] == [run.jobs[0].job_id]
    assert "index.jsonl says" in report.corrupted[0].reason


def test_render_names_each_bad_file_and_why(run):
    """The text report has a summary line and one line per problem with its path and reason."""
    run.video(run.jobs[0]).unlink()
    flip_byte(run.video(run.jobs[1]))
    (run.path / "videos" / "x.mp4.part").write_bytes(b"")
    lines = verify_run(run.path).render().splitlines()
    assert "3 ok, 1 missing, 1 corrupted, 0 mismatched, 1 extra" in lines[0]
    assert any(line.split()[:2] == ["missing", run.jobs[0].output_path] for line in lines)
    assert any(line.split()[:2] == ["corrupted", run.jobs[1].output_path] for line in lines)
    assert any("videos/x.mp4.part: an unfinished download" in line for line in lines)


def test_the_report_serialises_to_json(run):
    """as_dict gives JSON-ready values with the clean flag."""
    run.video(run.jobs[0]).unlink()
    value = json.loads(json.dumps(verify_run(run.path).as_dict()))
    assert value["clean"] is False and value["missing"][0]["job_id"] == run.jobs[0].job_id


def test_a_folder_that_is_not_a_run_is_a_usage_error(tmp_path):
    """No index and no state: nothing to verify, exit 2."""
    with pytest.raises(NothingToVerify) as error:
        verify_run(tmp_path)
    assert error.value.exit_code == EXIT_USAGE


def test_an_explicit_state_path_that_does_not_exist_is_refused_and_not_created(run, tmp_path):
    """verify never creates a state file it was pointed at."""
    missing = tmp_path / "other.sqlite"
    with pytest.raises(UsageError, match="no state file"):
        verify_run(run.path, missing)
    assert not missing.exists()


def test_an_index_out_of_job_order_is_refused(run):
    """The index must be sorted by job id; a swapped pair is named by its line."""
    entries = run.index
    entries[0], entries[1] = entries[1], entries[0]
    rewrite_index(run, entries)
    with pytest.raises(IndexInvalid, match="line 2"):
        verify_run(run.path)


def test_an_index_line_the_state_does_not_know_is_a_mismatch(run):
    """A line for a job the state has never heard of is mismatched, its file still checked."""
    entries = run.index
    stranger = {**entries[0], "job_id": "f" * 20, "row_id": "stranger", "video": "videos/s.mp4"}
    (run.path / "videos" / "s.mp4").write_bytes(run.video(run.jobs[0]).read_bytes())
    rewrite_index(run, [*entries, stranger])
    report = verify_run(run.path)
    assert [(i.row_id, i.reason) for i in report.mismatched] == [
        ("stranger", "in index.jsonl but unknown to the state")
    ]
    assert not report.corrupted and not report.extra and report.ok == 5


def test_a_download_that_landed_before_a_kill_recorded_it_is_not_called_extra(run):
    """A video and sidecar renamed into place just before the run was killed (its job still
    `downloading` in the state): not an extra file, but a note that the next run records it."""
    from batchgen.state.changes import Advanced
    from batchgen.state.store import Store
    from batchgen.status import JobStatus

    job = run.jobs[0]
    with Store.open(run.path / "state.sqlite") as store:
        store.apply(job.job_id, Advanced(JobStatus.DOWNLOADING))
    (run.path / "index.jsonl").unlink()  # a first run had not written it yet
    report = verify_run(run.path)
    assert not report.extra and report.ok == 4
    assert "not recorded as done yet" in (report.note or "")
