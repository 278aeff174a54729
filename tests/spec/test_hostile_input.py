"""Input nobody should send still gets a clean answer: a problem or a usage error naming the
file, line and field, never a traceback, a hang or a task sent to the provider."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import yaml
from PIL import Image

from batchgen.errors import Problem, UsageError
from batchgen.jobs import JobSpec
from batchgen.manifest.imagedecode import MAX_PIXELS
from batchgen.manifest.images import ImageCatalog, ImageUnreadable
from batchgen.manifest.resolve import resolve_manifest

BOMB = """\
x-lol0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
x-lol1: &l1 [*l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0, *l0]
x-lol2: &l2 [*l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1, *l1]
x-lol3: &l3 [*l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2, *l2]
x-lol4: &l4 [*l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3, *l3]
x-lol5: &l5 [*l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4, *l4]
x-lol6: &l6 [*l5, *l5, *l5, *l5, *l5, *l5, *l5, *l5, *l5, *l5]
x-lol7: &l7 [*l6, *l6, *l6, *l6, *l6, *l6, *l6, *l6, *l6, *l6]
x-lol8: &l8 [*l7, *l7, *l7, *l7, *l7, *l7, *l7, *l7, *l7, *l7]
rows:
  - {image: a.png, notes: *l8}
"""


def png_bytes(size: tuple[int, int] = (480, 320), kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buffer, kind)
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "a.png").write_bytes(png_bytes())
    return tmp_path


def manifest(folder: Path, text: str, name: str = "m.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def outcome(path: Path) -> list[JobSpec | Problem]:
    return list(resolve_manifest(path).iter_jobs())


def usage_error(path: Path) -> str:
    with pytest.raises(UsageError) as caught:
        outcome(path)
    return str(caught.value)


def test_a_yaml_alias_bomb_is_refused_naming_the_line(folder: Path) -> None:
    """A "billion laughs" document is refused as soon as an alias stands for too much."""
    message = usage_error(manifest(folder, BOMB))
    assert "m.yaml, line 6" in message and "aliases expand to too many values" in message


def test_many_aliases_of_a_middle_sized_anchor_are_refused(folder: Path) -> None:
    """Each alias small enough, but all of them together beyond the budget, is refused too."""
    block = "[" + ", ".join(["x"] * 90_000) + "]"
    text = f"x-big: &big {block}\nrows:\n" + "".join(
        "  - {image: a.png, n: *big}\n" for _ in range(40)
    )
    assert "aliases expand to too many values" in usage_error(manifest(folder, text))


def test_ordinary_anchors_and_merge_keys_still_work(folder: Path) -> None:
    """Reusing a mapping of defaults in a thousand rows is not a bomb."""
    rows = "".join(f"  - {{<<: *common, id: r{i}, prompt: p{i}}}\n" for i in range(1000))
    text = "x-common: &common {image: a.png, model_name: kling-v2-master}\nrows:\n" + rows
    assert sum(isinstance(item, JobSpec) for item in outcome(manifest(folder, text))) == 1000


@pytest.mark.parametrize(
    ("depth", "fragment"), [(100, "nested more than 64 levels deep"), (5000, "nesting depth")]
)
def test_values_nested_without_end_are_refused(folder: Path, depth: int, fragment: str) -> None:
    """A value nested very deep is refused (by batchgen, or by libyaml), not a RecursionError."""
    text = "rows:\n  - {image: a.png, notes: " + "[" * depth + "]" * depth + "}\n"
    assert fragment in usage_error(manifest(folder, text))


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"id,image\nr1,a.png\nr2,\xff\xfe.png\n", "rows.csv, line 3: not UTF-8 text"),
        (b"id,image\nr1,a.png\x00\n", "rows.csv, line 2: a NUL byte"),
        ("id,image\n".encode("utf-16"), "rows.csv, line 1: not UTF-8 text"),
        (b'id,image,prompt\nr1,a.png,"never closed\nr2,a.png,x\n', "not readable as CSV"),
        (b'id,image,prompt\nr1,a.png,"a"b\n', "rows.csv, line 2: not readable as CSV"),
    ],
)
def test_malformed_csv_is_a_clean_error_naming_the_line(
    folder: Path, content: bytes, fragment: str
) -> None:
    """Bad encoding, NUL bytes, UTF-16 and broken quoting end in a UsageError with the line."""
    path = folder / "rows.csv"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=fragment):
        outcome(path)


@pytest.mark.parametrize(("separator", "said"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_csv_saved_with_another_separator_is_refused_saying_so(
    folder: Path, separator: str, said: str
) -> None:
    """A spreadsheet's export with semicolons or tabs is one column, not a missing image."""
    path = folder / "rows.csv"
    path.write_text(separator.join(["id", "image", "prompt"]) + "\n" + "r1;a.png;hi\n")
    with pytest.raises(UsageError, match=f"rows.csv, line 1: one column .* separated by {said}"):
        outcome(path)


