"""Finished candles and the VWAP price at a tick time, over any exchange.

Only candles whose period has ended at `when` are ever returned (SPEC §2), so
a live run sees exactly what a backtest over the same history sees.
"""

from __future__ import annotations

import bisect
import logging
from collections import OrderedDict

from btkit.domain.candles import EMPTY, Candles
from btkit.domain.model import MINUTE_MS, Candle
from btkit.engine.intervals import floor_to, interval_ms
from btkit.engine.pricing import VWAP_MINUTES, vwap
from btkit.ports import Exchange

log = logging.getLogger(__name__)


class _KnownMinutes:
    """The 1m candles of one symbol known for [first, end): a minute inside with no
    candle is a gap the exchange confirmed (it sent a later candle)."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.end = first
        self.candles: list[Candle] = []
        self.times: list[int] = []

    def add(self, candles: list[Candle], fetched_from: int) -> list[tuple[int, int]]:
        """Append; returns the gaps found as (last candle before, minutes missing)."""
        fresh = [c for c in candles if c.timestamp >= max(self.end, fetched_from)]
        gaps = []
        previous = self.candles[-1].timestamp if self.candles else None
        for candle in fresh:
            if previous is not None and candle.timestamp - previous > MINUTE_MS:
                gaps.append((previous, (candle.timestamp - previous) // MINUTE_MS - 1))
            previous = candle.timestamp
        self.candles.extend(fresh)
        self.times.extend(c.timestamp for c in fresh)
        if fresh:
            self.end = fresh[-1].timestamp + MINUTE_MS
        return gaps

    def trim(self, keep_from: int) -> None:
        cut = bisect.bisect_left(self.times, keep_from)
        if cut:
            del self.candles[:cut]
            del self.times[:cut]
        self.first = max(self.first, keep_from)

    def between(self, since: int, end: int) -> list[Candle]:
        lo = bisect.bisect_left(self.times, since)
        hi = bisect.bisect_left(self.times, end)
        return self.candles[lo:hi]


class ExchangeMarket:
    """MarketData over an exchange, with small bounded caches of finished candles.

    A finished candle never changes, so 1m candles are kept per symbol for the
    last `keep_minutes` and each tick fetches only the minutes it has not seen:
    the VWAP and the strategy's own query share them. Other intervals are cached
    per exact window (LRU).
    """

    def __init__(
        self,
        exchange: Exchange,
        *,
        cache_size: int = 512,
        keep_minutes: int = 1500,
        report_gaps: bool = False,
    ) -> None:
        self._exchange = exchange
        self._report_gaps = report_gaps
        self._cache: OrderedDict[tuple[str, str, int, int], Candles] = OrderedDict()
        self._cache_size = cache_size
        self._keep_minutes = keep_minutes
        self._minutes: dict[str, _KnownMinutes] = {}

    async def candles(self, symbol: str, interval: str, limit: int, when: int) -> Candles:
        if limit <= 0:
            return EMPTY
        if interval == "1m":
            return await self._minute_candles(symbol, limit, when)
        step = interval_ms(interval)
        end = floor_to(when, step)  # the still-forming candle opens here
        since = end - limit * step
        key = (symbol, interval, since, limit)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        fetched = await self._exchange.fetch_candles(symbol, interval, since, limit)
        finished = [c for c in fetched if since <= c.timestamp and c.timestamp + step <= when]
        result = Candles.from_rows(finished[-limit:])
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    async def _minute_candles(self, symbol: str, limit: int, when: int) -> Candles:
        end = floor_to(when, MINUTE_MS)
        since = end - limit * MINUTE_MS
        known = self._minutes.get(symbol)
        if known is None or not known.first <= since <= known.end:
            known = self._minutes[symbol] = _KnownMinutes(since)
        if known.end < end:
            missing = (end - known.end) // MINUTE_MS
            fetched = await self._exchange.fetch_candles(symbol, "1m", known.end, missing)
            gaps = known.add([c for c in fetched if c.timestamp < end], known.end)
            for before, absent in gaps if self._report_gaps else ():
                log.info(
                    "%s %s: %d candle(s) missing after %d (no trades, or the exchange "
                    "lost them); not filled in",
                    self._exchange.name,
                    symbol,
                    absent,
                    before,
                )
            known.trim(end - max(self._keep_minutes, limit) * MINUTE_MS)
        return Candles.from_rows(known.between(since, end)[-limit:])

    async def average_price(self, symbol: str, when: int) -> float | None:
        # The five minutes finished at `when`: exactly the 1m candles opening in
        # [when - 5m, when - 1m], the window SPEC §3 prices by.
        return vwap(await self.candles(symbol, "1m", VWAP_MINUTES, when))
