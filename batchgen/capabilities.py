"""What each model accepts for image2video (kling-api.md §3a), and the check against it. Pure.

Where the sources disagree (kling-api.md §15) this table takes these sides:

- cfg_scale is refused for kling-v2 and every later model, v3 included (the official page says
  "not supported by kling-v2.x"; nothing says v3 brought it back). v1, v1-5, v1-6 take it.
- kling-v2-master and kling-v2-1-master take no `mode` (changelog 05/13/2025); a row that sets
  one is refused rather than silently changed (set `mode: null` to clear a default).
- Motion brush (static_mask / dynamic_masks) follows the newer capability map: v1 std/pro 5 s and
  v1-5 pro 5 s (the 2024-11-29 changelog said v1 only) (§15.4).
- kling-v2-1 takes an end frame (image_tail) in pro 5 s and 10 s, as the official map says
  since 2025-09-05; one relay says otherwise (§15.5).
- camera_control on image2video: kling-v1-5 pro 5 s, type `simple` only. kling-v1 lists camera
  control for text2video only, so it is refused here.
- Tail-only requests (image_tail without image) are refused elsewhere (`validate`): sources
  disagree (§15.3) and paying for a refused request is worse than asking for a start frame.
- kling-v3 durations are 3..15 s in both modes, end frame allowed; other models take 5 or 10.

Unset fields take the API's defaults: model kling-v1, mode std (for models that have modes),
duration "5".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL = "kling-v1"
DEFAULT_MODE = "std"
DEFAULT_DURATION = "5"
NO_MODE = "-"
LEGACY = ("5", "10")
V3_DURATIONS = tuple(str(n) for n in range(3, 16))

Combos = frozenset[tuple[str, str]]


def combos(modes: Iterable[str], durations: Iterable[str]) -> Combos:
    """Every (mode, duration) pair of the two lists."""
    durations = tuple(durations)
    return frozenset((mode, duration) for mode in modes for duration in durations)


NONE: Combos = frozenset()


@dataclass(frozen=True, slots=True)
class Capability:
    """One model's options: `modes` is empty for models that take no mode; each feature
    lists the (mode, duration) pairs it works with (empty: unsupported)."""

    modes: tuple[str, ...]
    durations: tuple[str, ...]
    cfg_scale: bool = False
    image_tail: Combos = NONE
    motion_brush: Combos = NONE
    camera_control: Combos = NONE
    camera_types: tuple[str, ...] = ()


STD_PRO = ("std", "pro")
PRO_BOTH = combos(["pro"], LEGACY)

CAPABILITIES: Mapping[str, Capability] = {
    "kling-v1": Capability(
        STD_PRO,
        LEGACY,
        cfg_scale=True,
        image_tail=combos(STD_PRO, ["5"]),
        motion_brush=combos(STD_PRO, ["5"]),
    ),
    "kling-v1-5": Capability(
        STD_PRO,
        LEGACY,
        cfg_scale=True,
        image_tail=PRO_BOTH,
        motion_brush=combos(["pro"], ["5"]),
        camera_control=combos(["pro"], ["5"]),
        camera_types=("simple",),
    ),
    "kling-v1-6": Capability(STD_PRO, LEGACY, cfg_scale=True, image_tail=PRO_BOTH),
    "kling-v2-master": Capability((), LEGACY),
    "kling-v2-1": Capability(STD_PRO, LEGACY, image_tail=PRO_BOTH),
    "kling-v2-1-master": Capability((), LEGACY),
    "kling-v2-5-turbo": Capability(STD_PRO, LEGACY, image_tail=PRO_BOTH),
    "kling-v2-6": Capability(STD_PRO, LEGACY, image_tail=PRO_BOTH),
    "kling-v3": Capability(STD_PRO, V3_DURATIONS, image_tail=combos(STD_PRO, V3_DURATIONS)),
}

FEATURES = {  # request field -> (Capability attribute, what users call it)
    "image_tail": ("image_tail", "an end frame (image_tail)"),
    "static_mask": ("motion_brush", "motion brush (static_mask)"),
    "dynamic_masks": ("motion_brush", "motion brush (dynamic_masks)"),
    "camera_control": ("camera_control", "camera_control"),
}


def takes_mode(model: str) -> bool:
    """Whether the model has std/pro modes (unknown models are assumed to)."""
    capability = CAPABILITIES.get(model)
    return capability is None or bool(capability.modes)


def effective(request: Mapping[str, Any]) -> tuple[str, str, str]:
    """(model, mode, duration) the provider will use, defaults applied; mode is "-" for
    models that take none."""
    model = str(request.get("model_name") or DEFAULT_MODEL)
    mode = str(request.get("mode") or DEFAULT_MODE) if takes_mode(model) else NO_MODE
    return model, mode, str(request.get("duration") or DEFAULT_DURATION)


def capability_problems(
    request: Mapping[str, Any], judge_timing: bool = True
) -> list[tuple[str, str]]:
    """(field, message) for each field, mode or duration the request's model does not take.
    Without `judge_timing` (the mode or duration given was unusable) nothing that depends
    on the mode and duration is judged."""
    model, mode, duration = effective(request)
    capability = CAPABILITIES.get(model)
    if capability is None:
        return [("model_name", f"unknown model {model!r}")]
    found = _mode_and_duration(request, model, capability, duration) if judge_timing else []
    if request.get("cfg_scale") is not None and not capability.cfg_scale:
        found.append(("cfg_scale", f"not supported by {model} (kling-v2 and later)"))
    for name in FEATURES:
        if request.get(name):
            found += _feature(request, name, model, capability, (mode, duration), judge_timing)
    return found


def _mode_and_duration(
    request: Mapping[str, Any], model: str, capability: Capability, duration: str
) -> list[tuple[str, str]]:
    found = []
    if request.get("mode") and not capability.modes:
        found.append(("mode", f"{model} takes no mode (remove it, or set it to null)"))
    if duration not in capability.durations:
        allowed = _listing(capability.durations)
        found.append(("duration", f"{model} takes {allowed} seconds (got {duration!r})"))
    return found


def _feature(
    request: Mapping[str, Any],
    name: str,
    model: str,
    capability: Capability,
    combo: tuple[str, str],
    judge_timing: bool,
) -> list[tuple[str, str]]:
    attribute, label = FEATURES[name]
    allowed: Combos = getattr(capability, attribute)
    if not allowed:
        return [(name, f"{label} is not supported by {model}")]
    if judge_timing and combo not in allowed:
        pairs = ", ".join(f"{m} {d} s" for m, d in sorted(allowed, key=_combo_order))
        got = f"{combo[0]} {combo[1]} s"
        return [(name, f"{model} supports {label} only in {pairs} (got {got})")]
    if name == "camera_control" and capability.camera_types:
        kind = (request.get("camera_control") or {}).get("type")
        if kind not in capability.camera_types:
            types = _listing(capability.camera_types)
            return [(name, f"{model} takes camera_control type {types} only (got {kind!r})")]
    return []


def _combo_order(combo: tuple[str, str]) -> tuple[str, int]:
    return combo[0], int(combo[1])


def _listing(values: tuple[str, ...]) -> str:
    if len(values) > 4:
        return f"{values[0]} to {values[-1]}"
    return " or ".join(values)
