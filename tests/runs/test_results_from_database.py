"""`export` and `gallery` read a run from its state, wherever it is kept: on PostgreSQL that is
the run's schema in the database every worker writes, so the run folder's index.jsonl (which
only the last worker to end rewrites) is not needed."""

from __future__ import annotations

import csv
import json
import tarfile

import pyarrow.parquet as pq
import pytest

from tests.conftest import open_state, read_index, run_cli, simulator, write_manifest

ROWS = 5


@pytest.fixture
def finished_run(tmp_path, database):
    """A finished run of ROWS rows on the test's database, its index.jsonl then removed."""
    manifest = write_manifest(tmp_path, ROWS)
    out = tmp_path / "out"
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    run_dir = out / "batch"
    assert len(read_index(run_dir)) == ROWS
    (run_dir / "index.jsonl").unlink()
    return run_dir


def test_every_format_exports_every_done_job_without_the_index(finished_run, tmp_path, capsys):
    """hf, csv and webdataset each hold every done row of the state, index.jsonl gone."""
    with open_state(finished_run) as store:
        rows = {job.row_id for job in store.done_in_job_order()}
    assert len(rows) == ROWS
    exported = {}
    for fmt in ("hf", "csv", "webdataset"):
        assert run_cli("export", finished_run, "-f", fmt, "-o", tmp_path / fmt, "--json") == 0
        exported[fmt] = json.loads(capsys.readouterr().out)["exported"]
    assert exported == dict.fromkeys(("hf", "csv", "webdataset"), ROWS)
    table = pq.read_table(tmp_path / "hf" / "metadata.parquet").to_pydict()
    assert set(table["row_id"]) == rows
    with open(tmp_path / "csv" / "index.csv", newline="") as f:
        assert {line["row_id"] for line in csv.DictReader(f)} == rows
    with tarfile.open(tmp_path / "webdataset" / "000000.tar") as tar:
        assert sum(name.endswith(".mp4") for name in tar.getnames()) == ROWS


def test_the_gallery_shows_every_done_job_without_the_index(finished_run, capsys):
    """One card per job of the state, each done with its poster, index.jsonl gone."""
    assert run_cli("gallery", finished_run, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["cards"] == ROWS and shown["posters"] == ROWS
    page = (finished_run / "gallery.html").read_text()
    assert all(f"clip-{i:03d}" in page for i in range(ROWS))


def test_a_run_the_database_does_not_hold_is_named_not_read_from_its_folder(
    tmp_path, postgres_url, capsys
):
    """A run kept in a SQLite file, exported with a --database that never held it: exit 2
    saying there is no such run there, and nothing exported from the folder instead."""
    manifest = write_manifest(tmp_path, 2)
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
    run_dir = tmp_path / "out" / "batch"
    for command in (("export", run_dir, "-f", "csv"), ("gallery", run_dir)):
        assert run_cli(*command, "--database", postgres_url) == 2
        err = capsys.readouterr().err
        assert "no state found" in err and "Traceback" not in err
    assert not (run_dir / "export").exists() and not (run_dir / "gallery.html").exists()
