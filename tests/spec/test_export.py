"""`batchgen export`: hf, csv and webdataset folders that read back as the run they came from."""

from __future__ import annotations

import csv
import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgen import output
from batchgen.errors import EXIT_JOBS_FAILED, EXIT_USAGE, UsageError
from batchgen.export import IndexInvalid, MissingVideo, UnknownFormat, VideoMismatch, export_run
from batchgen.export.base import sample_key
from batchgen.export.columns import CORE_COLUMNS, Columns, ColumnScan, Kind
from batchgen.export.target import RECORD_NAME
from batchgen.jobs import make_job
from batchgen.manifest.lockfile import LOCK_NAME, write_lock
from batchgen.results.verify import verify_run
from batchgen.state.changes import Accepted, Done, Generated, Submitting
from batchgen.state.records import JobRecord
from batchgen.state.store import Store
from batchgen.status import JobStatus
from tests.conftest import read_index, run_cli

# -- a run folder as a finished run leaves it ----------------------------------------------------


@dataclass
class RunFolder:
    path: Path
    jobs: list[JobRecord]  # done jobs, in job-id order (the index's order)

    @property
    def index(self) -> list[dict[str, Any]]:
        return read_index(self.path)

    def video(self, job: JobRecord) -> Path:
        return self.path / (job.output_path or "")


def request(i: int) -> dict[str, Any]:
    return {
        "model_name": "kling-v2-master",
        "mode": "std",
        "duration": "5",
        "prompt": f"slow pan, take {i}",
        "negative_prompt": "blur",
        "image": f"sha256:{i:064x}",
    }


Findings = list[dict[str, str]] | None


def build_run(
    root: Path, rows: int = 5, video: bytes | None = None, qa: dict[int, Findings] | None = None
) -> RunFolder:
    """A run folder with `rows` done jobs: videos, sidecars, state, lock and indexes; row i's
    video is checked with findings `qa[i]` where given (unchecked otherwise)."""
    run = root / "run"
    specs = [
        make_job(
            request(i),
            f"clip-{i:03d}",
            metadata={"scene": f"beach {i}", "take": i, "tags": ["a", "b"]},
            variant={"cfg": i % 2},
        )
        for i in range(rows)
    ]
    with Store.open(run / "state.sqlite") as store:
        store.add_jobs(specs)
        for i, spec in enumerate(specs):
            data = video if video is not None else f"mp4 bytes of {spec.row_id} ".encode() * (i + 1)
            finish_job(store, run, spec.job_id, data, (qa or {}).get(i))
        output.write_indexes(store, run)
        write_lock(run / LOCK_NAME, "run", store.lock_rows())
        jobs = list(store.done_in_job_order())
    return RunFolder(run, jobs)


PROBE = {"container": "mp4", "codec": "h264", "width": 256, "height": 170, "fps": 8.0}


def finish_job(
    store: Store, run: Path, job_id: str, data: bytes, findings: Findings = None
) -> None:
    """Move a job to done the way the runner does: file, check, sidecar, then the state."""
    store.apply(job_id, Submitting(f"bg-{job_id}", 1.0))
    store.apply(job_id, Accepted(f"task-{job_id}", JobStatus.SUBMITTED, 1000))
    store.apply(job_id, Generated(None, "5.1", "1", None))
    job = store.get(job_id)
    assert job is not None
    dest = output.video_path(run, job.row_id)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    relative = dest.relative_to(run).as_posix()
    sha = hashlib.sha256(data).hexdigest()
    check = None if findings is None else {"probe": PROBE, "qa": findings}
    if check is not None:
        store.checks.record(job_id, sha, PROBE, findings or [])
    entry = output.sidecar(job, relative, sha, len(data), check)
    output.write_json_atomic(dest.with_suffix(".json"), entry)
    store.apply(job_id, Done(relative, sha, len(data), 2.0))


