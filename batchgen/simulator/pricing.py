"""Units a successful generation is charged (`final_unit_deduction`), after the official price
table (kling-api.md §10): the price of 5 s, scaled to the requested duration. Pure."""

from __future__ import annotations

PER_5_SECONDS = {  # model: (std, pro)
    "kling-v1": (1.0, 3.5),
    "kling-v1-5": (2.0, 3.5),
    "kling-v1-6": (2.0, 3.5),
    "kling-v2-master": (10.0, 10.0),
    "kling-v2-1": (2.0, 3.5),
    "kling-v2-1-master": (10.0, 10.0),
    "kling-v2-5-turbo": (1.5, 2.5),
    "kling-v2-6": (1.5, 2.5),
    "kling-v3": (3.0, 6.0),
}


def units_charged(model: str, mode: str, duration: str) -> str:
    """The charge as Kling writes it: a decimal string, e.g. "3.5"."""
    std, pro = PER_5_SECONDS.get(model, (1.0, 3.5))
    units = (pro if mode == "pro" else std) * int(duration) / 5
    return f"{units:g}"
