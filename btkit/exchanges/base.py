"""The exchange port: little more than "candles for symbol, interval, since, limit"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from btkit.domain import Candle


class Exchange(Protocol):
    name: str

    async def check_symbols(self, symbols: Sequence[str]) -> list[str]:
        """Resolve user-given symbols to the exchange's market ids; unknown ones raise."""
        ...

    async def fetch_candles(
        self, symbol: str, interval: str, since_ms: int, limit: int
    ) -> list[Candle]:
        """Up to `limit` candles opening at or after `since_ms`, oldest first."""
        ...

    async def close(self) -> None: ...
