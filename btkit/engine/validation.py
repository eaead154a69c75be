"""Signal validation (SPEC §3.3): every broken rule is named, not just the first."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from btkit.domain.model import Signal

_PRICE_FIELDS = ("price_open", "price_take_profit", "price_stop_loss")

MAX_NOTE_BYTES = 4096
"""A note is a label, not a payload: every event copies it into the ledger."""


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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_positive_number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value) and value > 0


def validate_signal(signal: Signal, timestamp: int) -> list[str]:
    """Return the broken rules; an empty list means the signal may open."""
    problems: list[str] = []
    if signal.position not in ("long", "short"):
        problems.append(f"position must be 'long' or 'short', not {signal.position!r}")
    for field in _PRICE_FIELDS:
        value = getattr(signal, field)
        if not _is_positive_number(value):
            problems.append(f"{field} must be a finite number > 0, got {value!r}")
    lifetime = signal.minute_estimated_time
    if not (_is_number(lifetime) and lifetime > 0):  # NaN fails too; +inf: until TP or SL
        problems.append(
            f"minute_estimated_time must be a number > 0 (math.inf: until TP or SL), "
            f"got {lifetime!r}"
        )
    if timestamp <= 0:
        problems.append(f"timestamp must be > 0, got {timestamp}")
    problems.extend(_ordering_problems(signal))
    problems.extend(_note_problems(signal.note))
    if signal.stake is not None and not _is_positive_number(signal.stake):
        problems.append(f"stake must be a finite number > 0 (or None), got {signal.stake!r}")
    return problems


def _ordering_problems(signal: Signal) -> list[str]:
    """TP/open/SL order, judged on the prices that are numbers at all.

    A negative take-profit is both "not > 0" and, for a long, below the open:
    both are named. NaN and non-numbers take no part (they compare false).
    """
    tp, entry, sl = signal.price_take_profit, signal.price_open, signal.price_stop_loss
    if signal.position == "long":
        pairs, rule = [(tp, entry), (entry, sl), (tp, sl)], "take-profit > open > stop-loss"
    elif signal.position == "short":
        pairs, rule = [(entry, tp), (sl, entry), (sl, tp)], "take-profit < open < stop-loss"
    else:
        return []
    usable = [(a, b) for a, b in pairs if _is_number(a) and _is_number(b) and a == a and b == b]
    if any(not a > b for a, b in usable):
        return [f"{signal.position} needs {rule}, got {tp!r} / {entry!r} / {sl!r}"]
    return []


def _note_problems(note: object) -> list[str]:
    if not isinstance(note, str):
        return [f"note must be a string, not {type(note).__name__}"]
    size = len(note.encode("utf-8", "surrogatepass"))
    if size > MAX_NOTE_BYTES:
        return [
            f"note is {size} bytes, more than the {MAX_NOTE_BYTES} allowed "
            "(keep it a short label; log bulky data yourself)"
        ]
    return []
