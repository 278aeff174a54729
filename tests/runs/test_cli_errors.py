"""`main`: expected failures end with their message and exit code, never a traceback."""

from __future__ import annotations

import subprocess
import sys


def test_a_missing_manifest_is_one_line_and_exit_2():
    """`python -m batchgen run nowhere.yaml`: one line naming the file, exit 2."""
    done = subprocess.run(
        [sys.executable, "-m", "batchgen", "run", "nowhere.yaml", "--api-key", "sk-x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr == "error: manifest not found: nowhere.yaml\n"