def test_a_huge_csv_line_is_refused_without_reading_it_all(folder: Path) -> None:
    """A line beyond the limit (here 17 MB without a newline) is refused, naming its line."""
    path = folder / "rows.csv"
    with open(path, "wb") as stream:
        stream.write(b"id,image,prompt\nr1,a.png,")
        stream.write(b"x" * (17 * 1024 * 1024))
    with pytest.raises(UsageError, match=r"rows\.csv, line 2: longer than 16 MB"):
        outcome(path)


def test_json_nested_too_deep_in_a_csv_cell_is_a_problem(folder: Path) -> None:
    """A JSON cell nested beyond Python's recursion limit is a problem on its field."""
    cell = "[" * 100_000 + "]" * 100_000
    path = folder / "rows.csv"
    path.write_text(f'id,image,dynamic_masks\nr1,a.png,"{cell}"\n')
    (problem,) = outcome(path)
    assert isinstance(problem, Problem) and problem.field == "dynamic_masks"
    assert "nested too deep" in problem.message


def test_the_rows_file_must_be_a_regular_file(folder: Path) -> None:
    """`rows:` naming a FIFO (or a device) is refused instead of blocking on it."""
    os.mkfifo(folder / "pipe.csv")
    text = "rows: pipe.csv\n"
    assert "not a regular file" in usage_error(manifest(folder, text))


def test_an_image_whose_data_is_broken_is_refused(folder: Path) -> None:
    """A PNG whose compressed data is damaged (not just cut) fails to decode: a problem."""
    data = bytearray(png_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "broken.png").write_bytes(bytes(data))
    (problem,) = outcome(manifest(folder, "rows:\n  - {image: broken.png}\n"))
    assert isinstance(problem, Problem) and "not a readable image" in problem.message


def test_an_image_with_too_many_pixels_is_refused_unread(folder: Path) -> None:
    """A small file holding a huge image (a decompression bomb) is refused without decoding."""
    side = int(MAX_PIXELS**0.5) + 10
    Image.new("1", (side, side)).save(folder / "bomb.png")
    catalog = ImageCatalog(folder)
    with pytest.raises(ImageUnreadable, match="pixels"):
        catalog.lookup("bomb.png")


