"""One schema of field types: the index, the sidecars and every export give each field the same
type (seconds and units as numbers, a matrix value of a request field as that field's type)."""

from __future__ import annotations

import csv
import json
import tarfile

import pyarrow.parquet as pq
import yaml

from batchgen.export import export_run
from tests.conftest import read_index, run_cli, write_manifest


def test_every_export_and_the_index_agree_on_the_types_of_fields(tmp_path, sim):
    """`duration` and `final_unit_deduction` are numbers in the index, the sidecar, the
    webdataset JSON and hf; `variant.duration` is a float in hf and reads back as one in CSV."""
    manifest = write_manifest(tmp_path, 1)
    doc = yaml.safe_load(manifest.read_text())
    doc["matrix"] = {"duration": [5, 10]}
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
    run_dir = tmp_path / "out" / "batch"
    index = read_index(run_dir)
    sidecar = json.loads((run_dir / index[0]["video"]).with_suffix(".json").read_text())
    assert {entry["variant"]["duration"] for entry in index} == {5.0, 10.0}
    for entry in (*index, sidecar):
        assert isinstance(entry["duration"], float)
        assert isinstance(entry["final_unit_deduction"], float)
    shard = next(export_run(run_dir, "webdataset").out_dir.glob("*.tar"))
    with tarfile.open(shard) as tar:
        for member in (m for m in tar.getmembers() if m.name.endswith(".json")):
            described = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
            assert isinstance(described["duration"], float)
            assert isinstance(described["final_unit_deduction"], float)
    table = pq.read_table(export_run(run_dir, "hf").out_dir / "metadata.parquet")
    types = {name: str(table.schema.field(name).type) for name in table.schema.names}
    assert types["duration"] == types["variant.duration"] == types["final_unit_deduction"]
    assert types["duration"] == "double"
    with open(export_run(run_dir, "csv").out_dir / "index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(float(row["variant.duration"]) for row in rows) == [5.0, 10.0]
    assert {row["variant.duration"] for row in rows} == {"5.0", "10.0"}
