"""Real exchanges through `ccxt.async_support`: the only module that imports ccxt.

One client per process, shared by all symbols, with ccxt's rate limiter on.
ccxt's errors are translated here, once: its transient family
(`OperationFailed` and below, e.g. a Binance 500 with code -1000) is retried
with backoff (Retry-After first); bad symbols, bad credentials and refused
permissions are permanent and end the process with status 2.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from btkit.clock import Clock
from btkit.domain import Candle
from btkit.engine.intervals import interval_ms
from btkit.errors import ConfigError, PermanentExchangeError, TransientExchangeError
from btkit.exchanges.candle_rows import checked_candles
from btkit.exchanges.retry import RetryPolicy, with_retries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    """Held as plain strings only inside the ccxt client; never logged or written."""

    api_key: str
    secret: str
    password: str | None = None


@dataclass(frozen=True)
class CcxtOptions:
    sandbox: bool = False
    base_url: str | None = None
    """Send every REST call to this scheme://host[:port] (proxies, mirrors, tests)."""
    timeout_ms: int = 10_000
    rate_limit_ms: int | None = None
    """Least time between requests; None keeps ccxt's value for the exchange."""
    page_limit: int = 1000
    retry: RetryPolicy = RetryPolicy()
    credentials: Credentials | None = None


def _retry_after(client: Any) -> float | None:
    headers = getattr(client, "last_response_headers", None) or {}
    for key, value in dict(headers).items():
        if str(key).lower() == "retry-after":
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                return None
    return None


@contextmanager
def translated_errors(exchange_id: str, client: Any) -> Iterator[None]:
    import ccxt

    try:
        yield
    except (ccxt.AuthenticationError, ccxt.PermissionDenied) as exc:
        raise PermanentExchangeError(
            f"{exchange_id} refused the API credentials ({type(exc).__name__}). Check "
            f"BTKIT_CREDENTIALS__{exchange_id.upper()}__API_KEY / __SECRET in the "
            "environment or .env, and the key's permissions."
        ) from exc
    except ccxt.BadSymbol as exc:
        raise PermanentExchangeError(f"{exchange_id}: {exc}") from exc
    except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
        raise TransientExchangeError(
            f"{exchange_id} rate limit: {type(exc).__name__}",
            retry_after=_retry_after(client),
        ) from exc
    except ccxt.OperationFailed as exc:
        raise TransientExchangeError(f"{exchange_id}: {type(exc).__name__}: {exc}") from exc
    except ccxt.BadResponse as exc:  # garbled or empty body: the next answer may be fine
        raise TransientExchangeError(f"{exchange_id}: malformed response: {exc}") from exc
    except ccxt.BaseError as exc:
        raise PermanentExchangeError(f"{exchange_id}: {type(exc).__name__}: {exc}") from exc


def known_exchange_ids() -> list[str]:
    import ccxt

    return list(ccxt.exchanges)


