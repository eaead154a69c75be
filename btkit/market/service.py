"""Finished candles and the VWAP price at a tick time, over any exchange.

Only candles whose period has ended at `when` are ever returned (SPEC §2), so
a live run sees exactly what a backtest over the same history sees.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from btkit.domain import MINUTE_MS, Candle
from btkit.engine.intervals import floor_to, interval_ms
from btkit.engine.pricing import VWAP_MINUTES, vwap, vwap_window
from btkit.exchanges.base import Exchange


class MarketData(Protocol):
    async def candles(self, symbol: str, interval: str, limit: int, when: int) -> list[Candle]:
        """The `limit` most recent candles finished at `when`, oldest first."""
        ...

    async def average_price(self, symbol: str, when: int) -> float | None:
        """VWAP of the last five finished minutes; None when there is no candle."""
        ...


class ExchangeMarket:
    """MarketData over an exchange, with a small bounded cache of finished windows.

    A finished window never changes, so one tick's VWAP and the strategy's own
    query, or several strategies on one symbol, do not fetch it twice.
    """

    def __init__(self, exchange: Exchange, *, cache_size: int = 512) -> None:
        self._exchange = exchange
        self._cache: OrderedDict[tuple[str, str, int, int], list[Candle]] = OrderedDict()
        self._cache_size = cache_size

    async def candles(self, symbol: str, interval: str, limit: int, when: int) -> list[Candle]:
        if limit <= 0:
            return []
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
        result = finished[-limit:]
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    async def average_price(self, symbol: str, when: int) -> float | None:
        first, last = vwap_window(floor_to(when, MINUTE_MS))
        window = await self.candles(symbol, "1m", VWAP_MINUTES, last + MINUTE_MS)
        return vwap([c for c in window if first <= c.timestamp <= last])
