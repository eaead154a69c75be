"""A local server that speaks the parts of Binance's public spot REST API ccxt uses.

`exchangeInfo` and `klines` come from real candle files; the real ccxt client is
pointed at it with BTKIT_EXCHANGE_URL. Faults are injected on demand for the
next `klines` requests: 429 / 418 with Retry-After, 500 (code -1000), 503,
responses slower than the client's timeout, malformed JSON, a full outage,
missing candles, and raw values ("NaN", null) in chosen candles. Bound to
127.0.0.1 only; it stops with the test.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

from btkit.engine.intervals import interval_ms
from btkit.market.arrays import CandleArrays, aggregate
from tests.local_http import LocalHttpServer

QUOTES = ("USDT", "BTC", "ETH")
GOOD_KEY = "good-api-key"


@dataclass
class FaultPlan:
    """What the next klines requests get; `outage` fails every one until cleared."""

    queue: deque[str] = field(default_factory=deque)
    outage: bool = False
    missing: set[int] = field(default_factory=set)
    slow_seconds: float = 2.0
    retry_after: int = 1
    delay_seconds: float = 0.0
    """Added to every klines answer (to catch a download mid-way)."""
    raw: dict[int, dict[int, object]] = field(default_factory=dict)
    """Candle time -> {kline column: value sent as is}, e.g. "NaN" or None (null)."""
    echo_headers: bool = False
    """Refusals echo the request's headers in their body, as some proxies do."""


def _market(symbol: str) -> dict[str, object]:
    quote = next(q for q in QUOTES if symbol.endswith(q))
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": symbol[: -len(quote)],
        "quoteAsset": quote,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.00000100",
                "maxPrice": "922327.00000000",
                "tickSize": "0.00000100",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00100000",
                "maxQty": "100000.00000000",
                "stepSize": "0.00100000",
            },
        ],
    }


class BinanceServer(LocalHttpServer):
    def __init__(self, candles: dict[str, CandleArrays]) -> None:
        self.candles = candles
        self.faults = FaultPlan()
        self.klines_requests = 0
        self.klines_starts: list[int] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        super().__init__()

    def inject(self, *faults: str) -> None:
        with self._lock:
            self.faults.queue.extend(faults)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(request.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        with self._lock:
            self.paths.append(parsed.path)
        routes = {
            "/api/v3/exchangeInfo": lambda: (200, self._exchange_info()),
            "/fapi/v1/exchangeInfo": lambda: (200, {"timezone": "UTC", "symbols": []}),
            "/dapi/v1/exchangeInfo": lambda: (200, {"timezone": "UTC", "symbols": []}),
            "/api/v3/time": lambda: (200, {"serverTime": int(time.time() * 1000)}),
        }
        private = {
            "/sapi/v1/capital/config/getall",
            "/sapi/v1/margin/allPairs",
            "/sapi/v1/margin/isolated/allPairs",
        }
        if parsed.path == "/api/v3/klines":
            self._klines(request, query)
        elif parsed.path == "/api/v3/account":
            self._account(request)
        elif parsed.path in private:
            if self._authorised(request):
                self._send(request, 200, [])
        elif parsed.path in routes:
            status, body = routes[parsed.path]()
            self._send(request, status, body)
        else:
            self._send(request, 404, {"code": -1, "msg": f"no route {parsed.path}"})

    def _exchange_info(self) -> dict[str, object]:
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [_market(s) for s in self.candles],
        }

    def _authorised(self, request: BaseHTTPRequestHandler) -> bool:
        if request.headers.get("X-MBX-APIKEY") == GOOD_KEY:
            return True
        invalid = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
        if self.faults.echo_headers:  # a proxy's refusal that shows what it was sent
            echo = {"msg": "proxy: request refused", "headers": dict(request.headers.items())}
            self._send(request, 400, echo)
            return False
        self._send(request, 401, invalid)
        return False

    def _account(self, request: BaseHTTPRequestHandler) -> None:
        if self._authorised(request):
            self._send(request, 200, {"balances": [], "canTrade": True, "accountType": "SPOT"})

    def _next_fault(self) -> str | None:
        with self._lock:
            self.klines_requests += 1
            if self.faults.outage:
                return "503"
            fault = self.faults.queue.popleft() if self.faults.queue else None
            return None if fault == "ok" else fault

    def _klines(self, request: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        fault = self._next_fault()
        retry = {"Retry-After": str(self.faults.retry_after)}
        if fault == "429":
            return self._send(request, 429, {"code": -1003, "msg": "Too many requests."}, retry)
        if fault == "418":
            return self._send(request, 418, {"code": -1003, "msg": "IP banned."}, retry)
        if fault == "500":
            return self._send(
                request,
                500,
                {"code": -1000, "msg": "An unknown error occurred while processing the request."},
            )
        if fault == "503":
            return self._send(request, 503, "Service Unavailable")
        if fault == "malformed":
            return self._send(request, 200, '[[1516424100000, "0.089", "0.09"')
        if fault == "slow":
            time.sleep(self.faults.slow_seconds)
        time.sleep(self.faults.delay_seconds)
        with self._lock:
            self.klines_starts.append(int(query.get("startTime", 0)))
        symbol = query.get("symbol", "")
        if symbol not in self.candles:
            return self._send(request, 400, {"code": -1121, "msg": "Invalid symbol."})
        step = interval_ms(query.get("interval", "1m"))
        limit = min(int(query.get("limit", 500)), 1000)
        since = int(query.get("startTime", 0))
        until = int(query.get("endTime", 2**62))
        series = self.candles[symbol]
        window = series.between(since - since % step, until + 1)
        if self.faults.missing:
            keep = [
                i for i, t in enumerate(window.timestamp.tolist()) if t not in self.faults.missing
            ]
            window = CandleArrays(
                *(
                    column[keep]
                    for column in (
                        window.timestamp,
                        window.open,
                        window.high,
                        window.low,
                        window.close,
                        window.volume,
                    )
                )
            )
        if step != 60_000:
            window = aggregate(window, step)
        first = window.index_at(since)
        rows = [
            [
                c.timestamp,
                repr(c.open),
                repr(c.high),
                repr(c.low),
                repr(c.close),
                repr(c.volume),
                c.timestamp + step - 1,
                "0",
                1,
                "0",
                "0",
                "0",
            ]
            for c in window.slice(first, first + limit).to_candles()
        ]
        return self._send(request, 200, [self._raw(row) for row in rows])

    def _raw(self, row: list[object]) -> list[object]:
        raw = self.faults.raw.get(int(str(row[0])), {})
        return [raw.get(i, value) if 1 <= i <= 5 else value for i, value in enumerate(row)]

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        body: object,
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = (body if isinstance(body, str) else json.dumps(body)).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                request.send_header(key, value)
            request.end_headers()
            request.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout fault)
