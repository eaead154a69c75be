"""Signal validation (SPEC §3.3): every broken rule is named, not just the first."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from btkit.domain import Signal

_PRICE_FIELDS = ("price_open", "price_take_profit", "price_stop_loss")


def coerce_signal(raw: object) -> Signal | list[str]:
    """Accept a `Signal` or a mapping with its fields; anything else is a problem list."""
    if isinstance(raw, Signal):
        return raw
    if isinstance(raw, Mapping):
        try:
            return Signal(**dict(raw))
        except TypeError as exc:
            return [f"signal mapping does not match Signal's fields: {exc}"]
    return [f"get_signal must return a btkit.Signal or None, not {type(raw).__name__}"]


def _is_positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def validate_signal(signal: Signal, timestamp: int) -> list[str]:
    """Return the broken rules; an empty list means the signal may open."""
    problems: list[str] = []
    if signal.position not in ("long", "short"):
        problems.append(f"position must be 'long' or 'short', not {signal.position!r}")
    for field in _PRICE_FIELDS:
        value = getattr(signal, field)
        if not _is_positive_number(value):
            problems.append(f"{field} must be a finite number > 0, got {value!r}")
    if not _is_positive_number(signal.minute_estimated_time):
        problems.append(
            f"minute_estimated_time must be a finite number > 0, "
            f"got {signal.minute_estimated_time!r}"
        )
    if timestamp <= 0:
        problems.append(f"timestamp must be > 0, got {timestamp}")
    if not problems:
        problems.extend(_ordering_problems(signal))
    return problems


def _ordering_problems(signal: Signal) -> list[str]:
    tp, entry, sl = signal.price_take_profit, signal.price_open, signal.price_stop_loss
    if signal.position == "long" and not tp > entry > sl:
        return [f"long needs take-profit > open > stop-loss, got {tp} / {entry} / {sl}"]
    if signal.position == "short" and not tp < entry < sl:
        return [f"short needs take-profit < open < stop-loss, got {tp} / {entry} / {sl}"]
    return []
