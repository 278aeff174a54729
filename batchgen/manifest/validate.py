"""Pre-flight rules: a variant's fields become a request, or every reason they cannot.

All independent problems of a request are found in one pass, in this order:

1. each field on its own (`params.JobParams`: types, enums, ranges, prompt ≤ 500 and
   negative_prompt ≤ 200 characters, list lengths);
2. the rules that relate fields (`relations`: start frame, one group of extras, voices,
   multi-shot);
3. the model's capabilities (`capabilities`: mode, duration, sound and each feature);
4. every image: JPG/JPEG/PNG by content, ≤ 10 MB, both sides ≥ 300 px, aspect ratio within
   1:2.5 and 2.5:1, decoded in full; masks the size of the image; trajectory points inside
   it. A URL that is not inlined is only checked for its shape, so these checks wait for the
   provider.

A problem is left out only when it is a consequence of another one already reported:

- a field whose value is unusable (rule 1) is judged no further, and neither is what depends on
  it: with a broken model_name no capability is judged (against which model?); with a broken
  or unsupported mode or duration, the features that depend on the (mode, duration) pair are
  not (the duration alone is still checked against the model, and the mode alone too);
  a broken prompt is not searched for voice references, a broken duration not compared with
  the shot durations; a field the model does not take (and its feature group: multi_shot,
  shot_type, multi_prompt) is not judged by the relation rules;
- `suspects` are fields the row meant to set but did not, as `expand` found them: the field a
  misspelt key was probably meant to be (`Mode: pro` → mode), a field whose matrix axis or CSV
  cell was unusable, `image` for a glob that matched nothing. They are treated like broken
  fields, so `imge: a.png` is one problem, not also "image: required", and `Mode: pro` does
  not also give "image_tail needs pro".

The request holds image refs (jobs.py), never bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from batchgen.errors import ImageUnreadable
from batchgen.manifest.capabilities import FEATURES, capability_problems
from batchgen.manifest.images import ImageCatalog, ImageInfo
from batchgen.manifest.params import JobParams, check_params
from batchgen.manifest.relations import relation_problems

Messages = list[tuple[str, str]]
FORMATS = ("JPEG", "PNG", "MPO")  # MPO: a camera JPEG with extra frames, still a .jpg
MIN_SIDE = 300
MAX_ASPECT = 2.5


def check_request(
    fields: Mapping[str, Any],
    catalog: ImageCatalog,
    base: Path | None = None,
    suspects: Iterable[str] = (),
) -> dict[str, Any] | Messages:
    """The request for `fields` (image fields as refs), or every (field, message) wrong with
    it. Relative image paths start at `base` (default: the catalog's folder); `suspects` as in
    the module docstring."""
    params, problems = _params(fields)
    body = params.body()
    broken = frozenset({where.split(".")[0] for where, _ in problems} | set(suspects))
    refused = capability_problems(body, broken)
    problems += relation_problems(body, broken | _refused_fields(refused)) + refused
    request, found = _with_refs(body, catalog, base)
    problems += found
    problems = [(where, m) for where, m in problems if where.split(".")[0] not in suspects]
    return problems if problems else request


def _refused_fields(refused: Messages) -> frozenset[str]:
    """The fields the model refused, with the whole feature group of any of them (multi_shot
    refused: shot_type and multi_prompt are judged no further either)."""
    found = {where.split(".")[0] for where, _ in refused}
    for names, _ in FEATURES.values():
        if found & set(names):
            found |= set(names)
    return frozenset(found)


def _params(fields: Mapping[str, Any]) -> tuple[JobParams, Messages]:
    """The valid fields, and the problems of the others (left out)."""
    checked = check_params(dict(fields))
    if isinstance(checked, JobParams):
        return checked, []
    broken = {where.split(".")[0] for where, _ in checked}
    rest = check_params({k: v for k, v in fields.items() if k not in broken})
    return (rest if isinstance(rest, JobParams) else JobParams()), checked


def image_sources(fields: Mapping[str, Any]) -> list[str]:
    """Every image source a variant's fields name (before checking), masks included."""
    found = [fields.get(name) for name in ("image", "image_tail", "static_mask")]
    masks = fields.get("dynamic_masks")
    if isinstance(masks, list):
        found += [group.get("mask") for group in masks if isinstance(group, Mapping)]
    return [value for value in found if isinstance(value, str) and value]


def image_problems(info: ImageInfo) -> list[str]:
    """What is wrong with an image by the provider's rules (nothing is known of a URL)."""
    if info.format is not None and info.format not in FORMATS:
        return [f"must be JPG or PNG by content (got {info.format})"]
    size = info.dimensions
    if size is None:
        return []
    width, height = size
    if min(size) < MIN_SIDE:
        return [f"width and height must be at least {MIN_SIDE} px (got {width}x{height})"]
    if max(size) > MAX_ASPECT * min(size):
        return [f"aspect ratio must be within 1:2.5 and 2.5:1 (got {width}x{height})"]
    return []


def _with_refs(
    body: dict[str, Any], catalog: ImageCatalog, base: Path | None
) -> tuple[dict[str, Any], Messages]:
    request = dict(body)
    problems: Messages = []
    infos: dict[str, ImageInfo] = {}
    for name in ("image", "image_tail", "static_mask"):
        if name in body:
            info = _lookup(catalog, body[name], base, name, problems)
            if info is not None:
                request[name], infos[name] = info.ref, info
    frame = infos.get("image")
    if "static_mask" in infos:
        problems += _mask_problems(infos["static_mask"], frame, "static_mask")
    if "dynamic_masks" in body:
        groups, found = _dynamic(body["dynamic_masks"], frame, catalog, base)
        request["dynamic_masks"] = groups
        problems += found
    for name, info in infos.items():
        if name != "static_mask":
            problems += [(name, message) for message in image_problems(info)]
    return request, problems


def _lookup(
    catalog: ImageCatalog, source: str, base: Path | None, where: str, problems: Messages
) -> ImageInfo | None:
    try:
        return catalog.lookup(source, base)
    except ImageUnreadable as exc:
        problems.append((where, str(exc)))
        return None


def _mask_problems(mask: ImageInfo, frame: ImageInfo | None, where: str) -> Messages:
    if frame is None or frame.dimensions is None or mask.dimensions is None:
        return [(where, message) for message in image_problems(mask)]
    if mask.format is not None and mask.format not in FORMATS:
        return [(where, f"must be JPG or PNG by content (got {mask.format})")]
    if mask.dimensions != frame.dimensions:
        want, got = _size(frame), _size(mask)
        return [(where, f"must be the size of image, {want} (got {got})")]
    return []


def _size(info: ImageInfo) -> str:
    return f"{info.width}x{info.height}"


def _dynamic(
    groups: list[dict[str, Any]], frame: ImageInfo | None, catalog: ImageCatalog, base: Path | None
) -> tuple[list[dict[str, Any]], Messages]:
    problems: Messages = []
    resolved = []
    for index, group in enumerate(groups):
        where = f"dynamic_masks.{index}"
        info = _lookup(catalog, group["mask"], base, f"{where}.mask", problems)
        if info is not None:
            problems += _mask_problems(info, frame, f"{where}.mask")
            group = {**group, "mask": info.ref}
        problems += _outside(group["trajectories"], frame, f"{where}.trajectories")
        resolved.append(group)
    return resolved, problems


def _outside(points: list[dict[str, int]], frame: ImageInfo | None, where: str) -> Messages:
    if frame is None or frame.dimensions is None:
        return []
    width, height = frame.dimensions
    for index, point in enumerate(points):
        if point["x"] >= width or point["y"] >= height:
            xy = f"({point['x']}, {point['y']})"
            return [(f"{where}.{index}", f"point {xy} is outside the {width}x{height} image")]
    return []
