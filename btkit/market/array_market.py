"""MarketData over candles held in memory, for backtests.

The §3 price (VWAP of the five finished minutes before a tick) is computed once
for every minute of the history, so the fast-forward scan reads a slice. Sums
run over the five minutes in time order, with 0 for a missing minute, which is
exactly the arithmetic of `engine.pricing.vwap`: live and backtest prices are
bit-for-bit equal.
"""

from __future__ import annotations

import numpy as np

from btkit.domain.candles import EMPTY, Candles
from btkit.domain.model import MINUTE_MS
from btkit.engine.intervals import floor_to, interval_ms
from btkit.engine.pricing import VWAP_MINUTES
from btkit.market.arrays import CandleArrays, Floats, Ints, aggregate


def minute_prices(candles: CandleArrays) -> tuple[int, Floats]:
    """(time of tick 0, price at every minute tick); NaN where no candle is in the window."""
    first = int(candles.timestamp[0])
    grid = ((candles.timestamp - first) // MINUTE_MS).astype(np.int64)
    size = int(grid[-1]) + 1
    pad = VWAP_MINUTES

    def dense(values: Floats) -> Floats:
        out = np.zeros(size + 2 * pad, dtype=np.float64)
        out[grid + pad] = values
        return out

    def window_sum(values: Floats) -> Floats:
        # Added oldest minute first, as engine.pricing.vwap does, so results match exactly.
        column = dense(values)
        width = len(column) - pad + 1
        total = column[0:width].copy()
        for offset in range(1, pad):
            total += column[offset : offset + width]
        return total

    typical = (candles.high + candles.low + candles.close) / 3 * candles.volume
    present = np.ones(len(candles), dtype=np.float64)
    volume, weighted, closes, count = (
        window_sum(column) for column in (candles.volume, typical, candles.close, present)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        price = np.where(volume > 0, weighted / volume, closes / count)
    price[count == 0] = np.nan
    # Window w covers dense[w : w + 5] = grid minutes [w - 5, w - 1]: the tick at minute w.
    return first, price


class ArrayMarket:
    def __init__(self, symbol: str, candles: CandleArrays) -> None:
        if len(candles) == 0:
            raise ValueError(f"no candles for {symbol}")
        self.symbol = symbol
        self.history = candles.read_only()  # windows handed to strategies are views of it
        self.first_tick, self.prices = minute_prices(candles)

    def price_at(self, when: int) -> float | None:
        index = (floor_to(when, MINUTE_MS) - self.first_tick) // MINUTE_MS
        if index < 0 or index >= len(self.prices):
            return None
        price = float(self.prices[index])
        return None if price != price else price

    def price_series(self, first_tick: int, last_tick: int) -> tuple[Ints, Floats]:
        """Tick times and prices for every minute in [first_tick, last_tick]."""
        start = max((first_tick - self.first_tick) // MINUTE_MS, 0)
        stop = min((last_tick - self.first_tick) // MINUTE_MS + 1, len(self.prices))
        if stop <= start:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        times = self.first_tick + np.arange(start, stop, dtype=np.int64) * MINUTE_MS
        return times, self.prices[start:stop]

    async def candles(self, symbol: str, interval: str, limit: int, when: int) -> Candles:
        """Views into the history (1m) or freshly rolled-up periods: no candle objects."""
        self._check(symbol)
        if limit <= 0:
            return EMPTY
        if interval == "1m":
            end = when - when % MINUTE_MS
            h = self.history
            first = int(h.timestamp.searchsorted(end - limit * MINUTE_MS))
            stop = int(h.timestamp.searchsorted(end))
            return Candles.of_views(
                h.timestamp[first:stop],
                h.open[first:stop],
                h.high[first:stop],
                h.low[first:stop],
                h.close[first:stop],
                h.volume[first:stop],
            )
        step = interval_ms(interval)
        end = floor_to(when, step)
        window = aggregate(self.history.between(end - limit * step, end), step)
        return Candles(*window.slice(max(len(window) - limit, 0), len(window)).columns())

    async def average_price(self, symbol: str, when: int) -> float | None:
        self._check(symbol)
        return self.price_at(when)

    def _check(self, symbol: str) -> None:
        if symbol != self.symbol:
            raise LookupError(f"this backtest has candles for {self.symbol}, not {symbol}")
