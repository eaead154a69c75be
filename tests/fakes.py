"""Function-backed fakes passed in through constructors (no patching of import paths)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from btkit.domain.model import MINUTE_MS, Candle
from btkit.engine.intervals import interval_ms
from btkit.market.arrays import CandleArrays, aggregate

T0 = 1_700_000_000_000 - 1_700_000_000_000 % (60 * MINUTE_MS)  # an hour boundary


def minute(n: int) -> int:
    return T0 + n * MINUTE_MS


def flat_candle(n: int, price: float, volume: float = 1.0) -> Candle:
    """A candle at minute n whose typical price is exactly `price`."""
    return Candle(minute(n), price, price, price, price, volume)


class ListExchange:
    """An exchange over a fixed list of 1m candles; `fail` makes fetches raise."""

    name = "fake"

    def __init__(
        self, candles: Sequence[Candle], fail: Callable[[], Exception | None] = lambda: None
    ):
        self.candles = sorted(candles, key=lambda c: c.timestamp)
        self.fail = fail
        self.fetches = 0

    async def check_symbols(self, symbols: Sequence[str]) -> list[str]:
        return list(symbols)

    async def fetch_candles(
        self, symbol: str, interval: str, since_ms: int, limit: int
    ) -> list[Candle]:
        self.fetches += 1
        error = self.fail()
        if error is not None:
            raise error
        step = interval_ms(interval)
        rows = self.candles
        if step != MINUTE_MS:
            fields = ("timestamp", "open", "high", "low", "close", "volume")
            arrays = CandleArrays(*[np.array([getattr(c, f) for c in rows]) for f in fields])
            rows = aggregate(arrays, step).to_candles()
        return [c for c in rows if c.timestamp >= since_ms][:limit]

    async def close(self) -> None:
        pass
