"""Real exchanges through `ccxt.async_support` (public OHLCV, no keys needed).

The only module that imports ccxt; its errors are translated here, once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from btkit.domain import Candle
from btkit.errors import PermanentExchangeError, TransientExchangeError


@contextmanager
def translated_errors(exchange_id: str) -> Iterator[None]:
    import ccxt

    try:
        yield
    except (ccxt.BadSymbol, ccxt.AuthenticationError, ccxt.PermissionDenied) as exc:
        raise PermanentExchangeError(f"{exchange_id}: {type(exc).__name__}: {exc}") from exc
    except ccxt.OperationFailed as exc:
        raise TransientExchangeError(f"{exchange_id}: {type(exc).__name__}: {exc}") from exc
    except ccxt.BaseError as exc:
        raise PermanentExchangeError(f"{exchange_id}: {type(exc).__name__}: {exc}") from exc


class CcxtExchange:
    def __init__(self, exchange_id: str, *, options: dict[str, Any] | None = None) -> None:
        import ccxt.async_support as ccxt_async

        self.name = exchange_id
        config: dict[str, Any] = {"enableRateLimit": True, **(options or {})}
        self._client: Any = getattr(ccxt_async, exchange_id)(config)
        self._unified: dict[str, str] = {}

    async def check_symbols(self, symbols: Sequence[str]) -> list[str]:
        with translated_errors(self.name):
            markets: dict[str, Any] = await self._client.load_markets()
        by_id = {market["id"]: unified for unified, market in markets.items()}
        resolved = []
        for symbol in symbols:
            if symbol in by_id:
                self._unified[symbol] = by_id[symbol]
                resolved.append(symbol)
            elif symbol in markets:
                market_id = markets[symbol]["id"]
                self._unified[market_id] = symbol
                resolved.append(market_id)
            else:
                close = difflib.get_close_matches(symbol, [*by_id, *markets], n=5)
                raise PermanentExchangeError(
                    f"{self.name} has no market {symbol!r}. "
                    f"Close matches: {', '.join(close) or 'none'}."
                )
        return resolved

    async def fetch_candles(
        self, symbol: str, interval: str, since_ms: int, limit: int
    ) -> list[Candle]:
        unified = self._unified.get(symbol, symbol)
        with translated_errors(self.name):
            rows = await self._client.fetch_ohlcv(unified, interval, since_ms, limit)
        return [
            Candle(
                int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5] or 0.0)
            )
            for r in rows
        ]

    async def close(self) -> None:
        await self._client.close()


def known_exchange_ids() -> list[str]:
    import ccxt

    return list(ccxt.exchanges)
