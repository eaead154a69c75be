"""MarketData over a symbol's whole history, for backtests.

The §3 price (VWAP of the five finished minutes before a tick) is computed for
a block of minutes at a time, so the fast-forward scan reads a slice and memory
stays flat in the length of history. Sums run over the five minutes in time
order, with 0 for a missing minute, which is exactly the arithmetic of
`engine.pricing.vwap`: live and backtest prices are bit-for-bit equal.
"""

from __future__ import annotations

import numpy as np

from btkit.domain.candles import EMPTY, Candles
from btkit.domain.model import MINUTE_MS
from btkit.engine.intervals import floor_to, interval_ms
from btkit.engine.pricing import VWAP_MINUTES
from btkit.market.arrays import CandleArrays, Floats, Ints, aggregate

BLOCK = 1 << 14
"""Minute ticks priced at a time (about 11 days)."""


def minute_prices(candles: CandleArrays, first: int, lo: int, count: int) -> Floats:
    """The price at the `count` minute ticks from `first + lo` minutes; NaN where no
    candle is in the tick's window."""
    pad = VWAP_MINUTES
    since = first + (lo - pad) * MINUTE_MS
    window = candles.between(since, first + (lo + count - 1) * MINUTE_MS)
    where = (window.timestamp - since) // MINUTE_MS

    def window_sum(values: Floats) -> Floats:
        # Added oldest minute first, as engine.pricing.vwap does, so results match exactly.
        column = np.zeros(count + pad - 1, dtype=np.float64)
        column[where] = values
        total = column[0:count].copy()
        for offset in range(1, pad):
            total += column[offset : offset + count]
        return total

    typical = (window.high + window.low + window.close) / 3 * window.volume
    present = np.ones(len(window), dtype=np.float64)
    volume, weighted, closes, seen = (
        window_sum(column) for column in (window.volume, typical, window.close, present)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        price = np.where(volume > 0, weighted / volume, closes / seen)
    price[seen == 0] = np.nan
    # Tick j covers minutes [lo + j - 5, lo + j - 1]: the five finished before it.
    return price


class ArrayMarket:
    def __init__(self, symbol: str, candles: CandleArrays) -> None:
        if len(candles) == 0:
            raise ValueError(f"no candles for {symbol}")
        self.symbol = symbol
        self.history = candles.read_only()  # windows handed to strategies are views of it
        self.first_tick = int(candles.timestamp[0])
        last = int(candles.timestamp[-1])
        self.ticks = (last - self.first_tick) // MINUTE_MS + 1 + VWAP_MINUTES + 1
        """Minute ticks from the first candle until the last has left every window."""
        self._times = self.history.timestamp.data
        """The timestamps as Python ints by index, to check a guessed window cheaply."""
        self._missing = 0
        """Minutes without a candle before the last window's end: the next guess's offset."""
        self._blocks: dict[int, Floats] = {}
        self._block_index = -1
        self._block_prices: Floats = np.empty(0, dtype=np.float64)

    def _block(self, index: int) -> Floats:
        if index == self._block_index:
            return self._block_prices
        prices = self._blocks.get(index)
        if prices is None:
            lo = index * BLOCK
            prices = minute_prices(self.history, self.first_tick, lo, min(BLOCK, self.ticks - lo))
            if len(self._blocks) >= 4:
                del self._blocks[max(self._blocks, key=lambda b: abs(b - index))]
            self._blocks[index] = prices
            if self.history.forget is not None:  # pages more than a block behind
                keep_from = self.first_tick + (lo - BLOCK - VWAP_MINUTES) * MINUTE_MS
                self.history.forget(self.history.index_at(keep_from))
        self._block_index, self._block_prices = index, prices
        return prices

    def price_at(self, when: int) -> float | None:
        index = (when - when % MINUTE_MS - self.first_tick) // MINUTE_MS
        if index < 0 or index >= self.ticks:
            return None
        price = float(self._block(index // BLOCK)[index % BLOCK])
        return None if price != price else price

    def price_series(self, first_tick: int, last_tick: int) -> tuple[Ints, Floats]:
        """Tick times and prices for every minute in [first_tick, last_tick]."""
        start = max((first_tick - self.first_tick) // MINUTE_MS, 0)
        stop = min((last_tick - self.first_tick) // MINUTE_MS + 1, self.ticks)
        if stop <= start:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        times = self.first_tick + np.arange(start, stop, dtype=np.int64) * MINUTE_MS
        pieces = [
            self._block(block)[max(start - block * BLOCK, 0) : stop - block * BLOCK]
            for block in range(start // BLOCK, (stop - 1) // BLOCK + 1)
        ]
        return times, pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    async def candles(self, symbol: str, interval: str, limit: int, when: int) -> Candles:
        """Views into the history (1m) or freshly rolled-up periods: no candle objects."""
        if symbol != self.symbol:
            self._check(symbol)
        if limit <= 0:
            return EMPTY
        if interval == "1m":
            end = when - when % MINUTE_MS
            minutes = (end - self.first_tick) // MINUTE_MS
            stop = self._index_at(end, minutes - self._missing)
            self._missing = max(minutes - stop, 0)
            first = self._index_at(end - limit * MINUTE_MS, stop - limit)
            h = self.history
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

    def _index_at(self, timestamp_ms: int, guess: int) -> int:
        """Index of the first candle opening at or after `timestamp_ms` (`searchsorted`).

        `guess` is checked first: a window a tick later than the last one, or a
        gapless one, is found without a binary search over the whole history.
        """
        times = self._times
        if 0 < guess < len(times):  # the usual case, inside the history
            if times[guess - 1] < timestamp_ms <= times[guess]:
                return guess
        else:
            guess = min(max(guess, 0), len(times))  # before or after the history: its edge
            if (guess == len(times) or timestamp_ms <= times[guess]) and (
                guess == 0 or times[guess - 1] < timestamp_ms
            ):
                return guess
        return int(self.history.timestamp.searchsorted(timestamp_ms))

    async def average_price(self, symbol: str, when: int) -> float | None:
        self._check(symbol)
        return self.price_at(when)

    def _check(self, symbol: str) -> None:
        if symbol != self.symbol:
            raise LookupError(f"this backtest has candles for {self.symbol}, not {symbol}")