class CcxtExchange:
    def __init__(
        self,
        exchange_id: str,
        clock: Clock,
        options: CcxtOptions = CcxtOptions(),
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        import ccxt.async_support as ccxt_async

        self.name = exchange_id
        self._clock = clock
        self._options = options
        self._sleep = sleep
        config: dict[str, Any] = {"enableRateLimit": True, "timeout": options.timeout_ms}
        if options.rate_limit_ms is not None:
            config["rateLimit"] = options.rate_limit_ms
        if options.credentials is not None:
            config["apiKey"] = options.credentials.api_key
            config["secret"] = options.credentials.secret
            if options.credentials.password:
                config["password"] = options.credentials.password
        self._client: Any = getattr(ccxt_async, exchange_id)(config)
        if options.sandbox:
            self._enable_sandbox()
        if options.base_url:
            self._redirect(options.base_url)
        self._unified: dict[str, str] = {}

    def _enable_sandbox(self) -> None:
        import ccxt

        # Some exchanges list an empty testnet, on which ccxt fails with a TypeError.
        if not self._client.urls.get("test"):
            raise ConfigError(f"ccxt has no testnet (sandbox) for {self.name}.")
        try:
            self._client.set_sandbox_mode(True)
        except ccxt.NotSupported:
            raise ConfigError(f"ccxt has no testnet (sandbox) for {self.name}.") from None

    def _redirect(self, base_url: str) -> None:
        base = urlparse(base_url)
        if not base.scheme or not base.netloc:
            raise ConfigError(
                f"BTKIT_EXCHANGE_URL must look like https://host[:port], not {base_url!r}."
            )

        def rewrite(value: Any) -> Any:
            if isinstance(value, str) and value.startswith("http"):
                return f"{base.scheme}://{base.netloc}{urlparse(value).path}"
            if isinstance(value, dict):
                return {key: rewrite(item) for key, item in value.items()}
            return value

        self._client.urls["api"] = rewrite(self._client.urls["api"])

    async def _call(self, what: str, action: Callable[[], Awaitable[Any]]) -> Any:
        async def attempt() -> Any:
            with translated_errors(self.name, self._client):
                return await action()

        return await with_retries(
            attempt, policy=self._options.retry, sleep=self._sleep, what=f"{self.name} {what}"
        )

    async def check_symbols(self, symbols: Sequence[str]) -> list[str]:
        """Load markets, resolve `BTCUSDT` or `BTC/USDT`, and check credentials if given."""
        markets: dict[str, Any] = await self._call("load_markets", self._client.load_markets)
        resolved = [self._resolve(symbol, markets) for symbol in symbols]
        if self._options.credentials is not None:
            await self._call("credential check", self._client.fetch_balance)
        return resolved

    def _resolve(self, symbol: str, markets: dict[str, Any]) -> str:
        if symbol in markets:
            market_id = str(markets[symbol]["id"])
            self._unified[market_id] = symbol
            return market_id
        matches = [unified for unified, m in markets.items() if m.get("id") == symbol]
        if matches:
            spot = [u for u in matches if markets[u].get("spot")] or matches
            self._unified[symbol] = spot[0]
            return symbol
        names = sorted({*markets, *(str(m.get("id")) for m in markets.values())})
        close = difflib.get_close_matches(symbol.upper(), names, n=5, cutoff=0.6)
        raise PermanentExchangeError(
            f"{self.name} has no market {symbol!r}. Close matches: {', '.join(close) or 'none'}. "
            "Give the market id (BTCUSDT) or the unified symbol (BTC/USDT)."
        )

    async def fetch_candles(
        self, symbol: str, interval: str, since_ms: int, limit: int
    ) -> list[Candle]:
        """Candles from `since_ms`, paginated; the still-forming candle is dropped."""
        unified = self._unified.get(symbol, symbol)
        step = interval_ms(interval)
        forming = self._clock.now_ms() // step * step
        candles: list[Candle] = []
        cursor = since_ms
        while len(candles) < limit and cursor < forming:
            want = min(limit - len(candles), self._options.page_limit)
            page = await self._call(
                f"fetch_ohlcv {symbol} {interval}",
                functools.partial(self._page, unified, interval, cursor, want),
            )
            fresh = [c for c in page if c.timestamp >= cursor and c.timestamp < forming]
            candles.extend(fresh)
            if len(page) < want or not fresh:
                break
            cursor = fresh[-1].timestamp + step
        return candles[:limit]

    async def _page(self, unified: str, interval: str, since: int, limit: int) -> list[Candle]:
        rows = await self._client.fetch_ohlcv(unified, interval, since, limit)
        if (
            not rows
            and self._client.last_json_response is None
            and (self._client.last_http_response)
        ):
            import ccxt

            raise ccxt.BadResponse("the exchange sent a response that is not JSON")
        return checked_candles(rows, f"{self.name} {unified} {interval}")

    async def close(self) -> None:
        await self._client.close()
