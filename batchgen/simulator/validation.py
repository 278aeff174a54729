"""The rules a create body must meet (kling-api.md §3, limits as decided in §16). Pure.

`check_create_body` answers the first broken rule of the body's shape (types, enums, lengths,
required fields) as a message that starts with the field's name, which the simulator refuses
with code 1201. `image_problem` answers what is wrong with the pictures themselves (base64,
format, size, pixels, aspect ratio): Kling accepts such a create and fails the task (E17).
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable, Mapping
from typing import Any

from PIL import Image, UnidentifiedImageError

MODELS = (
    "kling-v1",
    "kling-v1-5",
    "kling-v1-6",
    "kling-v2-master",
    "kling-v2-1",
    "kling-v2-1-master",
    "kling-v2-5-turbo",
    "kling-v2-6",
    "kling-v3",
)
LEGACY_DURATIONS = ("5", "10")
V3_DURATIONS = tuple(str(n) for n in range(3, 16))
CAMERA_TYPES = ("simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward")
TEXT_LIMITS = (500, 200)  # CometAPI's prompt and negative_prompt lengths (Kling: 2500, 2500)
IMAGE_MAX_BYTES, IMAGE_MIN_SIDE, ASPECT_MAX = 10 * 1024 * 1024, 300, 2.5
IMAGE_FORMATS = ("JPEG", "PNG")
MAX_DYNAMIC_MASKS = 6


def check_create_body(body: Any, text_limits: tuple[int, int] = TEXT_LIMITS) -> str | None:
    """The first rule `body` breaks, as "field: what is wrong", or None if it is valid.
    `text_limits` are the provider's (prompt, negative_prompt) lengths."""
    if not isinstance(body, Mapping):
        return "body: must be a JSON object"
    problem = _texts(body, text_limits)
    if problem:
        return problem
    for rule in RULES:
        problem = rule(body)
        if problem:
            return problem
    return None


def image_bytes(value: str) -> bytes | None:
    """The bytes of a base64 image field, or None for a URL. Raises ValueError (with the
    reason) for a `data:` prefix or text that is not base64."""
    if value.startswith(("http://", "https://")):
        return None
    if value.startswith("data:"):
        raise ValueError("send raw base64, without a data: prefix")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None


def model_of(body: Mapping[str, Any]) -> str:
    """The model a body asks for; the legacy `model` field stands in for `model_name`."""
    return str(body.get("model_name") or body.get("model") or "kling-v1")


def _texts(body: Mapping[str, Any], limits: tuple[int, int]) -> str | None:
    for name, limit in zip(("prompt", "negative_prompt"), limits, strict=True):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            return f"{name}: must be a string"
        if value is not None and len(value) > limit:
            return f"{name}: at most {limit} characters (got {len(value)})"
    return None


def image_problem(body: Mapping[str, Any]) -> str | None:
    """What is wrong with the image fields of a body that passed `check_create_body`."""
    for name in ("image", "image_tail"):
        value = body.get(name)
        problem = _image_value_problem(value) if value else None
        if problem:
            return f"{name}: {problem}"
    return None


def _images(body: Mapping[str, Any]) -> str | None:
    if not body.get("image") and not body.get("image_tail"):
        return "image: one of image or image_tail is required"
    for name in ("image", "image_tail"):
        value = body.get(name)
        if value and not isinstance(value, str):
            return f"{name}: must be a URL or base64 string"
    return None


def _image_value_problem(value: str) -> str | None:
    try:
        data = image_bytes(value)
    except ValueError as exc:
        return str(exc)
    if data is None:
        return None
    if len(data) > IMAGE_MAX_BYTES:
        return f"at most {IMAGE_MAX_BYTES} bytes (got {len(data)})"
    return _picture_problem(data)


def _picture_problem(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as picture:
            kind, (width, height) = picture.format, picture.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError):
        return "not a readable image"
    if kind not in IMAGE_FORMATS:
        return f"must be JPG or PNG (got {kind})"
    if min(width, height) < IMAGE_MIN_SIDE:
        return f"width and height must be at least {IMAGE_MIN_SIDE} px (got {width}x{height})"
    if max(width, height) > ASPECT_MAX * min(width, height):
        return f"aspect ratio must be within 1:2.5 and 2.5:1 (got {width}x{height})"
    return None


def _masks(body: Mapping[str, Any]) -> str | None:
    mask = body.get("static_mask")
    if mask:
        if not isinstance(mask, str):
            return "static_mask: must be a URL or base64 string"
        try:
            image_bytes(mask)
        except ValueError as exc:
            return f"static_mask: {exc}"
    dynamic = body.get("dynamic_masks")
    if dynamic is not None and not (
        isinstance(dynamic, list) and len(dynamic) <= MAX_DYNAMIC_MASKS
    ):
        return f"dynamic_masks: a list of at most {MAX_DYNAMIC_MASKS} groups"
    return None


def _model(body: Mapping[str, Any]) -> str | None:
    model = model_of(body)
    if model not in MODELS:
        return f"model_name: unknown model {model!r}"
    modes = ("std", "pro", "4k") if model == "kling-v3" else ("std", "pro")
    if body.get("mode", "std") not in modes:
        return f"mode: {model} takes {', '.join(modes)}"
    if body.get("sound", "off") not in ("on", "off"):
        return "sound: must be on or off"
    return None


def _duration(body: Mapping[str, Any]) -> str | None:
    value = body.get("duration", "5")
    allowed = V3_DURATIONS if model_of(body) == "kling-v3" else LEGACY_DURATIONS
    if not isinstance(value, str):
        return 'duration: must be a string, e.g. "5"'
    if value not in allowed:
        return f"duration: {model_of(body)} takes {', '.join(allowed)} (got {value!r})"
    return None


def _cfg_scale(body: Mapping[str, Any]) -> str | None:
    value = body.get("cfg_scale", 0.5)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return "cfg_scale: a number between 0 and 1"
    return None


def _camera(body: Mapping[str, Any]) -> str | None:
    camera = body.get("camera_control")
    if camera is None:
        return None
    if not isinstance(camera, Mapping) or camera.get("type") not in CAMERA_TYPES:
        return f"camera_control: type is one of {', '.join(CAMERA_TYPES)}"
    return None


def _exclusive(body: Mapping[str, Any]) -> str | None:
    groups = {
        "image_tail": body.get("image_tail"),
        "static_mask/dynamic_masks": body.get("static_mask") or body.get("dynamic_masks"),
        "camera_control": body.get("camera_control"),
    }
    given = [name for name, value in groups.items() if value]
    if len(given) > 1:
        return f"{given[0]}: cannot be combined with {', '.join(given[1:])}"
    return None


def _external_id(body: Mapping[str, Any]) -> str | None:
    value = body.get("external_task_id")
    if value is not None and not isinstance(value, str):
        return "external_task_id: must be a string"
    return None


def _callback_url(body: Mapping[str, Any]) -> str | None:
    value = body.get("callback_url")
    if value is not None and not isinstance(value, str):
        return "callback_url: must be a string"
    return None


RULES: tuple[Callable[[Mapping[str, Any]], str | None], ...] = (
    _images,
    _masks,
    _model,
    _duration,
    _cfg_scale,
    _camera,
    _exclusive,
    _external_id,
    _callback_url,
)
