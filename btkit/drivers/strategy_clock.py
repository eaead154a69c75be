"""How long a strategy call has taken of its own time.

A strategy's `get_candles` may wait on btkit's exchange retries (bounded by the
outage budget, minutes long in a simulated run). That wait is btkit's, not the
strategy's: counting it against `BTKIT_STRATEGY_TIMEOUT_SECONDS` would cancel a
healthy strategy during an exchange hiccup and lose the minute. The strategy
sees the market through `TimedMarket`, which adds up its waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from btkit.ports import MarketData

if TYPE_CHECKING:
    from btkit.domain.candles import Candles

T = TypeVar("T")


class TimedMarket:
    """A `MarketData` that counts the loop-time seconds spent waiting on it."""

    def __init__(self, market: MarketData) -> None:
        self._market = market
        self._in_flight = 0
        self._since = 0.0
        self._waited = 0.0

    async def candles(self, symbol: str, interval: str, limit: int, when: int) -> Candles:
        return await self._timed(self._market.candles(symbol, interval, limit, when))

    async def average_price(self, symbol: str, when: int) -> float | None:
        return await self._timed(self._market.average_price(symbol, when))

    def waited(self) -> float:
        """Seconds spent inside market calls so far, the one in progress included."""
        if self._in_flight:
            return self._waited + asyncio.get_running_loop().time() - self._since
        return self._waited

    async def _timed(self, call: Awaitable[T]) -> T:
        loop = asyncio.get_running_loop()
        if self._in_flight == 0:
            self._since = loop.time()
        self._in_flight += 1
        try:
            return await call
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._waited += loop.time() - self._since