@pytest.fixture
def run(tmp_path: Path) -> RunFolder:
    return build_run(tmp_path)


def tar_members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def tar_file(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read()


# -- webdataset ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("shard_size", "shards"), [(1, 5), (2, 3), (5, 1), (1000, 1)])
def test_webdataset_splits_samples_into_shards_of_the_given_size(run, shard_size, shards):
    """Five samples make ceil(5 / shard_size) shards named 000000.tar, 000001.tar, ..."""
    result = export_run(run.path, "webdataset", shard_size=shard_size)
    names = sorted(p.name for p in result.out_dir.iterdir() if p.name != RECORD_NAME)
    assert names == [f"{n:06d}.tar" for n in range(shards)]
    assert result.count == 5
    assert [p.name for p in result.files] == names


def test_webdataset_samples_are_the_video_and_its_index_line_in_job_order(run):
    """Each sample is <key>.mp4 then <key>.json, keys are dot-free job ids, sorted by job id."""
    result = export_run(run.path, "webdataset", shard_size=2)
    members = [(shard, m) for shard in result.files for m in tar_members(shard)]
    expected = [f"{job.job_id}.{ext}" for job in run.jobs for ext in ("mp4", "json")]
    assert [m.name for _, m in members] == expected
    for job, entry in zip(run.jobs, run.index, strict=True):
        shard = next(s for s, m in members if m.name == f"{job.job_id}.mp4")
        assert tar_file(shard, f"{job.job_id}.mp4") == run.video(job).read_bytes()
        described = json.loads(tar_file(shard, f"{job.job_id}.json"))
        assert described == {**entry, "video": f"{job.job_id}.mp4"}
        assert "." not in sample_key(job.job_id)


def test_webdataset_members_carry_no_time_or_owner(run):
    """Every member has mtime 0, uid/gid 0, no user names and mode 0644."""
    result = export_run(run.path, "webdataset")
    for member in tar_members(result.files[0]):
        assert (member.mtime, member.uid, member.gid, member.mode) == (0, 0, 0, 0o644)
        assert (member.uname, member.gname) == ("", "")


def test_exporting_twice_gives_byte_identical_shards(run, tmp_path):
    """The same run exported twice, to two folders, gives the same bytes."""
    first = export_run(run.path, "webdataset", tmp_path / "a", shard_size=2)
    second = export_run(run.path, "webdataset", tmp_path / "b", shard_size=2)
    assert [p.read_bytes() for p in first.files] == [p.read_bytes() for p in second.files]


def test_a_smaller_export_removes_the_stale_shards_of_a_larger_one(run):
    """Re-exporting with bigger shards leaves no shard of the earlier export behind, and a
    file of the user's beside them (written there with --force) untouched."""
    export_run(run.path, "webdataset", shard_size=1)
    out = run.path / "export" / "webdataset"
    (out / "README.md").write_text("mine")
    export_run(run.path, "webdataset", shard_size=2, force=True)
    assert sorted(p.name for p in out.iterdir()) == [
        RECORD_NAME,
        "000000.tar",
        "000001.tar",
        "000002.tar",
        "README.md",
    ]
    assert (out / "README.md").read_text() == "mine"


def test_sample_keys_never_contain_dots():
    """A key is the job id with anything outside [A-Za-z0-9_-] replaced."""
    assert sample_key("ab.cd/ef") == "ab_cd_ef"


# -- hf videofolder ------------------------------------------------------------------------------


def read_metadata(folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(folder / "metadata.parquet").to_pylist()
    return rows


def test_hf_file_names_resolve_to_the_videos_beside_the_metadata(run):
    """Each file_name is a path inside the export, relative to metadata.parquet, holding the
    video."""
    result = export_run(run.path, "hf")
    lines = read_metadata(result.out_dir)
    assert len(lines) == result.count == 5
    for job, line in zip(run.jobs, lines, strict=True):
        video = result.out_dir / line["file_name"]
        assert video.resolve().is_relative_to(result.out_dir.resolve())
        assert video.read_bytes() == run.video(job).read_bytes()
        assert line["row_id"] == job.row_id


def test_hf_lines_all_have_the_same_columns(run):
    """Every line has file_name first, the row's columns, flattened metadata, and no `video`."""
    lines = read_metadata(export_run(run.path, "hf").out_dir)
    keys = list(lines[0])
    assert keys[0] == "file_name"
    assert "video" not in keys
    wanted = {"row_id", "job_id", "prompt", "negative_prompt", "model_name", "mode", "duration"}
    assert wanted | {"sha256", "scene", "take", "tags", "variant.cfg"} <= set(keys)
    assert all(list(line) == keys for line in lines)
    for line in lines:
        assert line["scene"] == f"beach {line['take']}"
        assert line["prompt"] == f"slow pan, take {line['take']}"
    assert json.loads(lines[0]["tags"]) == ["a", "b"]


def test_hf_videos_are_hard_links_to_the_run(run):
    """On one file system the export's videos share the run's files instead of copying them."""
    result = export_run(run.path, "hf")
    for job, line in zip(run.jobs, read_metadata(result.out_dir), strict=True):
        assert (result.out_dir / line["file_name"]).stat().st_ino == run.video(job).stat().st_ino


def test_hf_re_export_drops_videos_of_rows_no_longer_exported(run):
    """Videos linked by an earlier export but not by this one are removed."""
    out = export_run(run.path, "hf").out_dir
    run.video(run.jobs[0]).unlink()
    result = export_run(run.path, "hf", skip_missing=True)
    assert sorted(p.name for p in (out / "videos").iterdir()) == sorted(
        Path(line["file_name"]).name for line in read_metadata(out)
    )
    assert result.skipped == (run.jobs[0].row_id,)


def test_the_card_counts_videos_checked_on_their_keyframes_alone_and_unchecked_ones():
    """A run made with --qa keyframes (its probe's `decode`) or --qa off (no `qa`) says so."""
    from batchgen.export.card import Provenance, render_card

    provenance = Provenance("run")
    for decode in ("keyframes", "I/P", None, "keyframes"):
        probe = None if decode is None else {**PROBE, "decode": decode}
        provenance.add({"request": {}, "probe": probe, "qa": None if decode is None else []})
    provenance.add({"request": {}, "probe": PROBE, "qa": []})  # written before `decode` was
    card = render_card(provenance, {})
    assert "5 exported, 0 of them flagged, 1 unchecked, 2 checked on their keyframes alone" in card
    assert "--qa keyframes" in card and "--qa off" in card


def test_hf_export_has_a_dataset_card_with_provenance(tmp_path):
    """README.md names batchgen's version, the lock's hash, models, counts, cost and how to
    decode (torchcodec) or load without decoding."""
    from importlib.metadata import version

    run = build_run(tmp_path, rows=3, qa={0: [], 1: [{"code": "frozen", "message": "x"}]})
    card = (export_run(run.path, "hf").out_dir / "README.md").read_text()
    lock_hash = hashlib.sha256((run.path / LOCK_NAME).read_bytes()).hexdigest()
    assert card.startswith("---\n") and "image-to-video" in card
    assert f"| batchgen | {version('batchgen')}" in card and lock_hash in card
    assert "kling-v2-master (3)" in card
    assert "3 exported, 1 of them flagged, 1 unchecked" in card and "frozen 1" in card
    assert "| units charged | 3 " in card and "| estimated cost | $" in card
    assert "torchcodec" in card and "decode=False" in card
    assert "| `qa` | list<string> |" in card and "| `duration` | float64 |" in card


def test_hf_columns_keep_their_types_when_no_row_has_a_value(run):
    """An all-empty column is typed in metadata.parquet, never `null`."""
    schema = pq.read_schema(export_run(run.path, "hf").out_dir / "metadata.parquet")
    types = {name: str(schema.field(name).type) for name in schema.names}
    assert types["image_tail_ref"] == "string" and types["cfg_scale"] == "double"
    assert types["width"] == "int64" and types["has_audio"] == "bool"
    assert types["qa"] == "list<element: string>" and types["take"] == "int64"
    assert "null" not in types.values()


def test_an_export_no_record_names_is_refused_and_left_as_it_was(run):
    """A folder holding files of an export that left no record (an earlier batchgen's
    metadata.jsonl) is refused, naming them, and nothing in it is removed."""
    out = run.path / "export" / "hf"
    out.mkdir(parents=True)
    (out / "metadata.jsonl").write_text("{}\n")
    with pytest.raises(UsageError, match=r"metadata\.jsonl.*--force") as error:
        export_run(run.path, "hf")
    assert error.value.exit_code == EXIT_USAGE
    assert [p.name for p in out.iterdir()] == ["metadata.jsonl"]


# -- excluding flagged videos --------------------------------------------------------------------


def test_exclude_flagged_leaves_out_the_videos_with_findings(tmp_path, capsys):
    """`export --exclude-flagged` exports clean and unchecked videos and names the others."""
    flagged = [{"code": "black_frames", "message": "16 of 16 sampled frames are black"}]
    run = build_run(tmp_path, rows=4, qa={0: [], 1: flagged, 2: flagged})
    flagged_rows = {e["row_id"] for e in run.index if e["qa"]}
    code = run_cli("export", run.path, "--format", "csv", "--exclude-flagged")
    assert code == 0
    with open(run.path / "export" / "csv" / "index.csv", newline="", encoding="utf-8") as f:
        exported = {row["row_id"] for row in csv.DictReader(f)}
    assert exported == {job.row_id for job in run.jobs} - flagged_rows and len(exported) == 2
    err = capsys.readouterr().err
    assert all(f"excluded {row}: black_frames" in err for row in flagged_rows)
    assert len(export_run(run.path, "csv").files) == 1  # without the flag: all four
    assert export_run(run.path, "csv").count == 4


# -- csv -----------------------------------------------------------------------------------------


def test_csv_reads_back_one_flat_row_per_video(run):
    """index.csv has a header of every column and one row per index line, nested values as JSON."""
    result = export_run(run.path, "csv")
    with open(result.files[0], newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = reader.fieldnames
    assert header is not None and tuple(header[: len(CORE_COLUMNS)]) == CORE_COLUMNS
    assert header[-1] == "request" and {"variant.cfg", "scene", "take"} <= set(header)
    assert [r["job_id"] for r in rows] == [job.job_id for job in run.jobs]
    first, entry = rows[0], run.index[0]
    assert first["sha256"] == entry["sha256"]
    assert json.loads(first["request"]) == entry["request"]
    assert first["prompt"] == entry["request"]["prompt"]
    assert first["video_duration"] == "5.1" and first["duration"] == "5.0"


@pytest.mark.parametrize("where", ["default", "elsewhere"])
def test_csv_video_paths_are_relative_to_the_csv_file(run, tmp_path, where):
    """Each `video` cell, read from the CSV's own folder, opens that row's video."""
    out = None if where == "default" else tmp_path / "datasets" / "mine"
    result = export_run(run.path, "csv", out)
    with open(result.files[0], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for job, row in zip(run.jobs, rows, strict=True):
        assert not Path(row["video"]).is_absolute()
        assert (result.files[0].parent / row["video"]).read_bytes() == run.video(job).read_bytes()


def test_a_metadata_column_that_would_shadow_another_is_prefixed():
    """A user column named like a core column is written as metadata.<name>."""
    columns = Columns(metadata_keys=("prompt", "scene"))
    row = columns.row({"request": {"prompt": "p"}, "metadata": {"prompt": "m", "scene": "s"}})
    assert row["prompt"] == "p" and row["metadata.prompt"] == "m" and row["scene"] == "s"


@given(
    st.dictionaries(st.text(max_size=8), st.integers() | st.text() | st.lists(st.integers())),
    st.dictionaries(st.text(max_size=8), st.integers()),
)
def test_every_row_has_exactly_the_columns_in_order(metadata, variant):
    """Whatever the metadata and variant keys, a row holds each column once, in column order."""
    columns = Columns(tuple(sorted(variant)), tuple(sorted(metadata)))
    row = columns.row({"job_id": "j", "metadata": metadata, "variant": variant})
    assert tuple(row) == columns.names
    assert len(set(columns.names)) == len(columns.names)
    kinds = columns.kinds
    assert all(
        not isinstance(value, dict | list) or kinds[name] is Kind.STRINGS
        for name, value in row.items()
    )


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from("abc"),
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False)
            | st.text()
            | st.lists(st.integers()),
        )
    )
)
def test_every_value_has_the_kind_its_column_was_given(metadata_rows):
    """Whatever mix of values a metadata column holds, each row's value is of the column's
    kind: booleans, integers, numbers, or strings (JSON for anything else)."""
    scan = ColumnScan()
    for metadata in metadata_rows:
        scan.add({"metadata": metadata})
    columns = scan.columns()
    python_type = {Kind.BOOL: bool, Kind.INT: int, Kind.FLOAT: float, Kind.STRING: str}
    for metadata in metadata_rows:
        row = columns.row({"metadata": metadata})
        for key in columns.metadata_keys:
            value = row[key]
            assert value is None or type(value) is python_type[columns.kinds[key]]


