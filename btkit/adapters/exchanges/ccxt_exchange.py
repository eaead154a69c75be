"""Real exchanges through `ccxt.async_support`: the only module that imports ccxt.

One client per process, shared by all symbols, with ccxt's rate limiter on.
ccxt's errors are translated here, once: its transient family
(`OperationFailed` and below, e.g. a Binance 500 with code -1000) and generic
errors whose code or wording means "try again" (`classify`) are retried with
backoff (Retry-After first); bad symbols, bad credentials and refused
permissions are permanent and end the process with status 2.

Pages are as large as the exchange serves (ccxt's `features`: OKX 300,
Binance 1000) and bounded with `until` where ccxt supports it, so a
newest-first exchange answers the window asked for; a short or empty page is
not the end of the data.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from btkit.adapters.exchanges.candle_rows import checked_candles
from btkit.adapters.exchanges.classify import is_transient
from btkit.adapters.exchanges.market_rules import market_rules
from btkit.adapters.exchanges.markets import MarketIndex
from btkit.adapters.exchanges.retry import RetryPolicy, with_retries
from btkit.domain.errors import ConfigError, PermanentExchangeError, TransientExchangeError
from btkit.domain.model import Candle
from btkit.domain.orders import MarketRules, OrderBook
from btkit.engine.intervals import interval_ms
from btkit.ports import Clock

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
    """Most candles per request; lowered to the exchange's own cap where ccxt knows it."""
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
        if transient_generic(exchange_id, exc):
            raise TransientExchangeError(
                f"{exchange_id}: {type(exc).__name__} (temporary): {exc}"
            ) from exc
        raise PermanentExchangeError(f"{exchange_id}: {type(exc).__name__}: {exc}") from exc


def transient_generic(exchange_id: str, exc: BaseException) -> bool:
    """A plain ExchangeError that means "try again": a known code, its wording, or a
    connection that broke mid-answer (ccxt wraps aiohttp's ClientError so)."""
    import aiohttp
    import ccxt

    if type(exc) is not ccxt.ExchangeError:
        return False
    return isinstance(exc.__cause__, aiohttp.ClientError) or is_transient(exchange_id, str(exc))


def _is_json(body: Any) -> bool:
    """ccxt parses only objects and arrays; a bare JSON number or string is still JSON."""
    try:
        json.loads(body)
    except (TypeError, ValueError):
        return False
    return True


def _json_only(client_class: Any) -> Any:
    """The ccxt class, refusing a successful answer whose body is not JSON.

    ccxt hands such a body back as a string (and a valid `[]` as a list), so the
    check sits where ccxt sees both the body and its parse, whatever
    `enableLastJsonResponse` says and however many requests run at once.
    """

    class JsonOnly(client_class):  # type: ignore[misc]
        def handle_errors(
            self,
            code: int,
            reason: str,
            url: str,
            method: str,
            headers: Any,
            body: Any,
            response: Any,
            request_headers: Any,
            request_body: Any,
        ) -> Any:
            if 200 <= int(code or 0) < 300 and response is None and not _is_json(body):
                import ccxt

                raise ccxt.BadResponse(
                    f"{self.id} sent a response that is not JSON: {str(body)[:80]!r}"
                )
            return super().handle_errors(
                code, reason, url, method, headers, body, response, request_headers, request_body
            )

    JsonOnly.__name__ = client_class.__name__
    return JsonOnly


def ccxt_client(exchange_id: str, options: CcxtOptions, extra: dict[str, Any] | None = None) -> Any:
    """A ccxt async client as btkit configures it: rate limiter on, the timeout, keys,
    sandbox and the URL override applied; `extra` merges into ccxt's config."""
    import ccxt.async_support as ccxt_async

    config: dict[str, Any] = {"enableRateLimit": True, "timeout": options.timeout_ms}
    if options.rate_limit_ms is not None:
        config["rateLimit"] = options.rate_limit_ms
    if options.credentials is not None:
        config["apiKey"] = options.credentials.api_key
        config["secret"] = options.credentials.secret
        if options.credentials.password:
            config["password"] = options.credentials.password
    config.update(extra or {})
    client = _json_only(getattr(ccxt_async, exchange_id))(config)
    if options.sandbox:
        _enable_sandbox(client, exchange_id)
    if options.base_url:
        _redirect(client, options.base_url)
    return client


def _enable_sandbox(client: Any, exchange_id: str) -> None:
    import ccxt

    # Some exchanges list an empty testnet, on which ccxt fails with a TypeError.
    if not client.urls.get("test"):
        raise ConfigError(f"ccxt has no testnet (sandbox) for {exchange_id}.")
    try:
        client.set_sandbox_mode(True)
    except ccxt.NotSupported:
        raise ConfigError(f"ccxt has no testnet (sandbox) for {exchange_id}.") from None


