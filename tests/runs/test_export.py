"""`batchgen export`: hf, csv and webdataset folders that read back as the run they came from."""

from __future__ import annotations

from pathlib import Path

from batchgen.export import export_run
from tests.conftest import run_cli, write_manifest

# -- a run folder as a finished run leaves it ----------------------------------------------------


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
