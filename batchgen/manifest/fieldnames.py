"""Which keys a row may hold, and which ones look like a misspelt field. Pure.

A row's keys are job fields (`params.JOB_FIELDS`), control keys (id, repeat, matrix, images),
keys starting with `meta.`, and the user's own columns. A key that is not a known key is
refused when it

1. is a known alias (`model`, `cfg`, `first_frame`...), or a provider field batchgen does not
   send (`external_task_id`, `aspect_ratio`), or
2. equals a known key ignoring case and `_`/`-`/space (`Prompt`, `MODEL-NAME`), or
3. is one edit away from a known key of 4 characters or more, ignoring case: one character
   inserted or deleted, or two neighbours swapped (`promt`, `promtp`, `durations`, `mdoe`);
   or one character replaced, for keys of 5 characters or more (`prompr`; `mode` would
   otherwise refuse the words `code`, `node` and `more`).

Keys starting with `meta.` are never refused: that is the way to keep such a column.

Rules 2 and 3 are regular expressions (`MISSPELT_PATTERNS`, one per known key) written in the
subset of regex syntax that Python and JSON Schema (ECMA-262) read alike. `misspelt` and the
JSON Schema (`schema.py`) use the very same patterns, so `validate` and an editor agree on
which keys are refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache, lru_cache

from batchgen.manifest.params import JOB_FIELDS

META_PREFIX = "meta."
CONTROL_KEYS = frozenset({"id", "repeat", "matrix", "images"})
KNOWN_KEYS = tuple(sorted(JOB_FIELDS | CONTROL_KEYS))
ONE_EDIT_MIN = 4
REPLACE_MIN = 5  # `mode` -> `code`, `node`, `more` are words: only longer keys
ALIASES: Mapping[str, str] = {
    "model": "model_name",
    "cfg": "cfg_scale",
    "negative": "negative_prompt",
    "image_url": "image",
    "end_image": "image_tail",
    "tail_image": "image_tail",
    "last_frame": "image_tail",
    "first_frame": "image",
    "audio": "sound",
    "voices": "voice_list",
    "elements": "element_list",
    "shots": "multi_prompt",
}
NOT_SENT: Mapping[str, str] = {
    "external_task_id": "batchgen sets external_task_id itself, from the job id",
    "aspect_ratio": "text2video only; image2video follows the image",
}
_SEPARATORS = "[-_ ]"


def _letter(char: str) -> str:
    if char in "_- ":
        return _SEPARATORS
    if char.isalpha():
        return f"[{char.lower()}{char.upper()}]"
    return re.escape(char)


def _variants(key: str) -> list[str]:
    """Regex alternatives for `key` in any case, and its one-edit variants if long enough."""
    letters = [_letter(char) for char in key]
    found = ["".join(letters)]
    if len(key) < ONE_EDIT_MIN:
        return found
    gap = ".?" if len(key) >= REPLACE_MIN else ""  # a character replaced or deleted
    for i in range(len(letters) + 1):
        found.append("".join([*letters[:i], ".", *letters[i:]]))
        if i < len(letters):
            found.append("".join([*letters[:i], gap, *letters[i + 1 :]]))
        if i + 1 < len(letters):
            found.append("".join([*letters[:i], letters[i + 1], letters[i], *letters[i + 2 :]]))
    return found


def _pattern(key: str) -> str:
    known = "|".join(re.escape(name) for name in KNOWN_KEYS)
    meta = re.escape(META_PREFIX)
    return f"^(?!{meta})(?!(?:{known})$)(?:{'|'.join(_variants(key))})$"


MISSPELT_PATTERNS: Mapping[str, str] = {key: _pattern(key) for key in KNOWN_KEYS}


@cache
def _compiled() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The patterns compiled, when a key is first looked at: compiling them all costs a
    command's start some 40 ms, and a resume of an unchanged manifest looks at none."""
    return tuple((key, re.compile(pattern)) for key, pattern in MISSPELT_PATTERNS.items())


@lru_cache(maxsize=4096)
def misspelt(key: str) -> str | None:
    """The known key `key` was probably meant to be, or None for a known key, a `meta.` key or
    a genuine user column. An exact case-insensitive match wins over a one-edit one."""
    if key in ALIASES:
        return ALIASES[key]
    matches = [known for known, pattern in _compiled() if pattern.search(key)]
    normal = re.sub(_SEPARATORS, "_", key.lower())
    return normal if normal in matches else (matches[0] if matches else None)


def key_problem(key: str) -> str | None:
    """Why `key` cannot be a user column, or None if it can."""
    keep = f"(name it '{META_PREFIX}{key}' to keep it as metadata)"
    if key in NOT_SENT:
        return f"{NOT_SENT[key]} {keep}"
    guess = misspelt(key)
    if guess is None:
        return None
    return f"unknown field; did you mean {guess!r}? {keep}"
