"""The image2video parameters a manifest row may set (kling-api.md §3, §17 E21), as pydantic
models.

`JobParams` checks each field on its own: types, enums, ranges, the CometAPI text limits of
§16 (prompt ≤ 500 characters, negative_prompt ≤ 200), list lengths (voice_list ≤ 2,
element_list ≤ 3, multi_prompt ≤ 6 shots of ≤ 512 characters) and text that is valid Unicode.
Enums are the union over the catalogue (mode std/pro/4k, duration 3..15 s); what one model
takes is `capabilities`, rules that relate fields are `relations`, images are `validate`.
Image fields hold the source as written (path, URL or base64); `validate` turns them into refs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

NOT_UNICODE = "contains a lone surrogate (\\ud800-\\udfff): not valid Unicode text"
PROMPT_MAX = 500
NEGATIVE_PROMPT_MAX = 200
MAX_DYNAMIC_MASKS = 6
MAX_VOICES = 2
MAX_ELEMENTS = 3
MAX_SHOTS = 6
SHOT_PROMPT_MAX = 512
DURATIONS = (3, 15)  # whole seconds, the widest range of any model (kling-v3)
TRAJECTORY_POINTS = (2, 77)
CAMERA_AXES = ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")

ModelName = Literal[
    "kling-v1",
    "kling-v1-5",
    "kling-v1-6",
    "kling-v2-master",
    "kling-v2-1",
    "kling-v2-1-master",
    "kling-v2-5-turbo",
    "kling-v2-6",
    "kling-v3",
]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)
Mode = Literal["std", "pro", "4k"]
MODES: tuple[str, ...] = get_args(Mode)
Sound = Literal["on", "off"]
ShotType = Literal["customize", "intelligence"]
CameraType = Literal["simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward"]


def _seconds(value: Any, low: int, high: int) -> str:
    """Whole seconds from `low` to `high`, written as a number or a string, as the string the
    API wants."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f'whole seconds from {low} to {high}, e.g. 5 or "5"')
    return str(value)


def _duration(value: Any) -> str:
    return _seconds(value, *DURATIONS)


def _shot_duration(value: Any) -> str:
    return _seconds(value, 1, DURATIONS[1])


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number between 0 and 1")
    return value


def _http_url(value: Any) -> Any:
    if isinstance(value, str) and (
        not value.startswith(("http://", "https://")) or not urlsplit(value).netloc
    ):
        raise ValueError("an http:// or https:// URL")
    return value


