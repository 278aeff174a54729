"""Pre-flight validation of a 100,000-row manifest, CSV and YAML (`python bench/validate.py
[ROWS]`): wall time and peak RSS of `batchgen validate` in its own process. Baseline: the same
process doing nothing but start (`batchgen --version`), so the figure shows what the rows cost.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml
from common import figure, write_csv_manifest
from scale import BATCHGEN, timed

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000


def write_yaml_manifest(folder: Path, rows: int) -> Path:
    path = folder / "bench.yaml"
    doc = {
        "defaults": {"model_name": "kling-v2-master", "duration": "5"},
        "rows": [
            {"id": f"r{i}", "image": f"images/{i % 4}.png", "prompt": f"prompt {i}"}
            for i in range(rows)
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = write_csv_manifest(folder, ROWS)
        yaml_path = write_yaml_manifest(folder, ROWS)
        start_s, start_mb, _ = timed([*BATCHGEN, "--version"], folder)
        for path in (csv_path, yaml_path):
            seconds, mb, code = timed([*BATCHGEN, "validate", str(path)], folder)
            assert code == 0, code
            kind = path.suffix[1:].upper()
            figure(f"validate {ROWS:,} rows ({kind}): wall", seconds, "-", f"{start_s:.2f} s", " s")
            figure(f"validate {ROWS:,} rows ({kind}): peak RSS", mb, "-", f"{start_mb:.0f} MB", " MB")


if __name__ == "__main__":
    main()
