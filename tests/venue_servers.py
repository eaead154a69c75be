"""Local servers that speak the public REST APIs of OKX and Bybit, as ccxt reads them.

Built from ccxt's own parsing code (`ccxt/async_support/okx.py` and `bybit.py`):
the instrument lists `load_markets` asks for and the candle endpoints
`fetch_ohlcv` calls, with each exchange's quirks that btkit must survive:

- OKX pages hold at most 300 candles, newest first, strictly between `before`
  and `after`; errors come with HTTP 200 and a non-zero `code`.
- Bybit pages hold at most 1000 candles, newest first: given only `start`, it
  answers the *newest* `limit` candles after it; errors come with HTTP 200 and
  a non-zero `retCode` (10016 "System error. Please try again later.").
- Bybit lists `ETHBTC` twice: the spot market and the ETH/BTC:BTC perpetual,
  whose prices differ.

The real ccxt client is pointed here with BTKIT_EXCHANGE_URL. Candles come from
real candle files. Bound to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

from btkit.domain.model import Candle
from btkit.market.arrays import CandleArrays, aggregate
from tests.local_http import LocalHttpServer

Query = dict[str, str]
Answer = tuple[int, object]

OKX_BARS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "1H": 3_600_000}
BYBIT_INTERVALS = {"1": 60_000, "3": 180_000, "5": 300_000, "15": 900_000, "60": 3_600_000}


def _window(series: CandleArrays, step: int, low: int, high: int) -> list[Candle]:
    """Candles (of `step`) opening in [low, high], oldest first."""
    minutes = series.between(low - low % step, high + 1)
    if step != 60_000:
        minutes = aggregate(minutes, step)
    return [c for c in minutes.to_candles() if low <= c.timestamp <= high]


def scaled(series: CandleArrays, factor: float) -> CandleArrays:
    """The same minutes at other prices (a derivative quoting near the spot market)."""
    return CandleArrays(
        series.timestamp,
        series.open * factor,
        series.high * factor,
        series.low * factor,
        series.close * factor,
        series.volume,
    )


class StandInServer(LocalHttpServer):
    """HTTP plumbing shared by the stand-ins: routes, a fault queue, request log."""

    candle_path = ""

    def __init__(self) -> None:
        self.faults: deque[str] = deque()
        self.candle_queries: list[Query] = []
        self._lock = threading.Lock()
        super().__init__()

    def inject(self, *faults: str) -> None:
        """Faults for the next candle requests ("ok" lets one through)."""
        with self._lock:
            self.faults.extend(faults)

    def routes(self) -> dict[str, Callable[[Query], Answer]]:
        raise NotImplementedError

    def fault_answer(self, fault: str) -> Answer:
        raise NotImplementedError

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(request.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        route = self.routes().get(parsed.path)
        if route is None:
            return self._send(request, 404, {"msg": f"no route {parsed.path}"})
        if parsed.path.endswith(self.candle_path):
            with self._lock:
                self.candle_queries.append(query)
                fault = self.faults.popleft() if self.faults else None
            if fault is not None and fault != "ok":
                return self._send(request, *self.fault_answer(fault))
        status, body = route(query)
        self._send(request, status, body)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: object) -> None:
        payload = (body if isinstance(body, str) else json.dumps(body)).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass


class OkxServer(StandInServer):
    """OKX v5: instruments by type, candles newest first, 300 a page."""

    candle_path = "candles"
    page_cap = 300

    def __init__(self, spot: dict[str, CandleArrays]) -> None:
        super().__init__()
        self.spot = spot
        """instId (`ETH-BTC`) -> 1m candles."""

    def routes(self) -> dict[str, Callable[[Query], Answer]]:
        return {
            "/api/v5/public/instruments": self._instruments,
            "/api/v5/market/candles": self._candles,
            "/api/v5/market/history-candles": self._candles,
        }

    def fault_answer(self, fault: str) -> Answer:
        if fault == "busy":  # ccxt maps 50013 to ExchangeNotAvailable
            return 200, {
                "code": "50013",
                "msg": "System is busy, please try again later",
                "data": [],
            }
        if fault == "empty-body":
            return 200, ""
        raise ValueError(fault)

    def _instruments(self, query: Query) -> Answer:
        if query.get("instType") != "SPOT":
            return 200, {"code": "0", "msg": "", "data": []}
        data = []
        for inst_id in self.spot:
            base, quote = inst_id.split("-")
            data.append(
                {
                    "alias": "",
                    "baseCcy": base,
                    "category": "1",
                    "ctMult": "",
                    "ctType": "",
                    "ctVal": "",
                    "ctValCcy": "",
                    "expTime": "",
                    "instId": inst_id,
                    "instType": "SPOT",
                    "lever": "10",
                    "listTime": "1548133413000",
                    "lotSz": "0.000001",
                    "maxMktSz": "1000000",
                    "minSz": "0.0001",
                    "optType": "",
                    "quoteCcy": quote,
                    "settleCcy": "",
                    "state": "live",
                    "stk": "",
                    "tickSz": "0.00000001",
                    "uly": "",
                }
            )
        return 200, {"code": "0", "msg": "", "data": data}

    def _candles(self, query: Query) -> Answer:
        inst_id = query.get("instId", "")
        if inst_id not in self.spot:
            return 200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
        step = OKX_BARS[query.get("bar", "1m").removesuffix("utc")]
        limit = min(int(query.get("limit", 100)), self.page_cap)
        before = int(query.get("before", -1))  # exclusive bounds, as OKX documents
        after = int(query.get("after", 2**62))
        rows = _window(self.spot[inst_id], step, before + 1, after - 1)
        newest_first = rows[::-1][:limit]
        data = [
            [
                str(c.timestamp),
                repr(c.open),
                repr(c.high),
                repr(c.low),
                repr(c.close),
                repr(c.volume),
                repr(c.volume),
                repr(c.volume * c.close),
                "1",
            ]
            for c in newest_first
        ]
        return 200, {"code": "0", "msg": "", "data": data}


class BybitServer(StandInServer):
    """Bybit v5: spot and linear instruments, klines newest first, HTTP 200 errors."""

    candle_path = "kline"
    page_cap = 1000

    def __init__(self, spot: dict[str, CandleArrays], linear: dict[str, CandleArrays]) -> None:
        super().__init__()
        self.spot = spot
        self.linear = linear
        """Perpetuals settled in the quote coin; an id may also be a spot id."""

    def routes(self) -> dict[str, Callable[[Query], Answer]]:
        return {
            "/v5/market/instruments-info": self._instruments,
            "/v5/market/kline": self._kline,
        }

    @staticmethod
    def _result(result: object, code: int = 0, message: str = "OK") -> Answer:
        body = {
            "retCode": code,
            "retMsg": message,
            "result": result,
            "retExtInfo": {},
            "time": int(time.time() * 1000),
        }
        return 200, body

    def fault_answer(self, fault: str) -> Answer:
        if fault == "10016":
            return self._result({}, 10016, "System error. Please try again later.")
        raise ValueError(fault)

    def _instruments(self, query: Query) -> Answer:
        category = query.get("category")
        if category == "spot":
            rows = [self._spot_instrument(symbol) for symbol in self.spot]
        elif category == "linear" and query.get("status") != "PreLaunch":
            rows = [self._linear_instrument(symbol) for symbol in self.linear]
        else:
            rows = []
        return self._result({"category": category, "list": rows})

    @staticmethod
    def _coins(symbol: str) -> tuple[str, str]:
        quote = next(q for q in ("USDT", "BTC", "ETH") if symbol.endswith(q))
        return symbol[: -len(quote)], quote

    def _spot_instrument(self, symbol: str) -> dict[str, object]:
        base, quote = self._coins(symbol)
        return {
            "symbol": symbol,
            "baseCoin": base,
            "quoteCoin": quote,
            "innovation": "0",
            "status": "Trading",
            "marginTrading": "none",
            "lotSizeFilter": {
                "basePrecision": "0.0001",
                "quotePrecision": "0.00000001",
                "minOrderQty": "0.0001",
                "maxOrderQty": "10000",
                "minOrderAmt": "0.0001",
                "maxOrderAmt": "100",
            },
            "priceFilter": {"tickSize": "0.00000001"},
        }

    def _linear_instrument(self, symbol: str) -> dict[str, object]:
        base, quote = self._coins(symbol)
        return {
            "symbol": symbol,
            "contractType": "LinearPerpetual",
            "status": "Trading",
            "baseCoin": base,
            "quoteCoin": quote,
            "settleCoin": quote,
            "launchTime": "1585526400000",
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": "8",
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "50", "leverageStep": "0.01"},
            "priceFilter": {
                "minPrice": "0.00000001",
                "maxPrice": "1000",
                "tickSize": "0.00000001",
            },
            "lotSizeFilter": {
                "maxOrderQty": "10000",
                "minOrderQty": "0.01",
                "qtyStep": "0.01",
                "minNotionalValue": "0.0001",
            },
            "unifiedMarginTrade": True,
            "fundingInterval": 480,
        }

    def _kline(self, query: Query) -> Answer:
        category = query.get("category")
        book = self.spot if category == "spot" else self.linear if category == "linear" else {}
        symbol = query.get("symbol", "")
        if symbol not in book:
            return self._result({}, 10001, "params error: symbol invalid")
        step = BYBIT_INTERVALS[query.get("interval", "1")]
        limit = min(int(query.get("limit", 200)), self.page_cap)
        start = int(query.get("start", 0))
        end = int(query.get("end", int(time.time() * 1000)))
        rows = _window(book[symbol], step, start, end)
        newest_first = rows[::-1][:limit]  # only `start`: the newest candles, not the first
        data = [
            [
                str(c.timestamp),
                repr(c.open),
                repr(c.high),
                repr(c.low),
                repr(c.close),
                repr(c.volume),
                repr(c.volume * c.close),
            ]
            for c in newest_first
        ]
        return self._result({"category": category, "symbol": symbol, "list": data})
