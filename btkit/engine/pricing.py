"""The monitoring price: VWAP of the last five finished minutes (SPEC §3)."""

from __future__ import annotations

from collections.abc import Sequence

from btkit.domain.model import Candle

VWAP_MINUTES = 5


def vwap(candles: Sequence[Candle]) -> float | None:
    """Volume-weighted typical price; mean close when there is no volume; None if empty."""
    if not candles:
        return None
    volume = 0.0
    weighted = 0.0
    for candle in candles:
        volume += candle.volume
        weighted += (candle.high + candle.low + candle.close) / 3 * candle.volume
    if volume > 0:
        return weighted / volume
    return sum(candle.close for candle in candles) / len(candles)
