"""Pre-flight validation of a 100,000-row manifest, CSV and YAML (`python bench/validate.py
[ROWS]`): wall time and peak RSS of `batchgen validate` in its own process. Baseline: the same
process doing nothing but start (`batchgen --version`), so the figure shows what the rows cost.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import figure, write_csv_manifest
from scale import BATCHGEN, timed

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000


def write_yaml_manifest(folder: Path, rows: int) -> Path:
    """Written line by line: a child's peak RSS on Linux counts what its parent held when it
    forked, so the parent must stay small."""
    path = folder / "bench.yaml"
    with open(path, "w") as f:
        f.write('defaults: {model_name: kling-v2-master, duration: "5"}\nrows:\n')
        for i in range(rows):
            f.write(f'  - {{id: r{i}, image: images/{i % 4}.png, prompt: "prompt {i}"}}\n')
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
            name = f"validate {ROWS:,} rows ({path.suffix[1:].upper()})"
            figure(f"{name}: wall", seconds, "-", f"{start_s:.2f} s (start only)", " s")
            figure(f"{name}: peak RSS", mb, "-", f"{start_mb:.0f} MB (start only)", " MB")


if __name__ == "__main__":
    main()