# -- failures ------------------------------------------------------------------------------------


def test_a_missing_video_stops_the_export_and_keeps_the_previous_one(run):
    """A missing file names its row, exits 1, and leaves the earlier export as it was."""
    first = export_run(run.path, "csv")
    before = first.files[0].read_bytes()
    run.video(run.jobs[1]).unlink()
    with pytest.raises(MissingVideo, match=run.jobs[1].row_id) as error:
        export_run(run.path, "csv")
    assert error.value.exit_code == EXIT_JOBS_FAILED
    assert first.files[0].read_bytes() == before
    assert not (first.out_dir / ".staging").exists()


def test_skip_missing_exports_the_other_rows(run):
    """With skip_missing the export holds every row whose video exists, and names the others."""
    run.video(run.jobs[3]).unlink()
    result = export_run(run.path, "webdataset", skip_missing=True)
    assert result.count == 4
    assert result.skipped == (run.jobs[3].row_id,)
    names = [m.name for m in tar_members(result.files[0])]
    assert f"{run.jobs[3].job_id}.mp4" not in names


def test_unknown_format_and_bad_shard_size_are_usage_errors(run):
    """A format that does not exist, or shards of no samples, exit 2 before anything is written."""
    with pytest.raises(UnknownFormat, match="hf, csv, webdataset") as error:
        export_run(run.path, "parquet")
    assert error.value.exit_code == EXIT_USAGE
    with pytest.raises(Exception, match="shard size") as shard_error:
        export_run(run.path, "webdataset", shard_size=0)
    assert getattr(shard_error.value, "exit_code", None) == EXIT_USAGE
    assert not (run.path / "export").exists()


