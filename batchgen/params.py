"""The image2video parameters a manifest row may set (kling-api.md §3), as pydantic models.

`JobParams` checks each field on its own: types, enums, ranges and the CometAPI text limits of
§16 (prompt ≤ 500 characters, negative_prompt ≤ 200). Rules that relate fields (exclusive
groups, the model capability table, image contents) live in `validate` and `capabilities`.
Image fields hold the source as written (path, URL or base64); `validate` turns them into refs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

PROMPT_MAX = 500
NEGATIVE_PROMPT_MAX = 200
MAX_DYNAMIC_MASKS = 6
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
Mode = Literal["std", "pro"]
CameraType = Literal["simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward"]


def _duration(value: Any) -> Any:
    """Whole seconds, written as a number or a string, become the string the API wants."""
    if isinstance(value, bool):
        raise ValueError('whole seconds, e.g. 5 or "5"')
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    if isinstance(value, str) and value.strip().isdigit():
        return str(int(value.strip()))
    raise ValueError('whole seconds, e.g. 5 or "5"')


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


Duration = Annotated[str, BeforeValidator(_duration, json_schema_input_type=int | str)]
CfgScale = Annotated[float, Field(ge=0, le=1), BeforeValidator(_not_bool)]
HttpUrl = Annotated[str, BeforeValidator(_http_url)]
ImageSource = Annotated[
    str,
    Field(
        min_length=1,
        description="A path relative to the manifest's folder, an http(s) URL, or base64 "
        "(raw, or a data:image/...;base64, URI).",
    ),
]
Axis = Annotated[float, Field(ge=-10, le=10)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    def body(self) -> dict[str, Any]:
        """The set fields as JSON values: no None, duration a string, cfg_scale a float."""
        return self.model_dump(exclude_none=True)


JOB_FIELDS = frozenset(JobParams.model_fields)
STRING_FIELDS = frozenset(
    {"model_name", "image", "image_tail", "prompt", "negative_prompt", "mode", "static_mask"}
    | {"callback_url"}
)
OBJECT_FIELDS = frozenset({"dynamic_masks", "camera_control", "watermark_info"})


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
    try:
        return JobParams.model_validate(values)
    except ValidationError as exc:
        return error_messages(exc)
