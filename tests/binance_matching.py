"""The stand-in Binance's account and matching engine over replayed one-minute candles.

State only, no HTTP: `tests/binance_server.py` turns requests into these calls and
`ApiError`s into Binance's error bodies. Semantics copied from Binance spot:

- the test sets "now" (a minute); the price is the open of the candle at "now";
  `advance_to` walks the candles in between, filling resting orders whose price
  the candle's range crosses (a stop-loss before a take-profit in the same candle);
- market orders fill at once at the price (in `fill_parts` trades, each a little
  worse than the last), fees at the taker rate in the asset received;
- `newClientOrderId` must be unique only among OPEN orders: a resent market order
  whose first copy filled executes again;
- when one OCO leg fills the other becomes EXPIRED; cancelling one leg or the list
  cancels the whole list;
- filters (LOT_SIZE, PRICE_FILTER, NOTIONAL) answer -1013, a short balance -2010.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from btkit.market.arrays import CandleArrays

FEE = 0.001
STEP = 0.001
TICK = 0.000001
MIN_QTY = 0.001
DAY_MS = 86_400_000


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def rejected(msg: str) -> ApiError:
    return ApiError(400, -2010, msg)


def num(value: float) -> str:
    return f"{value:.8f}"


def on_grid(value: float, step: float) -> bool:
    units = value / step
    return abs(units - round(units)) < 1e-6


@dataclass
class Order:
    order_id: int
    symbol: str
    client_id: str
    side: str
    type: str
    qty: float
    price: float
    stop_price: float
    time: int
    status: str = "NEW"
    executed: float = 0.0
    quote: float = 0.0
    update_time: int = 0
    list_id: int = -1
    triggered: bool = False

    @property
    def open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def as_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": self.list_id,
            "clientOrderId": self.client_id,
            "price": num(self.price),
            "origQty": num(self.qty),
            "executedQty": num(self.executed),
            "cummulativeQuoteQty": num(self.quote),
            "status": self.status,
            "timeInForce": "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": num(self.stop_price),
            "icebergQty": num(0.0),
            "time": self.time,
            "updateTime": self.update_time or self.time,
            "isWorking": self.type not in ("STOP_LOSS", "STOP_LOSS_LIMIT") or self.triggered,
            "workingTime": self.time,
            "origQuoteOrderQty": num(0.0),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


@dataclass
class OrderList:
    list_id: int
    symbol: str
    client_id: str
    order_ids: list[int]
    time: int
    status: str = "EXECUTING"
    locked: float = 0.0


@dataclass
class Trade:
    trade_id: int
    order: Order
    price: float
    qty: float
    commission: float
    asset: str
    time: int
    maker: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "symbol": self.order.symbol,
            "id": self.trade_id,
            "orderId": self.order.order_id,
            "orderListId": self.order.list_id,
            "price": num(self.price),
            "qty": num(self.qty),
            "quoteQty": num(self.price * self.qty),
            "commission": num(self.commission),
            "commissionAsset": self.asset,
            "time": self.time,
            "isBuyer": self.order.side == "BUY",
            "isMaker": self.maker,
            "isBestMatch": True,
        }


def _oco_legs(
    params: dict[str, str], *, legacy: bool
) -> tuple[float, float, float, str | None, str | None]:
    """(take-profit price, stop trigger, stop limit price, tp client id, sl client id)."""
    if legacy:
        return (
            float(params.get("price") or 0),
            float(params.get("stopPrice") or 0),
            float(params.get("stopLimitPrice") or 0),
            params.get("limitClientOrderId"),
            params.get("stopClientOrderId"),
        )
    below = params.get("belowType")
    if params.get("aboveType") != "LIMIT_MAKER" or below not in ("STOP_LOSS", "STOP_LOSS_LIMIT"):
        raise ApiError(400, -1013, "Unsupported above/below order types.")
    return (
        float(params.get("abovePrice") or 0),
        float(params.get("belowStopPrice") or 0),
        float(params.get("belowPrice") or 0),
        params.get("aboveClientOrderId"),
        params.get("belowClientOrderId"),
    )


def split_symbol(symbol: str) -> tuple[str, str]:
    for quote in ("USDT", "BTC", "ETH"):
        if symbol.endswith(quote):
            return symbol[: -len(quote)], quote
    raise ApiError(400, -1121, "Invalid symbol.")


@dataclass
class Matching:
    candles: dict[str, CandleArrays]
    balances: dict[str, list[float]] = field(default_factory=dict)
    """Asset -> [free, locked]."""
    now_ms: int = 0
    min_notional: float = 0.0001
    fill_parts: int = 1
    """Trades per market order."""
    no_oco: set[str] = field(default_factory=set)
    orders: dict[int, Order] = field(default_factory=dict)
    lists: dict[int, OrderList] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        if not self.now_ms:
            first = min(int(c.timestamp[0]) for c in self.candles.values())
            self.now_ms = first + 60 * 60_000

    # --- prices -------------------------------------------------------------

    def price(self, symbol: str) -> float:
        series = self._series(symbol)
        index = min(series.index_at(self.now_ms), len(series) - 1)
        return float(series.open[index])

    def _series(self, symbol: str) -> CandleArrays:
        if symbol not in self.candles:
            raise ApiError(400, -1121, "Invalid symbol.")
        return self.candles[symbol]

    def depth(self, symbol: str, limit: int) -> dict[str, Any]:
        """A book synthesised around the price: 0.05 % apart, amounts growing by level."""
        mid = self.price(symbol)
        levels = range(1, min(limit, 5000) + 1)
        return {
            "lastUpdateId": self.now_ms // 60_000,
            "bids": [[num(mid * (1 - 0.0005 * i)), num(0.5 * i)] for i in levels],
            "asks": [[num(mid * (1 + 0.0005 * i)), num(0.5 * i)] for i in levels],
        }

    # --- balances -----------------------------------------------------------

    def _balance(self, asset: str) -> list[float]:
        return self.balances.setdefault(asset, [0.0, 0.0])

    def _lock(self, asset: str, amount: float) -> None:
        balance = self._balance(asset)
        if balance[0] + 1e-12 < amount:
            raise rejected("Account has insufficient balance for requested action.")
        balance[0] -= amount
        balance[1] += amount

    def _unlock(self, asset: str, amount: float) -> None:
        balance = self._balance(asset)
        balance[1] -= amount
        balance[0] += amount

    def account(self) -> dict[str, Any]:
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "commissionRates": {"maker": num(FEE), "taker": num(FEE), "buyer": "0", "seller": "0"},
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "accountType": "SPOT",
            "updateTime": self.now_ms,
            "balances": [
                {"asset": asset, "free": num(free), "locked": num(locked)}
                for asset, (free, locked) in sorted(self.balances.items())
            ],
            "permissions": ["SPOT"],
        }

    # --- orders -------------------------------------------------------------

    def _check_filters(self, symbol: str, qty: float, price: float, notional_price: float) -> None:
        if qty < MIN_QTY - 1e-12 or not on_grid(qty, STEP):
            raise ApiError(400, -1013, "Filter failure: LOT_SIZE")
        if price and not on_grid(price, TICK):
            raise ApiError(400, -1013, "Filter failure: PRICE_FILTER")
        if qty * notional_price < self.min_notional:
            raise ApiError(400, -1013, "Filter failure: NOTIONAL")

    def _check_client_id(self, client_id: str) -> None:
        if any(o.client_id == client_id and o.open for o in self.orders.values()):
            raise rejected("Duplicate order sent.")

    def new_order(self, params: dict[str, str], *, share: float = 1.0) -> dict[str, Any]:
        """`share` < 1: a market order fills only that part, the rest expires."""
        symbol = params.get("symbol", "")
        self._series(symbol)
        side = params.get("side", "")
        kind = params.get("type", "")
        qty = float(params.get("quantity") or 0)
        price = float(params.get("price") or 0)
        stop = float(params.get("stopPrice") or 0)
        client_id = params.get("newClientOrderId") or f"server-{next(self._ids)}"
        if kind not in ("MARKET", "LIMIT", "LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT"):
            raise ApiError(400, -1116, "Invalid orderType.")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        market = self.price(symbol)
        self._check_filters(symbol, qty, price or stop, price or stop or market)
        self._check_client_id(client_id)
        if kind in ("STOP_LOSS", "STOP_LOSS_LIMIT"):
            if side != "SELL":
                raise ApiError(400, -1013, "This stand-in supports sell stops only.")
            if stop >= market:
                raise rejected("Stop price would trigger immediately.")
        if kind == "LIMIT_MAKER" and (price <= market if side == "SELL" else price >= market):
            raise rejected("Order would immediately match and take.")
        order = self._make(symbol, client_id, side, kind, qty, price, stop)
        self._reserve(order)
        self.orders[order.order_id] = order
        fills: list[Trade] = []
        if kind == "MARKET":
            fills = self._fill_market(order, market, share)
        elif kind == "LIMIT" and (price >= market if side == "BUY" else price <= market):
            fills = self._fill(order, market, order.qty, maker=False)
        return self.order_response(order, fills)

    def _make(
        self,
        symbol: str,
        client_id: str,
        side: str,
        kind: str,
        qty: float,
        price: float,
        stop: float,
    ) -> Order:
        return Order(next(self._ids), symbol, client_id, side, kind, qty, price, stop, self.now_ms)

    def _reserve(self, order: Order) -> None:
        """Lock what a resting order needs; a market order only needs it to be free."""
        base, quote = split_symbol(order.symbol)
        asset, need = (base, order.qty) if order.side == "SELL" else (quote, 0.0)
        if order.side == "BUY":
            worst = 1 + 0.0001 * self.fill_parts
            need = order.qty * (order.price or self.price(order.symbol) * worst)
        if order.type != "MARKET":
            self._lock(asset, need)
        elif self._balance(asset)[0] + 1e-12 < need:
            raise rejected("Account has insufficient balance for requested action.")

    def _release(self, order: Order) -> None:
        """Unlock what an order still holds (its unfilled part)."""
        base, quote = split_symbol(order.symbol)
        rest = order.qty - order.executed
        if order.list_id >= 0:
            return  # a list holds its amount once; released with the list
        if order.side == "SELL":
            self._unlock(base, rest)
        else:
            self._unlock(quote, rest * order.price)

    def _fill_market(self, order: Order, price: float, share: float = 1.0) -> list[Trade]:
        qty = round(order.qty * share / STEP) * STEP
        parts = max(1, min(self.fill_parts, round(qty / STEP)))
        piece = round(qty / parts / STEP) * STEP
        fills: list[Trade] = []
        done = 0.0
        for part in range(parts):
            amount = piece if part < parts - 1 else round((qty - done) / STEP) * STEP
            worse = 1 + 0.0001 * part if order.side == "BUY" else 1 - 0.0001 * part
            fills += self._fill(order, price * worse, amount, maker=False)
            done += amount
        if share < 1.0:
            order.status = "EXPIRED"  # what Binance does with a market order's unfilled rest
        return fills

    def _fill(self, order: Order, price: float, qty: float, *, maker: bool) -> list[Trade]:
        base, quote = split_symbol(order.symbol)
        cost = price * qty
        market = order.type == "MARKET"
        if order.side == "BUY":
            held = 0.0 if market else order.price * qty
            self._balance(quote)[1] -= held
            self._balance(quote)[0] += held - cost  # a better price frees the difference
            commission, asset = qty * FEE, base
            self._balance(base)[0] += qty - commission
        else:
            self._balance(base)[1 if not market else 0] -= qty
            commission, asset = cost * FEE, quote
            self._balance(quote)[0] += cost - commission
        order.executed += qty
        order.quote += cost
        order.update_time = self.now_ms
        order.status = "FILLED" if order.executed >= order.qty - 1e-12 else "PARTIALLY_FILLED"
        trade = Trade(
            len(self.trades) + 1, order, price, qty, commission, asset, self.now_ms, maker
        )
        self.trades.append(trade)
        return [trade]

    def order_response(self, order: Order, fills: list[Trade]) -> dict[str, Any]:
        return {
            **order.as_json(),
            "transactTime": order.update_time or order.time,
            "fills": [
                {
                    "price": num(t.price),
                    "qty": num(t.qty),
                    "commission": num(t.commission),
                    "commissionAsset": t.asset,
                    "tradeId": t.trade_id,
                }
                for t in fills
            ],
        }

    def find(self, params: dict[str, str]) -> Order:
        symbol = params.get("symbol", "")
        client_id = params.get("origClientOrderId")
        order_id = params.get("orderId")
        matches = [
            o
            for o in self.orders.values()
            if o.symbol == symbol
            and (client_id is None or o.client_id == client_id)
            and (order_id is None or str(o.order_id) == order_id)
        ]
        if not matches or (client_id is None and order_id is None):
            raise ApiError(400, -2013, "Order does not exist.")
        return matches[-1]  # Binance answers the newest order of a reused client id

    def cancel(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            order = self.find(params)
        except ApiError:
            raise ApiError(400, -2011, "Unknown order sent.") from None
        if not order.open:
            raise ApiError(400, -2011, "Unknown order sent.")
        if order.list_id >= 0:
            return self.cancel_list({"orderListId": str(order.list_id), "symbol": order.symbol})
        self._release(order)
        order.status = "CANCELED"
        order.update_time = self.now_ms
        return order.as_json()

    def open_orders(self, symbol: str | None) -> list[dict[str, Any]]:
        return [
            o.as_json()
            for o in self.orders.values()
            if o.open and (symbol is None or o.symbol == symbol)
        ]

    def my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """Binance's paging: `fromId` onwards; else `startTime` (and `endTime`, at most
        24 hours later: only `startTime` gives the next 24 hours); else the newest."""
        symbol = params.get("symbol", "")
        order_id = params.get("orderId")
        limit = min(int(params.get("limit") or 500), 1000)
        rows = [
            t
            for t in self.trades
            if t.order.symbol == symbol and (order_id is None or str(t.order.order_id) == order_id)
        ]
        if params.get("fromId"):
            rows = [t for t in rows if t.trade_id >= int(params["fromId"])][:limit]
        elif params.get("startTime"):
            start = int(params["startTime"])
            end = min(int(params.get("endTime") or 2**62), start + DAY_MS)
            rows = [t for t in rows if start <= t.time <= end][:limit]
        else:
            rows = rows[-limit:]
        return [t.as_json() for t in rows]

    # --- OCO ----------------------------------------------------------------

    def new_oco(self, params: dict[str, str], *, legacy: bool) -> dict[str, Any]:
        """A sell OCO: a LIMIT_MAKER above the price and a STOP_LOSS(_LIMIT) below it.

        `legacy`: the old /api/v3/order/oco names (price, stopPrice, stopLimitPrice,
        limitClientOrderId, stopClientOrderId); else /api/v3/orderList/oco's above/below.
        """
        symbol = params.get("symbol", "")
        self._series(symbol)
        if symbol in self.no_oco:
            raise ApiError(400, -1013, "OCO orders are not supported for this symbol.")
        if params.get("side") != "SELL":
            raise ApiError(400, -1013, "This stand-in supports sell OCO lists only.")
        qty = float(params.get("quantity") or 0)
        tp_price, sl_stop, sl_price, tp_id, sl_id = _oco_legs(params, legacy=legacy)
        market = self.price(symbol)
        for price in (tp_price, sl_stop, sl_price):
            if price:
                self._check_filters(symbol, qty, price, price)
        if not tp_price or not sl_stop:
            raise ApiError(400, -1102, "Mandatory parameter was not sent.")
        if tp_price <= market:
            raise rejected("Order would immediately match and take.")
        if sl_stop >= market:
            raise rejected("Stop price would trigger immediately.")
        list_client = params.get("listClientOrderId") or f"server-list-{next(self._ids)}"
        tp_id = tp_id or f"server-{next(self._ids)}"
        sl_id = sl_id or f"server-{next(self._ids)}"
        for client_id in (tp_id, sl_id):
            self._check_client_id(client_id)
        base, _ = split_symbol(symbol)
        self._lock(base, qty)
        list_id = next(self._ids)
        sl_type = "STOP_LOSS_LIMIT" if sl_price else "STOP_LOSS"
        stop_leg = self._make(symbol, sl_id, "SELL", sl_type, qty, sl_price, sl_stop)
        limit_leg = self._make(symbol, tp_id, "SELL", "LIMIT_MAKER", qty, tp_price, 0.0)
        for leg in (stop_leg, limit_leg):
            leg.list_id = list_id
            self.orders[leg.order_id] = leg
        self.lists[list_id] = OrderList(
            list_id, symbol, list_client, [stop_leg.order_id, limit_leg.order_id], self.now_ms
        )
        self.lists[list_id].locked = qty
        return self.list_json(self.lists[list_id], reports=True)

    def list_json(self, order_list: OrderList, *, reports: bool) -> dict[str, Any]:
        legs = [self.orders[i] for i in order_list.order_ids]
        body: dict[str, Any] = {
            "orderListId": order_list.list_id,
            "contingencyType": "OCO",
            "listStatusType": "EXEC_STARTED" if order_list.status == "EXECUTING" else "ALL_DONE",
            "listOrderStatus": order_list.status,
            "listClientOrderId": order_list.client_id,
            "transactionTime": order_list.time,
            "symbol": order_list.symbol,
            "orders": [
                {"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_id}
                for o in legs
            ],
        }
        if reports:
            body["orderReports"] = [o.as_json() for o in legs]
        return body

    def find_list(self, params: dict[str, str]) -> OrderList:
        list_id = params.get("orderListId")
        client_id = params.get("origClientOrderId") or params.get("listClientOrderId")
        matches = [
            item
            for item in self.lists.values()
            if (list_id is not None and str(item.list_id) == list_id)
            or (client_id is not None and item.client_id == client_id)
        ]
        if not matches:
            raise ApiError(400, -2013, "Order list does not exist.")
        return matches[-1]

    def cancel_list(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            order_list = self.find_list(params)
        except ApiError:
            raise ApiError(400, -2011, "Unknown order list sent.") from None
        if order_list.status != "EXECUTING":
            raise ApiError(400, -2011, "Unknown order list sent.")
        self._close_list(order_list, "CANCELED")
        return self.list_json(order_list, reports=True)

    def _close_list(self, order_list: OrderList, leftover: str) -> None:
        base, _ = split_symbol(order_list.symbol)
        filled = sum(self.orders[i].executed for i in order_list.order_ids)
        self._unlock(base, order_list.locked - filled)
        order_list.locked = 0.0
        for i in order_list.order_ids:
            leg = self.orders[i]
            if leg.open:
                leg.status = leftover
                leg.update_time = self.now_ms
        order_list.status = "ALL_DONE"

    # --- time ---------------------------------------------------------------

    def advance_to(self, when_ms: int) -> None:
        """Move "now" to `when_ms`, filling resting orders the candles in between cross."""
        start = self.now_ms  # _cross moves now_ms: every symbol walks from the same start
        for symbol, series in self.candles.items():
            window = series.between(start, when_ms)
            for t, high, low in zip(
                window.timestamp.tolist(), window.high.tolist(), window.low.tolist(), strict=True
            ):
                self._cross(symbol, int(t), float(high), float(low))
        self.now_ms = when_ms

    def _cross(self, symbol: str, when: int, high: float, low: float) -> None:
        self.now_ms = when
        resting = sorted(
            (o for o in self.orders.values() if o.symbol == symbol and o.open),
            key=lambda o: (o.type != "STOP_LOSS_LIMIT" and o.type != "STOP_LOSS", o.order_id),
        )
        for order in resting:
            if not order.open:
                continue  # its list expired it earlier in this candle
            price = self._touch(order, high, low)
            if price is None:
                continue
            if order.list_id >= 0:
                order_list = self.lists[order.list_id]
                self._fill(order, price, order.qty - order.executed, maker=True)
                self._close_list(order_list, "EXPIRED")
            else:
                self._fill(order, price, order.qty - order.executed, maker=True)

    @staticmethod
    def _touch(order: Order, high: float, low: float) -> float | None:
        if order.type in ("STOP_LOSS", "STOP_LOSS_LIMIT") and not order.triggered:
            if low > order.stop_price:
                return None
            order.triggered = True
            if order.type == "STOP_LOSS":
                return order.stop_price
        if order.side == "SELL":
            return order.price if high >= order.price else None
        return order.price if low <= order.price else None