def test_a_folder_without_an_index_is_not_a_run(tmp_path):
    """Exporting a folder with no index.jsonl is a usage error naming the file."""
    with pytest.raises(IndexInvalid, match=r"index\.jsonl"):
        export_run(tmp_path, "csv")


def test_a_broken_index_line_is_named_by_its_number(run):
    """In a run folder without its state, a line that is not JSON stops the export with the
    line's number."""
    (run.path / "state.sqlite").unlink()
    with open(run.path / "index.jsonl", "a", encoding="utf-8") as f:
        f.write("{not json\n")
    with pytest.raises(IndexInvalid, match="line 6"):
        export_run(run.path, "hf")


def test_an_index_line_pointing_outside_the_run_is_refused(run):
    """A video path that climbs out of the run folder is never read (a folder without its
    state, read from its index)."""
    (run.path / "state.sqlite").unlink()
    lines = (run.path / "index.jsonl").read_text().splitlines()
    entry = json.loads(lines[0])
    entry["video"] = "../../etc/passwd"
    lines[0] = json.dumps(entry)
    (run.path / "index.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(IndexInvalid, match="not a path inside the run"):
        export_run(run.path, "csv")


# -- the destination: never the run, never a user's files ----------------------------------------


@pytest.mark.parametrize("fmt", ["hf", "csv", "webdataset"])
@pytest.mark.parametrize("where", ["run", "videos", "runs"])
def test_export_into_the_run_folder_is_refused_and_every_paid_video_stays(run, fmt, where):
    """`-o` the run folder, its videos/ or the folder above it: exit 2, nothing written, and
    `verify` finds every paid video intact."""
    out = {"run": run.path, "videos": run.path / "videos", "runs": run.path.parent}[where]
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(UsageError, match="run folder") as error:
        export_run(run.path, fmt, out, exclude_flagged=True, force=True)
    assert error.value.exit_code == EXIT_USAGE
    assert sorted(p.name for p in out.iterdir()) == before
    report = verify_run(run.path)
    assert report.clean and report.ok == 5


def test_export_into_a_folder_with_a_users_files_deletes_nothing(run, tmp_path):
    """A folder holding the user's videos/holiday.mp4 and README.md is refused; with --force
    the export that would replace README.md is refused too; nothing of theirs changes."""
    out = tmp_path / "mine"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "holiday.mp4").write_bytes(b"my holiday")
    (out / "README.md").write_text("my notes")
    with pytest.raises(UsageError, match=r"README\.md, videos/holiday\.mp4.*--force"):
        export_run(run.path, "hf", out)
    with pytest.raises(UsageError, match=r"already holds README\.md"):
        export_run(run.path, "hf", out, force=True)
    assert (out / "videos" / "holiday.mp4").read_bytes() == b"my holiday"
    assert (out / "README.md").read_text() == "my notes"
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["holiday.mp4"]


