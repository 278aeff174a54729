"""Units a successful generation is charged (`final_unit_deduction`), after the official price
tables (kling-api.md §10 per clip, §17 E24 per second). Pure."""

from __future__ import annotations

PER_5_SECONDS = {  # model: (std, pro), older models billed per clip (§10)
    "kling-v1": (1.0, 3.5),
    "kling-v1-5": (2.0, 3.5),
    "kling-v1-6": (2.0, 3.5),
    "kling-v2-master": (10.0, 10.0),
    "kling-v2-1": (2.0, 3.5),
    "kling-v2-1-master": (10.0, 10.0),
}
PER_SECOND = {  # (model, mode, sound): units a second (E24)
    ("kling-v2-5-turbo", "std", "off"): 0.3,
    ("kling-v2-5-turbo", "pro", "off"): 0.5,
    ("kling-v2-6", "std", "off"): 0.3,
    ("kling-v2-6", "pro", "off"): 0.5,
    ("kling-v2-6", "pro", "on"): 1.0,
    ("kling-v3", "std", "off"): 0.6,
    ("kling-v3", "pro", "off"): 0.8,
    ("kling-v3", "4k", "off"): 3.0,
    ("kling-v3", "std", "on"): 0.9,
    ("kling-v3", "pro", "on"): 1.2,
    ("kling-v3", "4k", "on"): 3.0,
}


def units_charged(model: str, mode: str, duration: str, sound: str = "off") -> str:
    """The charge as Kling writes it: a decimal string, e.g. "3.5"."""
    rate = PER_SECOND.get((model, mode, sound))
    if rate is not None:
        units = rate * int(duration)
    else:
        std, pro = PER_5_SECONDS.get(model, (1.0, 3.5))
        units = (pro if mode == "pro" else std) * int(duration) / 5
    return f"{units:g}"