@pytest.mark.parametrize("content", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_bytes_that_are_not_an_image_are_a_problem(folder: Path, content: bytes) -> None:
    """Empty files, text and a bare PNG signature are refused as unreadable images."""
    (folder / "x.png").write_bytes(content)
    (problem,) = outcome(manifest(folder, "rows:\n  - {image: x.png}\n"))
    assert isinstance(problem, Problem) and "not a readable image" in problem.message


def test_an_image_used_by_many_rows_or_names_is_decoded_once(folder: Path) -> None:
    """10,000 rows over one image, plus a copy under another name: one decode."""
    (folder / "copy.png").write_bytes((folder / "a.png").read_bytes())
    rows = [{"id": f"r{i}", "image": "a.png", "prompt": f"p{i}"} for i in range(10_000)]
    rows.append({"id": "copy", "image": "copy.png", "prompt": "copy"})
    path = folder / "m.yaml"
    path.write_text(yaml.safe_dump({"defaults": {"model_name": "kling-v1"}, "rows": rows}))
    resolved = resolve_manifest(path)
    assert sum(isinstance(item, JobSpec) for item in resolved.iter_jobs()) == 10_001
    assert resolved.catalog.decoder.decodes == 1 and resolved.catalog.reads == 2


def test_many_distinct_images_are_decoded_ahead_in_the_decoding_threads(folder: Path) -> None:
    """With many distinct images, lookups are prefetched: the answers match a lookup in order."""
    names = []
    for i in range(40):
        (folder / f"i{i}.png").write_bytes(png_bytes())
        names.append(f"i{i}.png")
    (folder / "i7.png").write_bytes(b"broken")
    path = folder / "m.yaml"
    path.write_text(
        yaml.safe_dump({"rows": [{"id": f"r{i}", "image": n} for i, n in enumerate(names)]})
    )
    found = outcome(path)
    assert [item.row_id if isinstance(item, JobSpec) else item.row for item in found] == [
        f"r{i}" for i in range(40)
    ]
    assert [item.row for item in found if isinstance(item, Problem)] == ["r7"]


def test_a_lone_surrogate_escape_in_yaml_is_refused_naming_the_line(folder: Path) -> None:
    """YAML's "\\ud800" escape is no Unicode text: a usage error with its line."""
    text = 'rows:\n  - {image: a.png}\n  - {image: a.png, prompt: "\\ud800"}\n'
    assert "m.yaml, line 3" in usage_error(manifest(folder, text))


@pytest.mark.parametrize(
    ("column", "cell"),
    [
        ("dynamic_masks", '[{""mask"": ""\\ud83d"", ""trajectories"": []}]'),
        ("voice_list", '[{""voice_id"": ""\\udce9""}]'),
        ("matrix", '{""prompt"": [""\\ud800"", ""b""]}'),
    ],
)
def test_a_lone_surrogate_in_a_json_cell_is_a_problem(folder: Path, column: str, cell: str) -> None:
    """JSON cells can write lone surrogates: refused on their field, not a crash when hashed."""
    path = folder / "rows.csv"
    path.write_text(f'id,image,model_name,{column}\nr,a.png,kling-v3,"{cell}"\n')
    found = outcome(path)
    assert found and all(isinstance(item, Problem) for item in found)
    assert any("not valid Unicode" in item.message for item in found)  # type: ignore[union-attr]


def test_a_glob_through_a_link_loop_ends(folder: Path) -> None:
    """`**` does not follow links to folders: two links back up make no endless search."""
    (folder / "frames").mkdir()
    (folder / "frames" / "f1.png").write_bytes(png_bytes())
    os.symlink("..", folder / "frames" / "up")
    os.symlink(".", folder / "frames" / "self")
    found = outcome(manifest(folder, 'images: "**/f*.png"\n'))
    assert [item.row_id for item in found if isinstance(item, JobSpec)] == ["f1"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rows:\n  - !!python/object:os.system {}\n", "python/object"),
        ("rows:\n  - {image: a.png, cfg_scale: .nan, model_name: kling-v1}\n", "finite number"),
        ("rows:\n  - {image: a.png, duration: .inf}\n", "whole seconds"),
        ("rows:\n  - {image: a.png, duration: 1e300}\n", "whole seconds"),
        ("rows:\n  - {? [a, b] : c, image: a.png}\n", "unhashable"),
    ],
)
def test_odd_yaml_values_are_clean_answers(folder: Path, text: str, fragment: str) -> None:
    """Python tags, NaN, infinity, huge numbers and list keys: a problem or a usage error."""
    path = manifest(folder, text)
    try:
        found = outcome(path)
    except UsageError as exc:
        assert fragment in str(exc)
        return
    assert found and all(isinstance(item, Problem) for item in found)
    assert any(fragment in item.message for item in found)  # type: ignore[union-attr]


def test_a_manifest_that_is_a_folder_is_a_usage_error(folder: Path) -> None:
    """Pointing at a folder says so."""
    (folder / "dir.yaml").mkdir()
    with pytest.raises(UsageError, match="not a regular file"):
        resolve_manifest(folder / "dir.yaml")