def encodable(value: Any) -> bool:
    """Whether every text in a JSON-like value can be sent as UTF-8 (no lone surrogate such as
    \\ud800, which YAML escapes and JSON cells can write)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, Mapping):
        return all(encodable(k) and encodable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(encodable(v) for v in value)
    return True


def _seconds_schema(low: int, high: int) -> dict[str, Any]:
    numbers = "|".join(str(n) for n in range(low, high + 1))
    return {
        "anyOf": [
            {"type": "integer", "minimum": low, "maximum": high},
            {"type": "string", "pattern": f"^\\s*0*({numbers})\\s*$"},
        ]
    }


Duration = Annotated[
    str, BeforeValidator(_duration), WithJsonSchema(_seconds_schema(*DURATIONS), mode="validation")
]
ShotDuration = Annotated[
    str,
    BeforeValidator(_shot_duration),
    WithJsonSchema(_seconds_schema(1, DURATIONS[1]), mode="validation"),
]
CfgScale = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), BeforeValidator(_not_bool)]
HttpUrl = Annotated[str, BeforeValidator(_http_url)]
ImageSource = Annotated[
    str,
    Field(
        min_length=1,
        description="A path relative to the manifest's folder, an http(s) URL, or base64 "
        "(raw, or a data:image/...;base64, URI).",
    ),
]
Axis = Annotated[float, Field(ge=-10, le=10, allow_inf_nan=False)]


class Strict(BaseModel):
    # Validators are built when a row is first checked, not at import: a resume of an
    # unchanged manifest checks none.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class CameraConfig(Strict):
    """Camera movement of type `simple`: exactly one axis is non-zero."""

    horizontal: Axis = 0.0
    vertical: Axis = 0.0
    pan: Axis = 0.0
    tilt: Axis = 0.0
    roll: Axis = 0.0
    zoom: Axis = 0.0

    @model_validator(mode="after")
    def _one_axis(self) -> CameraConfig:
        moving = [axis for axis in CAMERA_AXES if getattr(self, axis)]
        if len(moving) != 1:
            raise ValueError(f"exactly one of {', '.join(CAMERA_AXES)} must be non-zero")
        return self


class CameraControl(Strict):
    """A preset camera move, or `simple` with a `config`."""

    type: CameraType
    config: CameraConfig | None = None

    @model_validator(mode="after")
    def _config_for_simple(self) -> CameraControl:
        if self.type == "simple" and self.config is None:
            raise ValueError("type simple needs a config")
        if self.type != "simple" and self.config is not None:
            raise ValueError("config is only for type simple")
        return self


class TrajectoryPoint(Strict):
    """A pixel position in the image, origin at the bottom-left corner."""

    x: int = Field(ge=0)
    y: int = Field(ge=0)


class DynamicMask(Strict):
    """One motion-brush group: the area that moves, and the path it follows."""

    mask: ImageSource
    trajectories: list[TrajectoryPoint] = Field(
        min_length=TRAJECTORY_POINTS[0], max_length=TRAJECTORY_POINTS[1]
    )


class WatermarkInfo(Strict):
    enabled: bool


class Voice(Strict):
    """A voice the prompt speaks with, referenced there as `<<<voice_1>>>`, `<<<voice_2>>>`."""

    voice_id: str = Field(min_length=1)


class Element(Strict):
    """A reference element (a character or object made with Kling's element API)."""

    element_id: Annotated[int, Field(ge=0), BeforeValidator(_not_bool)]


class Shot(Strict):
    """One shot of a multi-shot video; `index` is its 1-based position (filled in if unset)."""

    index: int | None = Field(None, ge=1, le=MAX_SHOTS)
    prompt: str = Field(min_length=1, max_length=SHOT_PROMPT_MAX)
    duration: ShotDuration


class JobParams(Strict):
    """The provider body of one generation, minus external_task_id; None means unset."""

    model_name: ModelName | None = None
    image: ImageSource | None = None
    image_tail: ImageSource | None = None
    prompt: str | None = Field(None, max_length=PROMPT_MAX)
    negative_prompt: str | None = Field(None, max_length=NEGATIVE_PROMPT_MAX)
    cfg_scale: CfgScale | None = None
    mode: Mode | None = None
    duration: Duration | None = None
    static_mask: ImageSource | None = None
    dynamic_masks: list[DynamicMask] | None = Field(None, max_length=MAX_DYNAMIC_MASKS)
    camera_control: CameraControl | None = None
    callback_url: HttpUrl | None = None
    watermark_info: WatermarkInfo | None = None
    sound: Sound | None = None
    voice_list: list[Voice] | None = Field(None, min_length=1, max_length=MAX_VOICES)
    element_list: list[Element] | None = Field(None, min_length=1, max_length=MAX_ELEMENTS)
    multi_shot: bool | None = None
    shot_type: ShotType | None = None
    multi_prompt: list[Shot] | None = Field(None, min_length=1, max_length=MAX_SHOTS)

    @field_validator("multi_prompt")
    @classmethod
    def _shots_in_order(cls, shots: list[Shot] | None) -> list[Shot] | None:
        for position, shot in enumerate(shots or (), start=1):
            if shot.index is not None and shot.index != position:
                raise ValueError(
                    f"shot {position} has index {shot.index}: shots are numbered 1, 2..."
                )
        return shots

    def body(self) -> dict[str, Any]:
        """The set fields as JSON values: no None, durations strings, cfg_scale a float, every
        shot of multi_prompt with its index."""
        body = self.model_dump(exclude_none=True)
        if "multi_prompt" in body:
            body["multi_prompt"] = [
                {**shot, "index": position} for position, shot in enumerate(body["multi_prompt"], 1)
            ]
        return body


JOB_FIELDS = frozenset(JobParams.model_fields)
STRING_FIELDS = frozenset(
    {"model_name", "image", "image_tail", "prompt", "negative_prompt", "mode", "static_mask"}
    | {"callback_url", "sound", "shot_type"}
)
OBJECT_FIELDS = frozenset(
    {"dynamic_masks", "camera_control", "watermark_info", "voice_list", "element_list"}
    | {"multi_prompt"}
)


def error_messages(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """(field, message) for each error; the field is a dotted path (`camera_control.config`)."""
    found = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        message = str(error["msg"]).removeprefix("Value error, ")
        found.append((path or prefix, message))
    return found


def check_params(values: dict[str, Any]) -> JobParams | list[tuple[str, str]]:
    """The validated params, or every (field, message) that is wrong."""
    found = [(k, NOT_UNICODE) for k, v in values.items() if not encodable(v)]
    if found:
        values = {k: v for k, v in values.items() if encodable(v)}
    try:
        params = JobParams.model_validate(values)
    except ValidationError as exc:
        return found + error_messages(exc)
    return found or params