def _redirect(client: Any, base_url: str) -> None:
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

    client.urls["api"] = rewrite(client.urls["api"])


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
        self.name = exchange_id
        self._clock = clock
        self._options = options
        self._sleep = sleep
        self._client: Any = ccxt_client(exchange_id, options)
        self._markets = MarketIndex(exchange_id, {})
        fetch_doc = self._client.fetch_ohlcv.__doc__ or ""
        self._bounded_pages = "params.until" in fetch_doc
        """ccxt documents `until` for fetch_ohlcv where it sends it to the exchange."""

    async def _call(self, what: str, action: Callable[[], Awaitable[Any]]) -> Any:
        async def attempt() -> Any:
            with translated_errors(self.name, self._client):
                return await action()

        return await with_retries(
            attempt, policy=self._options.retry, sleep=self._sleep, what=f"{self.name} {what}"
        )

    async def _loaded(self) -> None:
        if not self._markets.known:
            markets = await self._call("load_markets", self._client.load_markets)
            self._markets = MarketIndex(self.name, markets)

    async def rules(self, symbol: str) -> MarketRules:
        """The market's steps, minimums and taker fee (paper orders obey them too)."""
        await self._loaded()
        return market_rules(
            self._markets.market(symbol), int(self._client.precisionMode), oco_api=False
        )

    async def order_book(self, symbol: str, limit: int) -> OrderBook:
        """The market's current book, best first (paper fills walk it)."""
        await self._loaded()
        unified = self._markets.unified(symbol)
        raw = await self._call(
            f"fetch_order_book {symbol}",
            functools.partial(self._client.fetch_order_book, unified, limit),
        )
        return OrderBook(
            symbol=symbol,
            bids=tuple((float(p), float(a)) for p, a, *_ in raw.get("bids") or []),
            asks=tuple((float(p), float(a)) for p, a, *_ in raw.get("asks") or []),
            timestamp=int(raw.get("timestamp") or self._clock.now_ms()),
        )

    async def check_symbols(self, symbols: Sequence[str]) -> list[str]:
        """Load markets, resolve each symbol to its name, and check credentials if given.

        The name is the market id (`BTCUSDT`, OKX `BTC-USDT`); a derivative that
        shares its id with a spot market gets its own (`ETHBTC.P`), so candle and
        state files never mix the two.
        """
        markets: dict[str, Any] = await self._call("load_markets", self._client.load_markets)
        self._markets = MarketIndex(self.name, markets)
        resolved = [self._markets.resolve(symbol) for symbol in symbols]
        for name in {n for n in resolved if resolved.count(n) > 1}:
            spellings = [s for s, n in zip(symbols, resolved, strict=True) if n == name]
            raise ConfigError(f"{' and '.join(spellings)} are the same market ({name}).")
        if self._options.credentials is not None:
            await self._call("credential check", self._client.fetch_balance)
        return resolved

    async def fetch_candles(
        self, symbol: str, interval: str, since_ms: int, limit: int
    ) -> list[Candle]:
        """Candles from `since_ms`, paginated; the still-forming candle is dropped.

        A page is a window of `want` periods from the cursor. An empty one ends the
        search when it reaches the forming candle or the exchange has nothing newer;
        otherwise it was a gap in trading and the next window follows.
        """
        unified = self._markets.unified(symbol)
        step = interval_ms(interval)
        forming = self._clock.now_ms() // step * step
        cap = self._page_cap(unified)
        candles: list[Candle] = []
        cursor = since_ms
        newest: int | None = None
        while len(candles) < limit and cursor < forming:
            want = min(limit - len(candles), cap)
            page = await self._call(
                f"fetch_ohlcv {symbol} {interval}",
                functools.partial(self._page, unified, interval, cursor, want),
            )
            fresh = [c for c in page if c.timestamp >= cursor and c.timestamp < forming]
            if fresh:
                candles.extend(fresh)
                cursor = fresh[-1].timestamp + step
                continue
            cursor += want * step
            if cursor >= forming:
                break
            if newest is None:
                newest = await self._newest(symbol, unified, interval)
            if newest < cursor:
                break
        return candles[:limit]

    def _page_cap(self, unified: str) -> int:
        try:
            cap = self._client.feature_value(unified, "fetchOHLCV", "limit")
        except Exception:  # an exchange ccxt has no features for, or an odd market type
            cap = None
        return min(self._options.page_limit, int(cap)) if cap else self._options.page_limit

    async def _newest(self, symbol: str, unified: str, interval: str) -> int:
        """Open time of the exchange's newest candle (-1 when it has none)."""
        rows = await self._call(
            f"fetch_ohlcv {symbol} {interval} (newest)",
            functools.partial(self._client.fetch_ohlcv, unified, interval, None, 1),
        )
        return max((int(row[0]) for row in rows or []), default=-1)

    async def _page(self, unified: str, interval: str, since: int, limit: int) -> list[Candle]:
        params = {"until": since + limit * interval_ms(interval) - 1} if self._bounded_pages else {}
        rows = await self._client.fetch_ohlcv(unified, interval, since, limit, params)
        if not isinstance(rows, list):
            import ccxt

            raise ccxt.BadResponse("the exchange sent candles that are not a list")
        return checked_candles(rows, f"{self.name} {unified} {interval}")

    async def close(self) -> None:
        await self._client.close()
