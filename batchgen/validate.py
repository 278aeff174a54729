"""Pre-flight rules: a variant's fields become a request, or every reason they cannot.

The rules, in the order they are reported:

1. each field on its own (`params.JobParams`: types, enums, ranges, prompt ≤ 500 and
   negative_prompt ≤ 200 characters); a broken field is left out of the later checks: with a
   broken model_name the capabilities are not judged, with a broken mode or duration only
   what does not depend on them is;
2. `image` (the start frame) is required, also with image_tail (see `capabilities` on §15.3);
   one group at most of: end frame (image_tail), motion brush (static_mask, dynamic_masks),
   camera_control;
3. the model's capabilities (`capabilities.capability_problems`);
4. every image: JPG/JPEG/PNG by content, ≤ 10 MB, both sides ≥ 300 px, aspect ratio within
   1:2.5 and 2.5:1; masks the size of the image; trajectory points inside it. A URL that is not
   inlined is only checked for its shape, so these checks wait for the provider.

The request holds image refs (jobs.py), never bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batchgen.capabilities import capability_problems
from batchgen.images import ImageCatalog, ImageInfo, ImageUnreadable
from batchgen.params import JobParams, check_params

Messages = list[tuple[str, str]]
FORMATS = ("JPEG", "PNG", "MPO")  # MPO: a camera JPEG with extra frames, still a .jpg
MIN_SIDE = 300
MAX_ASPECT = 2.5
GROUPS = (
    ("image_tail",),
    ("static_mask", "dynamic_masks"),
    ("camera_control",),
)
GROUP_NAMES = "an end frame (image_tail), motion brush (static_mask/dynamic_masks), camera_control"


def check_request(
    fields: Mapping[str, Any], catalog: ImageCatalog, base: Path | None = None
) -> dict[str, Any] | Messages:
    """The request for `fields` (image fields as refs), or every (field, message) wrong with
    it. Relative image paths start at `base` (default: the catalog's folder)."""
    params, problems = _params(fields)
    body = params.body()
    problems += exclusive_problems(body)
    broken = {where.split(".")[0] for where, _ in problems}
    if "model_name" not in broken:
        problems += capability_problems(body, judge_timing=not broken & {"mode", "duration"})
    request, found = _with_refs(body, catalog, base)
    problems += found
    return problems if problems else request


def _params(fields: Mapping[str, Any]) -> tuple[JobParams, Messages]:
    """The valid fields, and the problems of the others (left out)."""
    checked = check_params(dict(fields))
    if isinstance(checked, JobParams):
        return checked, []
    broken = {where.split(".")[0] for where, _ in checked}
    rest = check_params({k: v for k, v in fields.items() if k not in broken})
    return (rest if isinstance(rest, JobParams) else JobParams()), checked


def exclusive_problems(body: Mapping[str, Any]) -> Messages:
    """A start frame is required; at most one group of extras is allowed."""
    problems: Messages = []
    if not body.get("image"):
        reason = " too (end-frame-only requests are refused)" if body.get("image_tail") else ""
        problems.append(("image", f"required: the start frame{reason}"))
    used = [next(f for f in group if body.get(f)) for group in GROUPS if _any(body, group)]
    for later in used[1:]:
        problems.append((later, f"cannot be combined with {used[0]}: use one of {GROUP_NAMES}"))
    return problems


def _any(body: Mapping[str, Any], group: tuple[str, ...]) -> bool:
    return any(body.get(name) for name in group)


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
