"""Candle and signal intervals, in milliseconds."""

from __future__ import annotations

from btkit.domain.model import MINUTE_MS

CANDLE_INTERVALS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
}

SIGNAL_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h")


def interval_ms(interval: str) -> int:
    """Length of a candle interval; a ValueError lists the valid ones."""
    try:
        return CANDLE_INTERVALS[interval]
    except KeyError:
        valid = ", ".join(CANDLE_INTERVALS)
        raise ValueError(f"unknown interval {interval!r}; use one of {valid}") from None


def floor_to(timestamp_ms: int, step_ms: int) -> int:
    return timestamp_ms - timestamp_ms % step_ms
