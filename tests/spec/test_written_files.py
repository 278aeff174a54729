"""The run folder's files are replaced whole or not at all: an error or an interrupt while
index.jsonl is written (a second Ctrl-C during a large run's last step) leaves the index as it
was, and no temporary file beside it; each line of the index is its entry's JSON."""

from __future__ import annotations

import enum
import errno
import json
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from batchgen import output
from batchgen.errors import StateError
from batchgen.jobs import canonical_json, make_job
from batchgen.output import _write_lines_atomic
from batchgen.state.changes import Accepted, Done, Generated, Submitting, WatermarkSaved
from batchgen.state.store import Store
from batchgen.status import JobStatus


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


# -- index.jsonl's lines --------------------------------------------------------------------------

TEXTS = [
    "plain",
    "café",
    "🎬 emoji",
    'quote " and \\ back',
    "line\nbreak\ttab",
    "\x01\u2028\u00a0",
    "",
]
NUMBERS = [0, 7, -3, 2**53 + 1, 0.1, 1e-07, 1e21, -0.0, 5.0, 2.5e-300]


def tricky(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value of the kinds a manifest's metadata, a request or a probe can hold."""
    kind = rng.choice(["text", "number", "bool", "none", "list", "dict"] if depth < 2 else ["text"])
    if kind == "text":
        return rng.choice(TEXTS) + str(rng.randrange(100))
    if kind == "number":
        return rng.choice(NUMBERS)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "list":
        return [tricky(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(TEXTS) + str(n): tricky(rng, depth + 1) for n in range(rng.randrange(4))}


@contextmanager
def tricky_run(tmp_path: Path, database: str | None) -> Iterator[tuple[Path, Store]]:
    """A run folder and its state: 40 done jobs whose requests, metadata, variants, probes and
    findings hold values of every kind, 30 of them checked."""
    rng = random.Random(25)
    specs = [
        make_job(
            {"prompt": rng.choice(TEXTS), "image": f"sha256:{n:064x}", "cfg_scale": 0.5,
             "camera_control": {"type": "simple", "config": {"zoom": rng.choice(NUMBERS)}}},
            f"row-{n}",
            metadata={} if n % 5 == 0 else {f"k{i}": tricky(rng) for i in range(4)},
            variant={"duration": "5", "cfg": rng.choice(NUMBERS), "sample": n % 3},
        )
        for n in range(40)
    ]  # fmt: skip
    run = tmp_path / "run"
    with Store.open(run / "state.sqlite", database) as store:
        store.add_jobs(specs)
        for n, spec in enumerate(specs):
            store.apply(spec.job_id, Submitting(f"bg-{spec.job_id}", 1.0))
            store.apply(spec.job_id, Accepted(f"task-{n}", JobStatus.SUBMITTED, 1000 + n))
            store.apply(spec.job_id, Generated(None, rng.choice(["5.1", "5", None]), "1", None))
            if n % 4:
                probe = {
                    "codec": "h264",
                    "fps": rng.choice([24.0, float("nan"), 8]),
                    **tricky_map(rng),
                }
                findings = [{"code": "frozen", "message": rng.choice(TEXTS)}] if n % 3 else []
                store.checks.record(spec.job_id, f"{n:064x}", probe, findings)
            store.apply(spec.job_id, Done(f"videos/row-{n}.mp4", f"{n:064x}", n, 2.0))
        yield run, store


def test_the_index_is_written_as_its_entries_read_and_written_again(tmp_path, database):
    """Each line of index.jsonl, written from the state's stored JSON text where it can be, is
    byte for byte the line of its entry with every value read (sorted keys, compact, not
    ASCII-escaped), for requests, metadata, variants, probes and findings of every kind of
    value, checked and unchecked, on both databases."""
    with tricky_run(tmp_path, database) as (run, store):
        assert output.write_indexes(store, run) == (40, 0)
        expected = [
            json.dumps(
                output.index_entry(job, None if check is None else check.as_json()),
                sort_keys=True,
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for job, check in store.checks.done_with_checks()
        ]
    lines = (run / "index.jsonl").read_text(encoding="utf-8").split("\n")[:-1]  # (not at U+2028)
    assert lines == expected and len(lines) == 40
    assert sum('"probe":null' in line for line in lines) == 10


def test_an_index_written_in_parts_by_several_processes_is_the_one_written_whole(
    tmp_path, database
):
    """A large index is written by a process per core, each a range of job ids, the ranges
    appended in order: the same file, byte for byte, as one process writes, on both
    databases, with nothing left beside it; lines the state holds but has not committed are
    in it."""
    with tricky_run(tmp_path, database) as (run, store):
        assert output.write_indexes(store, run, parts=1) == (40, 0)
        whole = (run / "index.jsonl").read_bytes()
        ids = [json.loads(line)["job_id"] for line in whole.decode().split("\n")[:-1]]
        assert {job_id < "5555" for job_id in ids} == {True, False}  # (3 ranges: 5555, aaaa)
        assert {job_id < "aaaa" for job_id in ids} == {True, False}
        assert output.write_indexes(store, run, parts=3) == (40, 0)
        assert (run / "index.jsonl").read_bytes() == whole
        store.db.group_commits()
        store.apply(next(store.checks.done_with_checks())[0].job_id, WatermarkSaved("w.mp4"))
        assert output.write_indexes(store, run, parts=2) == (40, 0)
        assert b'"watermark_video":"w.mp4"' in (run / "index.jsonl").read_bytes()
    assert sorted(p.name for p in run.iterdir() if "index" in p.name) == ["index.jsonl"]


def test_an_index_whose_parts_cannot_be_written_leaves_the_old_one_and_no_temporary_file(
    tmp_path,
):
    index = tmp_path / "index.jsonl"
    index.write_text('{"line": "old"}\n', encoding="utf-8")
    unreadable = (tmp_path / "a folder, not a state", None)
    unreadable[0].mkdir()
    with pytest.raises(StateError):
        output._write_index_in_parts(unreadable, index, 3)
    assert index.read_text(encoding="utf-8") == '{"line": "old"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a folder, not a state", "index.jsonl"]


def tricky_map(rng: random.Random) -> dict[str, Any]:
    return {f"extra{i}": tricky(rng) for i in range(rng.randrange(3))}


class Level(enum.IntEnum):
    HIGH = 2


class Seconds(float):
    pass


PLAIN = [
    *TEXTS,
    *NUMBERS,
    True,
    False,
    None,
    float("nan"),
    float("inf"),
    -float("inf"),
    -(2**70),
    Level.HIGH,
    Seconds(1.5),
]


def test_a_line_is_its_entry_written_by_the_json_module_for_every_kind_of_value():
    """`index_line` writes each value by its type's own json function: every scalar kind the
    json module knows (NaN and the infinities, -0.0, bools apart from ints, huge ints, a
    subclass of int or float written as the json module writes it), lists and maps, stored
    JSON text spliced in, in any key order, byte for byte as the json module writes the entry
    with every value read."""
    rng = random.Random(2512)
    for _ in range(400):
        entry: dict[str, Any] = {}
        for i in rng.sample(range(30), rng.randrange(1, 12)):
            key = rng.choice(TEXTS) + str(i)
            kind = rng.random()
            if kind < 0.5:
                entry[key] = rng.choice(PLAIN)
            elif kind < 0.8:
                entry[key] = tricky(rng)
            else:
                entry[key] = output.StoredJson(canonical_json(tricky(rng)))
        read = {k: json.loads(v) if type(v) is output.StoredJson else v for k, v in entry.items()}
        expected = json.dumps(read, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        assert output.index_line(entry) == expected, entry


@pytest.mark.parametrize("kernel_copies", [True, False])
def test_a_part_is_appended_whole_whether_or_not_the_kernel_copies_it(
    tmp_path, monkeypatch, kernel_copies
):
    """A part of the index is appended by the kernel (copy_file_range) where it can; where it
    cannot, even after copying some of it, the part is appended whole through this process,
    once."""
    index = tmp_path / "index.tmp"
    index.write_bytes(b"first part\n")
    piece = tmp_path / "piece.tmp"
    piece.write_bytes(b"second part\n" * 1000)
    real = os.copy_file_range

    def refused_after_some(source: int, target: int, count: int) -> int:
        real(source, target, 100)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    if not kernel_copies:
        monkeypatch.setattr(os, "copy_file_range", refused_after_some)
    with open(index, "r+b") as out:
        out.seek(0, os.SEEK_END)
        output._append(out, piece)
        out.write(b"third part\n")
    assert index.read_bytes() == b"first part\n" + b"second part\n" * 1000 + b"third part\n"
    assert not piece.exists()