def test_force_writes_beside_a_users_files_and_never_removes_them(run, tmp_path):
    """With --force the export goes in beside the user's files; exporting fewer rows later
    removes only what the export itself had written."""
    out = tmp_path / "mine"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / "holiday.mp4").write_bytes(b"my holiday")
    first = export_run(run.path, "hf", out, force=True)
    assert first.count == 5 and (out / "videos" / "holiday.mp4").read_bytes() == b"my holiday"
    run.video(run.jobs[0]).unlink()
    second = export_run(run.path, "hf", out, force=True, skip_missing=True)
    names = sorted(p.name for p in (out / "videos").iterdir())
    assert second.count == 4 and "holiday.mp4" in names and len(names) == 5
    assert (out / "videos" / "holiday.mp4").read_bytes() == b"my holiday"


def test_an_earlier_export_is_replaced_without_force(run, tmp_path):
    """A folder that holds only batchgen's own earlier export takes the next one as it is."""
    out = tmp_path / "dataset"
    export_run(run.path, "hf", out)
    again = export_run(run.path, "hf", out)
    assert again.count == 5 and len(read_metadata(out)) == 5


def test_exclude_flagged_leaves_every_flagged_paid_video_in_the_run(tmp_path):
    """Re-exporting with --exclude-flagged drops the flagged videos from the export only:
    `verify` finds every paid video of the run intact."""
    flagged = [{"code": "frozen", "message": "next to no change between frames"}]
    run = build_run(tmp_path, rows=4, qa={0: flagged, 1: flagged, 2: [], 3: []})
    out = export_run(run.path, "hf").out_dir
    result = export_run(run.path, "hf", exclude_flagged=True)
    assert result.count == 2 and len(list((out / "videos").iterdir())) == 2
    report = verify_run(run.path)
    assert report.clean and report.ok == 4


