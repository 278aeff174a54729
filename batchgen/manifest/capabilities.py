"""What each model accepts for image2video (kling-api.md §3a, §17 E21–E23), and the check
against it. Pure.

Where the sources disagree or are thin (kling-api.md §15, §17) this table takes these sides:

- cfg_scale is refused for kling-v2 and every later model, v3 included (E21: "cfg_scale only
  kling-v1.x"). v1, v1-5, v1-6 take it.
- kling-v2-master and kling-v2-1-master take no `mode` (changelog 05/13/2025); a row that sets
  one is refused rather than silently changed (set `mode: null` to clear a default).
- `mode: 4k` is kling-v3 only (E22, 2026-04-23).
- Motion brush (static_mask / dynamic_masks) follows the newer capability map: v1 std/pro 5 s and
  v1-5 pro 5 s (the 2024-11-29 changelog said v1 only) (§15.4).
- kling-v2-1 takes an end frame (image_tail) in pro 5 s and 10 s, as the official map says
  since 2025-09-05; one relay says otherwise (§15.5).
- camera_control on image2video: kling-v1-5 pro 5 s, type `simple` only. kling-v1 lists camera
  control for text2video only, so it is refused here.
- Tail-only requests (image_tail without image) are refused (`relations`): E23 says end-frame
  only is unsupported on every current model, and sources disagree for older ones (§15.3).
- `sound` (E21, E23, §3a): kling-v2-6 and kling-v3 take the field. On kling-v2-6, `sound: on` is
  pro only and not with an end frame (E23: "v2.6 first/last frame only 1080p silent"); older
  models take no `sound` at all, not even `off`. kling-v3 takes sound in every mode (E24
  prices audio for std, pro and 4K), with an end frame too (nothing says otherwise).
- `voice_list` (E21: v2.6 and later): kling-v2-6 pro only (the v2.6 i2v table lists voice
  control for pro only; it needs sound, which std lacks), kling-v3 in every mode.
- `element_list` and multi-shot (`multi_shot`, `shot_type`, `multi_prompt`) are kling-v3 only
  (E21, E22); with an end frame allowed (E22, 2026-05-07 for multi-shot; nothing says an element
  list cannot take one).
- kling-v3 durations are 3..15 s in every mode; other models take 5 or 10.

Unset fields take the API's defaults: model kling-v1, mode std (for models that have modes),
duration "5", sound off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from batchgen.jobs import DEFAULT_MODEL

DEFAULT_MODE = "std"
DEFAULT_DURATION = "5"
NO_MODE = "-"
LEGACY = ("5", "10")
V3_DURATIONS = tuple(str(n) for n in range(3, 16))

Combos = frozenset[tuple[str, str]]
Messages = list[tuple[str, str]]


def combos(modes: Iterable[str], durations: Iterable[str]) -> Combos:
    """Every (mode, duration) pair of the two lists."""
    durations = tuple(durations)
    return frozenset((mode, duration) for mode in modes for duration in durations)


NONE: Combos = frozenset()


@dataclass(frozen=True, slots=True)
class Capability:
    """One model's options: `modes` is empty for models that take no mode; each feature
    lists the (mode, duration) pairs it works with (empty: unsupported). A model takes the
    `sound` field (on or off) when `sound` is not empty; `sound: on` only in those pairs."""

    modes: tuple[str, ...]
    durations: tuple[str, ...]
    cfg_scale: bool = False
    image_tail: Combos = NONE
    motion_brush: Combos = NONE
    camera_control: Combos = NONE
    camera_types: tuple[str, ...] = ()
    sound: Combos = NONE
    sound_with_image_tail: bool = False
    voice_list: Combos = NONE
    element_list: Combos = NONE
    multi_shot: Combos = NONE


STD_PRO = ("std", "pro")
V3_MODES = ("std", "pro", "4k")
PRO_BOTH = combos(["pro"], LEGACY)
V3_ALL = combos(V3_MODES, V3_DURATIONS)

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
    "kling-v2-6": Capability(
        STD_PRO, LEGACY, image_tail=PRO_BOTH, sound=PRO_BOTH, voice_list=PRO_BOTH
    ),
    "kling-v3": Capability(
        V3_MODES,
        V3_DURATIONS,
        image_tail=V3_ALL,
        sound=V3_ALL,
        sound_with_image_tail=True,
        voice_list=V3_ALL,
        element_list=V3_ALL,
        multi_shot=V3_ALL,
    ),
}

FEATURES: Mapping[str, tuple[tuple[str, ...], str]] = {
    # Capability attribute -> (request fields, first present is named; what users call it)
    "image_tail": (("image_tail",), "an end frame (image_tail)"),
    "motion_brush": (("static_mask", "dynamic_masks"), "motion brush"),
    "camera_control": (("camera_control",), "camera_control"),
    "voice_list": (("voice_list",), "voice control (voice_list)"),
    "element_list": (("element_list",), "reference elements (element_list)"),
    "multi_shot": (("multi_shot", "shot_type", "multi_prompt"), "multi-shot"),
}
TIMED = frozenset({"mode", "duration"})
FEATURE_FIELDS = frozenset(name for fields, _ in FEATURES.values() for name in fields)


def takes_mode(model: str) -> bool:
    """Whether the model has modes (unknown models are assumed to)."""
    capability = CAPABILITIES.get(model)
    return capability is None or bool(capability.modes)


def effective(request: Mapping[str, Any]) -> tuple[str, str, str]:
    """(model, mode, duration) the provider will use, defaults applied; mode is "-" for
    models that take none."""
    model = str(request.get("model_name") or DEFAULT_MODEL)
    mode = str(request.get("mode") or DEFAULT_MODE) if takes_mode(model) else NO_MODE
    return model, mode, str(request.get("duration") or DEFAULT_DURATION)


def sound_on(request: Mapping[str, Any]) -> bool:
    return request.get("sound") == "on"


def capability_problems(
    request: Mapping[str, Any], broken: frozenset[str] = frozenset()
) -> Messages:
    """(field, message) for each field, mode or duration the request's model does not take.
    Fields in `broken` (their value was unusable) are not judged, nor anything that depends
    on them: with a broken model_name nothing is, with a broken mode or duration only what does
    not depend on the pair is."""
    if "model_name" in broken:
        return []
    model, mode, duration = effective(request)
    capability = CAPABILITIES.get(model)
    if capability is None:
        return [("model_name", f"unknown model {model!r}")]
    found = _mode_problems(request, model, capability, broken)
    found += _duration_problems(model, capability, duration, broken)
    timed = not (broken & TIMED) and not any(f in TIMED for f, _ in found)
    combo = (mode, duration) if timed else None
    if request.get("cfg_scale") is not None and not capability.cfg_scale:
        found.append(("cfg_scale", f"not supported by {model} (kling-v1.x only)"))
    found += _sound_problems(request, model, capability, combo)
    if FEATURE_FIELDS.isdisjoint(request):
        return found
    for attribute in FEATURES:
        found += _feature(request, attribute, model, capability, combo)
    return found


def _mode_problems(
    request: Mapping[str, Any], model: str, capability: Capability, broken: frozenset[str]
) -> Messages:
    mode = request.get("mode")
    if not mode or "mode" in broken:
        return []
    if not capability.modes:
        return [("mode", f"{model} takes no mode (remove it, or set it to null)")]
    if mode not in capability.modes:
        return [("mode", f"{model} takes mode {_listing(capability.modes)} (got {mode!r})")]
    return []


def _duration_problems(
    model: str, capability: Capability, duration: str, broken: frozenset[str]
) -> Messages:
    if "duration" in broken or duration in capability.durations:
        return []
    allowed = _listing(capability.durations)
    return [("duration", f"{model} takes {allowed} seconds (got {duration!r})")]


def _sound_problems(
    request: Mapping[str, Any], model: str, capability: Capability, combo: tuple[str, str] | None
) -> Messages:
    if request.get("sound") is None:
        return []
    if not capability.sound:
        return [("sound", f"{model} has no sound option (kling-v2-6 pro and kling-v3 do)")]
    if not sound_on(request):
        return []
    if combo is not None and combo not in capability.sound:
        return [
            ("sound", f"{model} makes sound only in {_pairs(capability.sound)} ({_got(combo)})")
        ]
    if request.get("image_tail") and not capability.sound_with_image_tail:
        return [
            ("sound", f"{model} makes end-frame videos silent only (sound: off, or no image_tail)")
        ]
    return []


def _feature(
    request: Mapping[str, Any],
    attribute: str,
    model: str,
    capability: Capability,
    combo: tuple[str, str] | None,
) -> Messages:
    fields, label = FEATURES[attribute]
    present = [name for name in fields if request.get(name)]
    if not present:
        return []
    name = present[0]
    allowed: Combos = getattr(capability, attribute)
    if not allowed:
        return [(name, f"{label} is not supported by {model}")]
    if combo is not None and combo not in allowed:
        return [(name, f"{model} supports {label} only in {_pairs(allowed)} ({_got(combo)})")]
    if name == "camera_control" and capability.camera_types:
        kind = (request.get("camera_control") or {}).get("type")
        if kind not in capability.camera_types:
            types = _listing(capability.camera_types)
            return [(name, f"{model} takes camera_control type {types} only (got {kind!r})")]
    return []


def _pairs(allowed: Combos) -> str:
    modes = sorted({mode for mode, _ in allowed}, key=_mode_order)
    parts = []
    for mode in modes:
        durations = tuple(sorted((d for m, d in allowed if m == mode), key=int))
        parts.append(f"{mode} {_listing(durations)} s")
    return ", ".join(parts)


def _mode_order(mode: str) -> int:
    return V3_MODES.index(mode) if mode in V3_MODES else len(V3_MODES)


def _got(combo: tuple[str, str]) -> str:
    return f"got {combo[0]} {combo[1]} s"


def _listing(values: tuple[str, ...]) -> str:
    if len(values) > 4:
        return f"{values[0]} to {values[-1]}"
    return " or ".join(values)
