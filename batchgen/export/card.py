"""The dataset card (README.md) of an hf export: where the videos came from, what the columns
hold, and how to load them. `Provenance` is gathered while the samples stream by."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from batchgen.download import file_sha256
from batchgen.export.columns import (
    CORE_KINDS,
    METADATA_PREFIX,
    QA,
    REQUEST,
    VARIANT_PREFIX,
    Kind,
    cast,
    qa_codes,
)
from batchgen.export.inputs import SampleInputs
from batchgen.manifest.lockfile import LOCK_NAME
from batchgen.money.pricing import Key, cost_of, job_key, load_prices

_LOCK_VERSION = re.compile(r'\{"batchgen": "([^"]*)"')  # the lock's first line (lockfile.py)
MEANINGS = {
    "file_name": "the video, relative to this folder (the loader's `video` column)",
    "job_id": "batchgen's id of the job: a hash of the request and sample index",
    "row_id": "the manifest row (and variant) the video belongs to; its file's stem",
    "sha256": "sha256 of the video file",
    "bytes": "size of the video file",
    "video_duration": "seconds, as the provider reported them",
    "model_name": "Kling model asked for",
    "mode": "std or pro (None: the model takes no mode)",
    "duration": "seconds asked for",
    "prompt": "the prompt sent",
    "negative_prompt": "the negative prompt sent",
    "cfg_scale": "prompt adherence sent (kling-v1.x)",
    "image": "the input image, as the bytes sent (its file is beside the video); None where "
    "the provider fetched it from a URL",
    "image_tail": "the end-frame image, as `image`",
    "static_mask": "the static motion-brush mask, as `image`",
    "dynamic_masks": "the dynamic motion-brush masks: their files, relative to this folder",
    "image_ref": "the input image as the request named it: `sha256:<hex>` of the bytes sent, "
    "or the URL the provider fetched",
    "image_tail_ref": "the end-frame image, as `image_ref`",
    "task_id": "the provider's task id",
    "task_created_at": "Unix ms when the provider created the task",
    "task_updated_at": "Unix ms of the task's last change at the provider",
    "final_unit_deduction": "units the provider charged",
    "container": "probed: container of the file",
    "codec": "probed: video codec",
    "width": "probed: frame width in px",
    "height": "probed: frame height in px",
    "fps": "probed: frames per second",
    "frames": "probed: video frames in the file",
    "duration_s": "probed: seconds of video",
    "has_audio": "probed: the file has an audio stream",
    QA: "QA finding codes ([] clean; None: not checked); see Quality checks",
    REQUEST: "the whole request sent, as JSON (images by sha256)",
}


@dataclass
class Provenance:
    """What an export holds and where it came from, counted one entry at a time."""

    run: str
    lock_sha256: str | None = None
    provider: str | None = None  # where the videos were made (the state says), if known
    lock_batchgen: str | None = None
    exported: int = 0
    flagged: int = 0
    unchecked: int = 0
    keyframes_only: int = 0  # checked on their keyframes alone (`--qa keyframes`)
    excluded_flagged: int = 0
    skipped_missing: int = 0
    without_inputs: int = 0  # samples with an input image that has no file (a URL sent)
    units: float = 0.0
    findings: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    kinds: Counter[Key] = field(default_factory=Counter)

    @classmethod
    def of_run(cls, run_dir: Path) -> Provenance:
        """An empty count for the run in `run_dir`, with its lock file's hash and the batchgen
        version that wrote it."""
        lock = run_dir / LOCK_NAME
        if not lock.is_file():
            return cls(run_dir.name)
        with open(lock, encoding="utf-8") as f:
            written_by = _LOCK_VERSION.match(f.readline())
        return cls(run_dir.name, file_sha256(lock), written_by and written_by.group(1))

    def add(self, entry: Mapping[str, Any], inputs: SampleInputs | None = None) -> None:
        """Count one exported index entry (and whether its inputs have files)."""
        request = entry.get("request") or {}
        codes = qa_codes(entry)
        self.exported += 1
        self.without_inputs += bool(inputs and inputs.without_file)
        self.unchecked += codes is None
        probe = entry.get("probe")
        self.keyframes_only += isinstance(probe, Mapping) and probe.get("decode") == "keyframes"
        self.flagged += bool(codes)
        self.findings.update(codes or ())
        self.models[str(request.get("model_name") or "kling-v1")] += 1
        self.kinds[job_key(request)] += 1
        self.units += cast(entry.get("final_unit_deduction"), Kind.FLOAT) or 0.0


def render_card(provenance: Provenance, kinds: Mapping[str, Kind]) -> str:
    """The README.md of an export with these columns (name -> kind, in order)."""
    p = provenance
    return "\n".join(
        [
            _front_matter(p.run),
            f"# {p.run}\n",
            f"{p.exported} videos made with Kling image-to-video by batchgen, run `{p.run}`.\n",
            REPRODUCIBILITY,
            "## Provenance\n",
            "| | |\n|---|---|",
            *(f"| {name} | {value} |" for name, value in _facts(p)),
            "",
            LOADING,
            "## Columns\n",
            "| column | type | meaning |\n|---|---|---|",
            *(f"| `{name}` | {kind} | {_meaning(name)} |" for name, kind in kinds.items()),
            "",
            QUALITY,
        ]
    )


def _front_matter(run: str) -> str:
    tags = "".join(f"- {tag}\n" for tag in ("video", "image-to-video", "synthetic", "batchgen"))
    return (
        f"---\npretty_name: {json.dumps(run)}\ntask_categories:\n- image-to-video\n"
        f"tags:\n{tags}---\n"
    )


def _facts(p: Provenance) -> list[tuple[str, str]]:
    cost = cost_of(p.kinds, load_prices())
    lock = f"`{LOCK_NAME}` sha256 `{p.lock_sha256}`" if p.lock_sha256 else "none found"
    findings = ", ".join(f"{code} {n}" for code, n in p.findings.most_common()) or "none"
    return [
        ("batchgen", f"{version('batchgen')} (the lock was written by {p.lock_batchgen or '?'})"),
        ("manifest lock", lock),
        ("models", ", ".join(f"{model} ({n})" for model, n in sorted(p.models.items()))),
        (
            "videos",
            f"{p.exported} exported, {p.flagged} of them flagged, {p.unchecked} unchecked, "
            f"{p.keyframes_only} checked on their keyframes alone",
        ),
        ("QA findings", findings),
        ("left out", f"{p.excluded_flagged} flagged, {p.skipped_missing} missing"),
        ("units charged", f"{p.units:g} (sum of final_unit_deduction)"),
        ("estimated cost", f"${cost.usd:,.2f} ({cost.usd_text()}; price table of {cost.taken})"),
    ]


def _meaning(name: str) -> str:
    if name in MEANINGS:
        return MEANINGS[name]
    if name == VARIANT_PREFIX + "sample":
        return "which sample of its variant this is (`repeat`), from 0"
    if name.startswith(VARIANT_PREFIX):
        return "the value the manifest's matrix gave this variant"
    if name.startswith(METADATA_PREFIX) or name not in CORE_KINDS:
        return "metadata from the manifest row"
    return ""


REPRODUCIBILITY = """Every video here is machine-generated: synthetic footage made by a model from
the input image and the prompt, not a recording of anything. A generation cannot be reproduced
by calling the API again: Kling's image2video takes no seed, so the same request gives another
video. What makes this dataset reproducible is its record: the manifest and its lock file
(`manifest.lock.json`: every job's request and id, the hash of what was sent), the input
images as sent (their sha256 is the `image_ref`), and the sha256 of every video (`sha256`);
`croissant.json` holds the same in Croissant 1.1, with its provenance.
"""

LOADING = """## Load it

```python
from datasets import load_dataset, Video

ds = load_dataset("videofolder", data_dir="path/to/this/folder", split="train")
ds = ds.cast_column("video", Video(decode=False))  # rows then hold {"path": ..., "bytes": None}
```

Decoding videos (leaving `decode=True`, so that `ds[0]["video"]` is a video decoder) needs
`torchcodec` (`pip install torchcodec`, which needs PyTorch and FFmpeg); without it, load
with `decode=False` as above, or read `metadata.parquet` with pandas or pyarrow: its
`file_name` is each video's path relative to this folder.
"""

QUALITY = """## Quality checks

batchgen probed each video with PyAV after download and lists in `qa` what is off:
`undecodable` (frames that do not decode), `duration_off` (more than 0.5 s from the seconds
asked), `aspect_off` (more than 5 % from the input image's shape), `black_frames`, `frozen`
(next to no change between frames), `no_audio` (sound asked, no audio stream). Flagged
videos are kept unless the export was made with `--exclude-flagged`. A video a run made with
`--qa off` was not checked (its `qa` is null); one made with `--qa keyframes` was checked on
its keyframes alone (its probe's `decode`): black frames judged on them, `frozen` only where it
has several, damage between them not seen.
"""