# -- each video checked against its sha256 -------------------------------------------------------


@pytest.mark.parametrize("fmt", ["hf", "webdataset"])
def test_a_video_that_is_not_the_recorded_one_is_never_exported(run, fmt):
    """A video whose bytes changed since it was recorded stops the export (exit 1) naming
    it; with --skip-missing it is left out and named."""
    video = run.video(run.jobs[2])
    data = bytearray(video.read_bytes())
    data[0] ^= 0xFF
    video.write_bytes(bytes(data))
    with pytest.raises(VideoMismatch, match=f"{video.name}: sha256") as error:
        export_run(run.path, fmt)
    assert error.value.exit_code == EXIT_JOBS_FAILED
    result = export_run(run.path, fmt, skip_missing=True)
    assert result.count == 4 and result.skipped == (run.jobs[2].row_id,)


@pytest.mark.parametrize("fmt", ["hf", "csv", "webdataset"])
@pytest.mark.parametrize("link", ["file", "folder"])
def test_a_symbolic_link_in_the_run_is_never_followed(run, tmp_path, fmt, link):
    """A video path that is a symbolic link (to a file outside the run), or that passes
    through a linked folder, is refused and its target never read into the export."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for export")
    video = run.video(run.jobs[1])
    if link == "file":
        video.unlink()
        video.symlink_to(secret)
    else:
        moved = tmp_path / "elsewhere"
        (run.path / "videos").rename(moved)
        (run.path / "videos").symlink_to(moved)
    with pytest.raises(VideoMismatch, match="symbolic link"):
        export_run(run.path, fmt)
    out = run.path / "export" / fmt
    assert [p.name for p in out.iterdir()] == [RECORD_NAME]  # the folder is the export's
    if link == "file":
        result = export_run(run.path, fmt, skip_missing=True)
        assert result.count == 4
        assert all(b"not for export" not in p.read_bytes() for p in result.files)


# -- csv: text, never formulas -------------------------------------------------------------------


def test_csv_cells_a_spreadsheet_would_evaluate_are_written_as_text(tmp_path):
    """Prompts and metadata starting with =, +, -, @, a tab or a carriage return get a
    leading ' (OWASP); numbers stay numbers."""
    hostile = ['=HYPERLINK("http://x")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    run = tmp_path / "run"
    specs = [
        make_job({**request(i), "prompt": text}, f"clip-{i}", metadata={"note": text, "n": -i})
        for i, text in enumerate(hostile)
    ]
    with Store.open(run / "state.sqlite") as store:
        store.add_jobs(specs)
        for spec in specs:
            finish_job(store, run, spec.job_id, b"video " + spec.job_id.encode())
        output.write_indexes(store, run)
    result = export_run(run, "csv")
    with open(result.files[0], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_take = {row["prompt"][1:]: row for row in rows}
    assert sorted(by_take) == sorted(hostile)
    for text, row in by_take.items():
        assert row["prompt"] == row["note"] == "'" + text
    assert sorted(int(row["n"]) for row in rows) == [-5, -4, -3, -2, -1, 0]


def test_an_export_killed_in_a_folder_it_made_does_not_lock_the_folder(run, tmp_path):
    """A first export stopped mid-way (its staging left behind) is followed by one that
    takes the folder as its own, without --force."""
    out = tmp_path / "dataset"
    export_run(run.path, "csv", out)
    (out / RECORD_NAME).write_text('{"batchgen_export": 1, "format": "", "files": []}')
    (out / "index.csv").unlink()
    (out / ".staging").mkdir()
    (out / ".staging" / "index.csv").write_text("half")
    assert export_run(run.path, "csv", out).count == 5
    assert not (out / ".staging").exists()
