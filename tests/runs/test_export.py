"""`batchgen export`: hf, csv and webdataset folders that read back as the run they came from."""

from __future__ import annotations

from pathlib import Path

import yaml

from batchgen.export import export_run
from tests.conftest import read_index, run_cli, simulator, write_manifest

# -- a run folder as a finished run leaves it ----------------------------------------------------


def test_no_export_destination_deletes_a_paid_video(tmp_path, capsys):
    """Export into the run folder (with --exclude-flagged too) and into a folder with a
    user's files is refused; `verify` then finds every paid video intact, the earlier video
    of an edited row and the flagged ones included, and the user's files are as they were."""
    manifest = write_manifest(tmp_path, 4)
    out, mine = tmp_path / "out", tmp_path / "mine"
    run_dir = out / "batch"
    with simulator(frozen_rate=0.5) as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
        doc = yaml.safe_load(manifest.read_text())
        doc["rows"][0]["prompt"] = "an edited prompt"
        manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    assert any(entry["qa"] for entry in read_index(run_dir))
    (mine / "videos").mkdir(parents=True)
    (mine / "videos" / "holiday.mp4").write_bytes(b"my holiday")
    (mine / "README.md").write_text("my notes")
    export = ("export", run_dir, "--format", "hf")
    assert run_cli(*export, "-o", run_dir) == 2
    assert run_cli(*export, "-o", run_dir, "--exclude-flagged", "--force") == 2
    assert run_cli(*export, "-o", mine) == 2
    assert run_cli(*export, "-o", mine, "--force", "--exclude-flagged") == 2
    assert run_cli(*export, "--exclude-flagged") == 0
    capsys.readouterr()
    assert run_cli("verify", run_dir) == 0
    assert "5 ok, 0 missing, 0 corrupted, 0 mismatched, 0 extra" in capsys.readouterr().out
    assert (mine / "videos" / "holiday.mp4").read_bytes() == b"my holiday"
    assert (mine / "README.md").read_text() == "my notes"


# -- webdataset ----------------------------------------------------------------------------------


# -- hf videofolder ------------------------------------------------------------------------------


def test_hf_export_loads_with_datasets_videofolder_as_typed_columns(tmp_path, sim):
    """videofolder gives numbers as numbers, seconds as floats, the probe and QA columns, and a
    real type for columns no row fills; the videos load as paths without torchcodec."""
    import datasets

    manifest = write_manifest(tmp_path, 3)
    assert run_cli("run", manifest, "-o", tmp_path / "out", base_url=sim.base_url) == 0
    result = export_run(tmp_path / "out" / "batch", "hf")
    loaded = datasets.load_dataset("videofolder", data_dir=str(result.out_dir), split="train")
    types = {name: str(feature) for name, feature in loaded.features.items()}
    floats = ("duration", "video_duration", "final_unit_deduction", "fps", "duration_s")
    assert {name: types[name] for name in floats} == dict.fromkeys(floats, "Value('float64')")
    assert types["bytes"] == types["width"] == types["task_created_at"] == "Value('int64')"
    assert types["has_audio"] == "Value('bool')" and "Value('string')" in types["qa"]
    assert types["image_tail_ref"] == types["negative_prompt"] == "Value('string')"  # none has one
    assert types["image"] == types["image_tail"] == "Image(mode=None, decode=True)"
    assert types["cfg_scale"] == "Value('float64')"  # no row has one either
    paths = loaded.cast_column("video", datasets.Video(decode=False))
    first = paths[0]
    assert first["duration"] == 5.0 and first["qa"] == [] and first["width"] == 256
    assert Path(first["video"]["path"]).is_file()


# -- excluding flagged videos --------------------------------------------------------------------


# -- csv -----------------------------------------------------------------------------------------


# -- failures ------------------------------------------------------------------------------------
