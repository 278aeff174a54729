"""A manifest that has not changed is not resolved again on resume; any change to what it
reads (the file, an image, what a glob matches) brings the full resolution back."""

from __future__ import annotations

import os

import yaml
from PIL import Image

from tests.conftest import read_index, run_cli, simulator, write_manifest

UNCHANGED = "manifest unchanged since it was loaded"


def test_an_interrupted_batch_resumes_from_the_state_without_resolving(tmp_path, capsys):
    path = write_manifest(tmp_path, 6)
    with simulator(account_error=1102) as sim:
        assert run_cli("run", path, base_url=sim.base_url) == 3
    assert UNCHANGED not in capsys.readouterr().err
    with simulator() as sim:
        assert run_cli("run", path, base_url=sim.base_url) == 0
        assert sim.stats()["creates_accepted"] == 6
    assert UNCHANGED in capsys.readouterr().err
    assert len(read_index(tmp_path / "output" / "batch")) == 6


def test_an_edited_image_is_resolved_again_and_only_its_jobs_rerun(tmp_path, capsys):
    path = write_manifest(tmp_path, 6)
    with simulator() as sim:
        assert run_cli("run", path, base_url=sim.base_url) == 0
        Image.new("RGB", (400, 300), (1, 2, 3)).save(tmp_path / "images" / "img0.jpg")
        capsys.readouterr()
        assert run_cli("run", path, base_url=sim.base_url) == 0
        assert UNCHANGED not in capsys.readouterr().err
        assert sim.stats()["creates_accepted"] == 8  # rows 0 and 3 use img0.jpg


def test_a_new_file_under_a_glob_is_resolved_again(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.new("RGB", (400, 300), (i, 50, 90)).save(frames / f"f{i}.png")
    path = tmp_path / "clips.yaml"
    doc = {"defaults": {"model_name": "kling-v2-master"}, "rows": [{"images": "frames/*.png"}]}
    path.write_text(yaml.safe_dump(doc))
    with simulator() as sim:
        assert run_cli("run", path, base_url=sim.base_url) == 0
        Image.new("RGB", (400, 300), (9, 50, 90)).save(frames / "f9.png")
        capsys.readouterr()
        assert run_cli("run", path, base_url=sim.base_url) == 0
        assert UNCHANGED not in capsys.readouterr().err
        assert sim.stats()["creates_accepted"] == 3


def test_an_image_changed_in_place_under_the_same_stat_is_never_sent(tmp_path, capsys):
    path = write_manifest(tmp_path, 3)
    with simulator(account_error=1102) as sim:
        assert run_cli("run", path, base_url=sim.base_url) == 3
    image = tmp_path / "images" / "img1.png"
    before = image.stat()
    data = bytearray(image.read_bytes())
    data[-20] ^= 0x01  # same size
    image.write_bytes(bytes(data))
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    with simulator() as sim:
        assert run_cli("run", path, base_url=sim.base_url) == 1
        assert sim.stats()["creates_accepted"] == 2
    assert UNCHANGED in capsys.readouterr().err
    assert run_cli("status", tmp_path / "output" / "batch") == 0
    assert "img1.png changed since the manifest was checked" in capsys.readouterr().out


def test_a_skipped_row_is_resolved_again_once_its_image_appears(tmp_path, capsys):
    path = write_manifest(tmp_path, 3)
    doc = yaml.safe_load(path.read_text())
    doc["rows"][2]["image"] = "images/later.png"
    path.write_text(yaml.safe_dump(doc))
    with simulator() as sim:
        assert run_cli("run", path, "--skip-invalid", base_url=sim.base_url) == 1
        Image.new("RGB", (400, 300), (7, 7, 7)).save(tmp_path / "images" / "later.png")
        capsys.readouterr()
        assert run_cli("run", path, "--skip-invalid", base_url=sim.base_url) == 0
        assert UNCHANGED not in capsys.readouterr().err
        assert sim.stats()["creates_accepted"] == 3
