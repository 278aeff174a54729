"""Answers that must end somewhere sensible in a run: a success with no video, a watermarked
copy asked for, a row --skip-invalid left out; and the 2026 models the simulator now takes."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
import yaml
from PIL import Image
from pydantic import SecretStr

import batchgen
from batchgen.settings import Settings
from batchgen.status import JobStatus
from tests.conftest import read_index, run_cli, simulator, write_manifest


def test_a_success_without_a_video_url_fails_the_job_with_that_reason(tmp_path):
    """`succeed` with no video: not left downloading run after run, but failed, saying why;
    `retry --failed` follows the paid task again instead of paying for a new one."""
    manifest = write_manifest(tmp_path, 2)
    out = tmp_path / "out"
    settings = Settings(output=out, api_key=SecretStr("sk-test"))
    with simulator(missing_video_rate=1.0) as sim:
        settings = settings.model_copy(update={"base_url": sim.base_url})
        outcome = batchgen.run(manifest, settings, not_found_grace=0.5)
        assert outcome.counts[JobStatus.FAILED] == 2 and outcome.exit_code == 1
        failures = [
            json.loads(line) for line in (out / "batch" / "failed.jsonl").read_text().splitlines()
        ]
        assert {f["error_kind"] for f in failures} == {"no_video"}
        assert all("gave no video URL" in f["error"] for f in failures)
        assert run_cli("retry", manifest, "-o", out, "--failed") == 0
        sim.reconfigure(missing_video_rate=0.0)
        batchgen.run(manifest, settings, not_found_grace=0.5)
        assert sim.stats()["creates_received"] == 2  # followed again, never paid again


def test_a_watermarked_copy_is_downloaded_beside_the_video(tmp_path, capsys):
    """watermark_info.enabled: the provider's watermark_url lands at <row>.watermark.mp4."""
    manifest = write_manifest(tmp_path, 2)
    doc = yaml.safe_load(manifest.read_text())
    doc["defaults"]["watermark_info"] = {"enabled": True}
    manifest.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    with simulator() as sim:
        assert run_cli("run", manifest, "-o", out, base_url=sim.base_url) == 0
    for entry in read_index(out / "batch"):
        copy = out / "batch" / entry["watermark_video"]
        assert copy.name == f"{entry['row_id']}.watermark.mp4" and copy.stat().st_size > 0
    capsys.readouterr()
    assert run_cli("verify", out / "batch") == 0
    assert "0 extra" in capsys.readouterr().out


def test_rows_left_out_by_skip_invalid_are_in_failed_jsonl(tmp_path):
    """--skip-invalid runs the valid rows; the invalid ones are listed with row and field."""
    manifest = write_manifest(tmp_path, 3)
    manifest.write_text(manifest.read_text().replace("slow pan, take 1", "x" * 600))
    out = tmp_path / "out"
    with simulator() as sim:
        run_cli("run", manifest, "-o", out, "--skip-invalid", base_url=sim.base_url)
    lines = [json.loads(line) for line in (out / "batch" / "failed.jsonl").read_text().splitlines()]
    assert [(e["row_id"], e["status"], e["field"]) for e in lines] == [
        ("clip-001", "invalid", "prompt")
    ]


@pytest.mark.parametrize(
    ("fields", "units"),
    [
        ({"model_name": "kling-v3", "mode": "pro", "duration": "8", "sound": "on"}, "9.6"),
        ({"model_name": "kling-v3", "mode": "4k", "duration": "5"}, "15"),
        ({"model_name": "kling-v2-6", "mode": "pro", "duration": "5", "sound": "on"}, "5"),
    ],
)
def test_the_simulator_takes_the_2026_fields_and_charges_per_second(tmp_path, fields, units):
    """kling-v3 4k and sound, kling-v2-6 pro sound: accepted, charged E24's units a second."""
    image = tmp_path / "i.png"
    Image.new("RGB", (480, 320), (10, 20, 30)).save(image)
    body = {"image": base64.b64encode(image.read_bytes()).decode(), "prompt": "p", **fields}
    with (
        simulator(latency=(0.05, 0.05)) as sim,
        httpx.Client(base_url=sim.base_url, headers={"Authorization": "Bearer sk"}) as client,
    ):
        answer = client.post(sim.api_path, json=body).json()
        task_id = answer["data"]["task_id"]
        for _ in range(100):
            data = client.get(f"{sim.api_path}/{task_id}").json()["data"]
            if data["task_status"] != "submitted" and data["task_status"] != "processing":
                break
            time.sleep(0.02)
    assert data["task_status"] == "succeed" and data["final_unit_deduction"] == units
