"""Rules that relate the fields of one request, whatever its model. Pure.

- `image` (the start frame) is required, also with image_tail (kling-api.md §15.3, E23).
- One group at most of: end frame (image_tail), motion brush (static_mask, dynamic_masks),
  camera_control (§3).
- voice_list needs `sound: on`, cannot go with element_list, and the prompt speaks with each
  voice: `<<<voice_1>>>`, `<<<voice_2>>>` (E21); a reference to a voice not in the list, or a
  voice the prompt never uses, is refused (it would be billed at the voice rate for nothing).
- Multi-shot (E21): `multi_shot: true` needs `shot_type`; `customize` needs `multi_prompt`,
  whose shot durations sum to the video's duration; `intelligence` splits the `prompt` itself,
  so it needs one and takes no multi_prompt. `shot_type` or `multi_prompt` without
  `multi_shot: true` is refused rather than silently ignored.

Each rule names the field to fix. Fields in `broken` (their value was unusable) are not judged,
nor anything that depends on them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from batchgen.manifest.capabilities import DEFAULT_DURATION

Messages = list[tuple[str, str]]
GROUPS = (
    ("image_tail",),
    ("static_mask", "dynamic_masks"),
    ("camera_control",),
)
GROUP_NAMES = "an end frame (image_tail), motion brush (static_mask/dynamic_masks), camera_control"
VOICE_REF = re.compile(r"<<<voice_(\d+)>>>")


def relation_problems(body: Mapping[str, Any], broken: frozenset[str] = frozenset()) -> Messages:
    """Every rule of the module docstring that `body` breaks."""
    return (
        frame_problems(body, broken)
        + voice_problems(body, broken)
        + multi_shot_problems(body, broken)
    )


def frame_problems(body: Mapping[str, Any], broken: frozenset[str] = frozenset()) -> Messages:
    """A start frame is required; at most one group of extras is allowed."""
    problems: Messages = []
    if not body.get("image") and "image" not in broken:
        reason = " too (end-frame-only requests are refused)" if body.get("image_tail") else ""
        problems.append(("image", f"required: the start frame{reason}"))
    present = {k: v for k, v in body.items() if k not in broken} if broken else body
    used = [name for group in GROUPS for name in (_first(present, group),) if name]
    for later in used[1:]:
        problems.append((later, f"cannot be combined with {used[0]}: use one of {GROUP_NAMES}"))
    return problems


def _first(body: Mapping[str, Any], group: tuple[str, ...]) -> str | None:
    """The first field of `group` that `body` sets, if any."""
    return next((name for name in group if body.get(name)), None)


def voice_problems(body: Mapping[str, Any], broken: frozenset[str] = frozenset()) -> Messages:
    voices = body.get("voice_list")
    if not voices or "voice_list" in broken:
        return []
    problems: Messages = []
    if body.get("sound") != "on" and "sound" not in broken:
        problems.append(("sound", "must be on with voice_list (voices are spoken audio)"))
    if body.get("element_list"):
        problems.append(("element_list", "cannot be combined with voice_list: use one of them"))
    if not broken & {"prompt", "multi_prompt"}:
        problems += _voice_references(body, len(voices))
    return problems


def _voice_references(body: Mapping[str, Any], count: int) -> Messages:
    texts = [str(body.get("prompt") or "")]
    texts += [shot["prompt"] for shot in body.get("multi_prompt") or ()]
    used = {int(n) for text in texts for n in VOICE_REF.findall(text)}
    where = "multi_prompt" if body.get("multi_prompt") else "prompt"
    problems: Messages = []
    for number in sorted(used - set(range(1, count + 1))):
        problems.append((where, f"<<<voice_{number}>>> but voice_list has {count} voice(s)"))
    for number in range(1, count + 1):
        if number not in used:
            message = f"never speaks with voice {number} of voice_list: write <<<voice_{number}>>>"
            problems.append((where, message))
    return problems


def multi_shot_problems(body: Mapping[str, Any], broken: frozenset[str] = frozenset()) -> Messages:
    if "multi_shot" in broken and body.get("multi_shot"):
        return []
    if not body.get("multi_shot"):
        return [
            (name, "needs multi_shot: true")
            for name in ("shot_type", "multi_prompt")
            if body.get(name) and "multi_shot" not in broken
        ]
    kind = body.get("shot_type")
    if kind is None:
        return [] if "shot_type" in broken else [("shot_type", "required with multi_shot: true")]
    if kind == "intelligence":
        return _intelligence(body, broken)
    return _customize(body, broken)


def _intelligence(body: Mapping[str, Any], broken: frozenset[str]) -> Messages:
    problems: Messages = []
    if body.get("multi_prompt"):
        problems.append(
            ("multi_prompt", "only with shot_type customize (intelligence splits prompt)")
        )
    if not body.get("prompt") and "prompt" not in broken:
        problems.append(("prompt", "required with shot_type intelligence (it is split into shots)"))
    return problems


def _customize(body: Mapping[str, Any], broken: frozenset[str]) -> Messages:
    shots = body.get("multi_prompt")
    if not shots:
        return (
            []
            if "multi_prompt" in broken
            else [("multi_prompt", "required with shot_type customize")]
        )
    if "duration" in broken:
        return []
    total = int(body.get("duration") or DEFAULT_DURATION)
    summed = sum(int(shot["duration"]) for shot in shots)
    if summed == total:
        return []
    parts = " + ".join(str(shot["duration"]) for shot in shots)
    return [("multi_prompt", f"shot durations {parts} = {summed} s, not the duration {total} s")]
