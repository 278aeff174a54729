"""The run folder's files are replaced whole or not at all: an error or an interrupt while
index.jsonl is written (a second Ctrl-C during a large run's last step) leaves the index as it
was, and no temporary file beside it."""

from __future__ import annotations

import pytest

from batchgen.output import _write_lines_atomic


def lines_then(error: BaseException, count: int):
    for i in range(count):
        yield f'{{"line": {i}}}'
    raise error


@pytest.mark.parametrize("error", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_an_index_cut_off_while_written_leaves_the_old_one_and_no_temporary_file(tmp_path, error):
    index = tmp_path / "index.jsonl"
    index.write_text('{"line": "old"}\n', encoding="utf-8")
    with pytest.raises(type(error)):
        _write_lines_atomic(index, lines_then(error, 1000), shared=True)
    assert index.read_text(encoding="utf-8") == '{"line": "old"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.jsonl"]


def test_an_index_written_whole_replaces_the_old_one(tmp_path):
    index = tmp_path / "index.jsonl"
    index.write_text('{"line": "old"}\n', encoding="utf-8")
    assert _write_lines_atomic(index, ['{"line": 0}', '{"line": 1}'], shared=True) == 2
    assert index.read_text(encoding="utf-8") == '{"line": 0}\n{"line": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.jsonl"]
