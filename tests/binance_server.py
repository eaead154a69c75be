"""A local server that speaks the parts of Binance's spot REST API ccxt uses.

Public: `exchangeInfo` (with LOT_SIZE, PRICE_FILTER, NOTIONAL filters and
`ocoAllowed`), `klines` from real candle files, `time`, and `depth` (a book
synthesised around the current price). Signed (HMAC-SHA256 over the query or
form body, X-MBX-APIKEY, timestamp within recvWindow): `account`, `order`
(POST/GET/DELETE, by orderId or origClientOrderId), `openOrders`, `myTrades`,
`orderList/oco` and the older `order/oco`, `orderList` (GET/DELETE) and the
`sapi` calls ccxt's load_markets makes with keys set. Orders go to the matching
engine in `tests/binance_matching.py`, whose "now" the test moves.

The real ccxt client is pointed at it with BTKIT_EXCHANGE_URL. With `follow_klines`
set, the engine's "now" follows the client instead of the test: after each klines
answer it advances to the minute after the newest candle sent (that candle is closed,
so the next minute's open is the price), never backwards. A `btkit live --start ...`
run on simulated time then trades at the prices of the minute it is deciding on, and
resting orders fill as its replay crosses them. Faults are
injected on demand for the next `klines` requests (`inject`): 429 / 418 with
Retry-After, 500 (code -1000), 503, responses slower than the client's timeout,
malformed JSON, a full outage, missing candles, raw values ("NaN", null) in
chosen candles; and for the next order requests (`inject_orders`, POST/DELETE)
or signed reads (`inject_reads`), see `ORDER_FAULTS`. Bound to 127.0.0.1 only;
it stops with the test.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from btkit.engine.intervals import interval_ms
from btkit.market.arrays import CandleArrays, aggregate
from tests.binance_matching import MIN_QTY, STEP, TICK, ApiError, Matching
from tests.local_http import LocalHttpServer

QUOTES = ("USDT", "BTC", "ETH")
GOOD_KEY = "good-api-key"
"""A key whose signature is not checked: the candle-only tests pass any secret."""
TRADE_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
TRADE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
"""A key and secret that sign: every request under TRADE_KEY must carry a valid HMAC."""

ORDER_FAULTS = (
    "lost",  # execute, then close the connection without answering
    "lost_before",  # close the connection without executing
    "500",  # not executed; 500 with code -1000 (Binance: execution status unknown)
    "500_after",  # executed, then 500 -1000
    "503",  # not executed; a proxy's 503
    "429",  # not executed; 429 -1003 with Retry-After
    "timeout",  # executed, then the answer held until `faults.release` (past the timeout)
    "timeout_before",  # held until `faults.release`, then executed (the client gave up)
    "partial",  # a market order fills half; the rest expires
    "reject",  # -2010 "Order was rejected" (the engine never saw it)
)
_KEY_FORMAT = re.compile(r"^[A-Za-z0-9-]{8,64}$")


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
    orders: deque[str] = field(default_factory=deque)
    """Faults for the next order requests (POST/DELETE), one per request; "ok" passes."""
    reads: deque[str] = field(default_factory=deque)
    """Faults ("429", "500", "503", "timeout") for the next signed GETs."""
    hold_seconds: float = 60.0
    """Longest a "timeout" fault holds its answer; the test ends it with `release`."""
    release: threading.Event = field(default_factory=threading.Event)
    clock_skew_ms: int = 0
    """The server's clock against the machine's (ccxt must sync with load_time_difference)."""


def _market(symbol: str, *, oco: bool = True, min_notional: float = 0.0001) -> dict[str, object]:
    quote = next(q for q in QUOTES if symbol.endswith(q))
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": symbol[: -len(quote)],
        "quoteAsset": quote,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": oco,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.00000100",
                "maxPrice": "922327.00000000",
                "tickSize": f"{TICK:.8f}",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": f"{MIN_QTY:.8f}",
                "maxQty": "100000.00000000",
                "stepSize": f"{STEP:.8f}",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": f"{min_notional:.8f}",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
    }


_UNKNOWN = {"code": -1000, "msg": "An unknown error occurred while processing the request."}
_REFUSALS: dict[str, tuple[int, object, bool]] = {
    "429": (429, {"code": -1003, "msg": "Too many requests."}, True),
    "500": (500, _UNKNOWN, False),
    "503": (503, "Service Unavailable", False),
    "reject": (400, {"code": -2010, "msg": "Order was rejected."}, False),
}
"""Faults answered before the engine sees the request: (status, body, Retry-After)."""


class BinanceServer(LocalHttpServer):
    def __init__(
        self,
        candles: dict[str, CandleArrays],
        *,
        balances: dict[str, float] | None = None,
        now_ms: int = 0,
    ) -> None:
        self.candles = candles
        self.faults = FaultPlan()
        self.klines_requests = 0
        self.klines_starts: list[int] = []
        self.paths: list[str] = []
        self.order_requests: list[tuple[str, str, dict[str, str]]] = []
        """(method, path, params) of every signed order request that reached the engine."""
        self.keys: dict[str, str | None] = {GOOD_KEY: None, TRADE_KEY: TRADE_SECRET}
        self.engine = Matching(
            candles, {a: [v, 0.0] for a, v in (balances or {}).items()}, now_ms=now_ms
        )
        self.timeline: list[tuple[float, str, str]] = []
        """(time.perf_counter(), "klines" | "order", symbol or client id): when each klines
        answer left and each order request arrived, for bench/trade_latency.py."""
        self.follow_klines = False
        """The engine's "now" follows the newest minute the client asked klines for."""
        self._lock = threading.Lock()
        super().__init__()
        handler = self._http.RequestHandlerClass

        class Handler(handler):  # type: ignore[misc, valid-type]
            do_POST = handler.do_GET
            do_DELETE = handler.do_GET

        self._http.RequestHandlerClass = Handler

    def inject(self, *faults: str) -> None:
        with self._lock:
            self.faults.queue.extend(faults)

    def inject_orders(self, *faults: str) -> None:
        """Faults for the next order requests (see ORDER_FAULTS), in order."""
        unknown = set(faults) - {*ORDER_FAULTS, "ok"}
        assert not unknown, f"unknown order faults {unknown}"
        with self._lock:
            self.faults.orders.extend(faults)

    def __exit__(self, *exc: object) -> None:
        self.faults.release.set()  # no handler thread outlives the test
        super().__exit__(*exc)

    def inject_reads(self, *faults: str) -> None:
        with self._lock:
            self.faults.reads.extend(faults)

    def advance_to(self, when_ms: int) -> None:
        """The test's clock: move "now", filling resting orders the candles cross."""
        with self._lock:
            self.engine.advance_to(when_ms)

    def _follow(self, rows: list[list[object]], step: int) -> None:
        """With `follow_klines`: the client has seen every candle up to the last row
        sent, so the minute after it is "now"."""
        if not self.follow_klines or not rows:
            return
        when_ms = int(str(rows[-1][0])) + step
        with self._lock:
            if when_ms > self.engine.now_ms:
                self.engine.advance_to(when_ms)

    def balance(self, asset: str) -> tuple[float, float]:
        with self._lock:
            free, locked = self.engine.balances.get(asset, [0.0, 0.0])
            return free, locked

    def server_ms(self) -> int:
        return int(time.time() * 1000) + self.faults.clock_skew_ms

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(request.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        with self._lock:
            self.paths.append(parsed.path)
        routes = {
            "/api/v3/exchangeInfo": lambda: (200, self._exchange_info()),
            "/fapi/v1/exchangeInfo": lambda: (200, {"timezone": "UTC", "symbols": []}),
            "/dapi/v1/exchangeInfo": lambda: (200, {"timezone": "UTC", "symbols": []}),
            "/api/v3/time": lambda: (200, {"serverTime": self.server_ms()}),
        }
        if parsed.path == "/api/v3/klines":
            self._klines(request, query)
        elif parsed.path == "/api/v3/depth":
            self._depth(request, query)
        elif parsed.path.startswith(("/sapi/", "/api/v3/")) and parsed.path not in routes:
            self._signed(request, parsed.path, parsed.query)
        elif parsed.path in routes:
            status, body = routes[parsed.path]()
            self._send(request, status, body)
        else:
            self._send(request, 404, {"code": -1, "msg": f"no route {parsed.path}"})

    def _exchange_info(self) -> dict[str, object]:
        return {
            "timezone": "UTC",
            "serverTime": self.server_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [
                _market(
                    s,
                    oco=s not in self.engine.no_oco,
                    min_notional=self.engine.min_notional,
                )
                for s in self.candles
            ],
        }

    def _depth(self, request: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        try:
            with self._lock:
                book = self.engine.depth(query.get("symbol", ""), int(query.get("limit", 100)))
        except ApiError as exc:
            return self._send(request, exc.status, {"code": exc.code, "msg": exc.msg})
        self._send(request, 200, book)

    # --- signed requests ----------------------------------------------------

    def _signed(self, request: BaseHTTPRequestHandler, path: str, raw_query: str) -> None:
        method = request.command
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length).decode() if length else ""
        payload = raw_query if method in ("GET", "DELETE") else body
        params = {k: v[-1] for k, v in parse_qs(payload, keep_blank_values=True).items()}
        try:
            self._verify(request, payload, params)
        except ApiError as exc:
            return self._refuse(request, exc)
        order_call = method in ("POST", "DELETE")
        if method == "POST" and "newClientOrderId" in params:
            with self._lock:
                self.timeline.append((time.perf_counter(), "order", params["newClientOrderId"]))
        fault = self._take_fault(self.faults.orders if order_call else self.faults.reads)
        if fault in _REFUSALS:
            status, answer, headers = _REFUSALS[fault]
            retry = {"Retry-After": str(self.faults.retry_after)} if headers else None
            return self._send(request, status, answer, retry)
        if fault == "lost_before":
            return  # the connection closes with no answer
        if fault == "timeout_before":
            self.faults.release.wait(self.faults.hold_seconds)
        try:
            status, answer = 200, self._route(method, path, params, fault)
        except ApiError as exc:
            status, answer = exc.status, {"code": exc.code, "msg": exc.msg}
        if fault == "lost":
            return
        if fault == "500_after":
            return self._send(request, 500, _UNKNOWN)
        if fault == "timeout":
            self.faults.release.wait(self.faults.hold_seconds)
        self._send(request, status, answer)

    def _take_fault(self, queue: deque[str]) -> str | None:
        with self._lock:
            fault = queue.popleft() if queue else None
        return None if fault == "ok" else fault

    def _verify(
        self, request: BaseHTTPRequestHandler, payload: str, params: dict[str, str]
    ) -> None:
        """What Binance checks, in its order: key format, key, signature, timestamp."""
        key = request.headers.get("X-MBX-APIKEY") or ""
        if not _KEY_FORMAT.match(key):
            raise ApiError(401, -2014, "API-key format invalid.")
        if key not in self.keys:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        secret = self.keys[key]
        if secret is not None:
            unsigned, _, signature = payload.rpartition("&signature=")
            good = hmac.new(secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(good, signature):
                raise ApiError(400, -1022, "Signature for this request is not valid.")
        now = self.server_ms()
        stamp = int(params.get("timestamp") or 0)
        window = int(params.get("recvWindow") or 5000)
        if stamp > now + 1000:
            raise ApiError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if now - stamp > window:
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    def _refuse(self, request: BaseHTTPRequestHandler, exc: ApiError) -> None:
        if self.faults.echo_headers:  # a proxy's refusal that shows what it was sent
            echo = {"msg": "proxy: request refused", "headers": dict(request.headers.items())}
            return self._send(request, 400, echo)
        self._send(request, exc.status, {"code": exc.code, "msg": exc.msg})

    def _route(self, method: str, path: str, params: dict[str, str], fault: str | None) -> Any:
        engine = self.engine
        with self._lock:
            if method in ("POST", "DELETE"):
                self.order_requests.append((method, path, dict(params)))
            if path.startswith("/sapi/"):
                return []  # capital/config/getall, margin pairs: nothing the spot tests need
            if path == "/api/v3/account":
                return engine.account()
            if path == "/api/v3/order":
                return self._order(method, params, fault)
            if path == "/api/v3/openOrders":
                return engine.open_orders(params.get("symbol"))
            if path == "/api/v3/myTrades":
                return engine.my_trades(params)
            if path in ("/api/v3/orderList/oco", "/api/v3/order/oco") and method == "POST":
                return engine.new_oco(params, legacy=path == "/api/v3/order/oco")
            if path == "/api/v3/orderList":
                if method == "DELETE":
                    return engine.cancel_list(params)
                return engine.list_json(engine.find_list(params), reports=False)
        raise ApiError(404, -1, f"no route {method} {path}")

    def _order(self, method: str, params: dict[str, str], fault: str | None) -> Any:
        if method == "POST":
            return self.engine.new_order(params, share=0.5 if fault == "partial" else 1.0)
        if method == "DELETE":
            return self.engine.cancel(params)
        return self.engine.find(params).as_json()

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
        self._follow(rows, step)
        self._send(request, 200, [self._raw(row) for row in rows])
        with self._lock:
            self.timeline.append((time.perf_counter(), "klines", symbol))

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
