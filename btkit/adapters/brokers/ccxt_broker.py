"""Real orders through ccxt (spot): the `Broker` port on a real exchange.

Writes (place, cancel, protect) are sent once. Whatever may have reached the
exchange without a clear answer (timeout, lost connection, 5xx, 429) becomes
`OrderUncertainError`: the caller looks the order up by its client id before it
sends anything again, because Binance accepts a reused `newClientOrderId` once
the first order is no longer open, so a blind resend of a filled market order
buys twice. Reads (rules, balances, find, open orders, fills) are retried with
backoff like every other exchange call (`with_retries`).

Take-profit and stop-loss rest as one OCO list through ccxt's implicit Binance
API (`privatePostOrderListOco`, `privateGetOrderList`, `privateDeleteOrderList`):
ccxt has no unified OCO for Binance spot. Where a market has no OCO, the
stop-loss rests alone. Secrets never reach a message: every error text is
redacted here, before any caller or log sees it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from btkit.adapters.exchanges.ccxt_exchange import (
    CcxtOptions,
    ccxt_client,
    transient_generic,
    translated_errors,
)
from btkit.adapters.exchanges.market_rules import market_rules
from btkit.adapters.exchanges.markets import MarketIndex
from btkit.adapters.exchanges.retry import with_retries
from btkit.domain.errors import (
    InsufficientFundsError,
    OrderRejectedError,
    OrderUncertainError,
    PermanentExchangeError,
    PriceCrossedError,
    TransientExchangeError,
)
from btkit.domain.orders import (
    CLIENT_ID_PREFIX,
    Balance,
    Fill,
    MarketRules,
    OrderRequest,
    OrderRole,
    OrderSide,
    OrderState,
    OrderStatus,
    OrderType,
    ProtectionRequest,
    ProtectionState,
    TradeMode,
)

log = logging.getLogger(__name__)

STOP_LIMIT_SLACK = 0.005
"""A stop-loss-limit sells no lower than this fraction under its trigger: room for the
price to fall through while it fills, without selling at any price in a crash."""
TRADE_PAGE = 1000

_ROLE_OF_CODE: dict[str, OrderRole] = {
    "e": "entry",
    "x": "exit",
    "t": "take_profit",
    "s": "stop_loss",
}
_TYPES: dict[str, OrderType] = {
    "market": "market",
    "limit": "limit",
    "limit_maker": "limit_maker",
    "stop_loss_limit": "stop_loss_limit",
    "stop_loss": "stop_loss_limit",
}
_STATUSES: dict[str, OrderStatus] = {
    "open": "open",
    "closed": "closed",
    "canceled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
}
_SIGNATURE = re.compile(r"(signature|timestamp)=[^&\s'\"]+", re.IGNORECASE)


def role_of(client_id: str | None, side: str) -> OrderRole:
    """The role btkit gave an order (from its client id); a user's own order counts as
    an entry when it buys and an exit when it sells."""
    parts = (client_id or "").split("-")
    if len(parts) == 3 and parts[0] == CLIENT_ID_PREFIX and parts[1] in _ROLE_OF_CODE:
        return _ROLE_OF_CODE[parts[1]]
    return "entry" if side == "buy" else "exit"


def leg_client_id(list_client_id: str, role: OrderRole) -> str:
    """A protection leg's id from its list's id: both carry the same signal digest."""
    prefix, _, digest = list_client_id.split("-", 2)
    code = next(c for c, r in _ROLE_OF_CODE.items() if r == role)
    return f"{prefix}-{code}-{digest}"


class CcxtBroker:
    """Spot orders on a ccxt exchange; symbols are btkit's market names (`BTCUSDT`)."""

    mode: TradeMode = "live"

    def __init__(
        self,
        exchange_id: str,
        options: CcxtOptions,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = exchange_id
        self._options = options
        self._sleep = sleep
        # Spot only: no futures market lists to load (and none of their requests).
        self._client: Any = ccxt_client(
            exchange_id, options, {"options": {"fetchMarkets": {"types": ["spot"]}}}
        )
        credentials = options.credentials
        self._secrets = [
            s
            for s in (
                credentials.api_key if credentials else None,
                credentials.secret if credentials else None,
                credentials.password if credentials else None,
            )
            if s
        ]
        self._markets: MarketIndex | None = None
        self._loading = asyncio.Lock()
        self._client_ids: dict[str, str] = {}
        """Exchange order id -> client id (trades carry only the former)."""

    # --- plumbing -----------------------------------------------------------

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _SIGNATURE.sub(r"\1=***", text)

    async def _read(self, what: str, action: Callable[[], Awaitable[Any]]) -> Any:
        """A read: retried on transient errors (429 honours Retry-After)."""

        async def attempt() -> Any:
            try:
                with translated_errors(self.name, self._client):
                    return await action()
            except PermanentExchangeError as exc:
                raise PermanentExchangeError(self._redact(str(exc))) from None
            except TransientExchangeError as exc:
                raise TransientExchangeError(
                    self._redact(str(exc)), retry_after=exc.retry_after
                ) from None

        return await with_retries(
            attempt, policy=self._options.retry, sleep=self._sleep, what=f"{self.name} {what}"
        )

    async def _find_raw(self, what: str, action: Callable[[], Awaitable[Any]]) -> Any:
        """A read whose "no such order" answer means None."""
        import ccxt

        async def guarded() -> Any:
            try:
                return await action()
            except ccxt.OrderNotFound:
                return None

        return await self._read(what, guarded)

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Map a write's errors: sure refusals, and answers that leave it uncertain."""
        import ccxt

        try:
            yield
        except ccxt.InsufficientFunds as exc:
            raise InsufficientFundsError(self._says(what, "insufficient balance", exc)) from None
        except ccxt.OrderImmediatelyFillable as exc:
            raise PriceCrossedError(self._says(what, "the price is already past it", exc)) from None
        except (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended) as exc:
            raise PermanentExchangeError(
                f"{self.name} refused the API credentials for {what} ({type(exc).__name__}). "
                f"Check BTKIT_CREDENTIALS__{self.name.upper()}__API_KEY / __SECRET and the "
                "key's trading permission."
            ) from None
        except ccxt.OperationFailed as exc:  # network, timeout, 5xx, 429, garbled answer
            raise OrderUncertainError(
                self._says(what, "no clear answer, the order may exist", exc)
                + " Look it up by its client id before sending it again."
            ) from None
        except ccxt.OrderNotFound:
            raise
        except ccxt.BaseError as exc:
            if transient_generic(self.name, exc):  # a connection that broke mid-answer
                raise OrderUncertainError(
                    self._says(what, "the connection broke, the order may exist", exc)
                ) from None
            raise OrderRejectedError(self._says(what, "refused", exc)) from None

    def _says(self, what: str, summary: str, exc: BaseException) -> str:
        return self._redact(f"{self.name} {what}: {summary} ({type(exc).__name__}: {exc})")

    async def _ready(self) -> MarketIndex:
        """Markets loaded once; with keys, the clock synced first (ccxt's load_markets
        makes signed `sapi` calls, which a skewed clock would get refused)."""
        async with self._loading:
            if self._markets is None:
                if self._options.credentials is not None:
                    await self._read("load_time_difference", self._client.load_time_difference)
                markets = await self._read("load_markets", self._client.load_markets)
                self._markets = MarketIndex(self.name, markets)
            return self._markets

    async def _market(self, symbol: str) -> dict[str, Any]:
        index = await self._ready()
        try:
            return dict(index.market(index.resolve(symbol)))
        except KeyError:
            raise PermanentExchangeError(f"{self.name} has no market {symbol!r}.") from None

    # --- conversions --------------------------------------------------------

    def _fee_in_quote(
        self, market: dict[str, Any], fees: list[dict[str, Any]], price: float
    ) -> float:
        total = 0.0
        for fee in fees:
            cost = float(fee.get("cost") or 0.0)
            currency = fee.get("currency")
            if not cost:
                continue
            if currency == market["quote"]:
                total += cost
            elif currency == market["base"]:
                total += cost * price
            else:
                log.warning(
                    "%s charged a fee of %s %s on %s: not counted in quote currency",
                    self.name,
                    cost,
                    currency,
                    market["symbol"],
                )
        return total

    def _state(
        self,
        market: dict[str, Any],
        order: dict[str, Any],
        *,
        fee: float = 0.0,
        list_client_id: str | None = None,
    ) -> OrderState:
        client_id = str(order.get("clientOrderId") or "")
        side: OrderSide = "buy" if order.get("side") == "buy" else "sell"
        if order.get("id") and client_id:
            self._client_ids[str(order["id"])] = client_id
        status = _STATUSES.get(str(order.get("status")), "open")
        info = order.get("info") or {}
        kind = str(info.get("type") or order.get("type") or "limit").lower()
        stamp = (
            order.get("lastUpdateTimestamp")
            or order.get("lastTradeTimestamp")
            or order.get("timestamp")
            or 0
        )
        return OrderState(
            client_id=client_id,
            symbol=str(market["id"]),
            side=side,
            type=_TYPES.get(kind, "limit"),
            role=role_of(client_id, side),
            status=status,
            amount=float(order.get("amount") or 0.0),
            filled=float(order.get("filled") or 0.0),
            average=float(order["average"]) if order.get("average") else None,
            fee=fee,
            timestamp=int(stamp),
            exchange_id=str(order["id"]) if order.get("id") is not None else None,
            price=float(order["price"]) if order.get("price") else None,
            stop_price=float(order["triggerPrice"]) if order.get("triggerPrice") else None,
            list_client_id=list_client_id,
            message="" if status in ("open", "closed") else str(info.get("status") or ""),
        )

    async def _complete(
        self, market: dict[str, Any], order: dict[str, Any], *, list_client_id: str | None = None
    ) -> OrderState:
        """The order's state with its fees in quote: from the answer's own fills when it
        has them (a FULL response), else from the account's trades of that order."""
        fee = 0.0
        if float(order.get("filled") or 0.0) > 0:
            trades = order.get("trades") or await self._read(
                f"fetch_my_trades {market['id']} order {order.get('id')}",
                functools.partial(
                    self._client.fetch_my_trades,
                    market["symbol"],
                    None,
                    None,
                    {"orderId": order.get("id")},
                ),
            )
            fee = sum(
                self._fee_in_quote(market, [t.get("fee") or {}], float(t["price"])) for t in trades
            )
        return self._state(market, order, fee=fee, list_client_id=list_client_id)

    # --- the port -----------------------------------------------------------

    async def rules(self, symbol: str) -> MarketRules:
        market = await self._market(symbol)
        return market_rules(market, int(self._client.precisionMode), oco_api=self._oco_api)

    @property
    def _oco_api(self) -> bool:
        return hasattr(self._client, "private_post_orderlist_oco")

    async def balances(self) -> dict[str, Balance]:
        await self._ready()
        raw = await self._read("fetch_balance", self._client.fetch_balance)
        free, total = raw.get("free") or {}, raw.get("total") or {}
        return {
            code: Balance(float(free.get(code) or 0.0), float(amount or 0.0))
            for code, amount in total.items()
        }

    async def place(self, request: OrderRequest) -> OrderState:
        market = await self._market(request.symbol)
        params: dict[str, Any] = {"newClientOrderId": request.client_id}
        kind, price = "market", None
        if request.type == "limit":
            kind, price = "limit", request.price
        elif request.type == "limit_maker":
            kind, price, params["postOnly"] = "limit", request.price, True
        elif request.type == "stop_loss_limit":
            kind, price, params["stopLossPrice"] = "limit", request.price, request.stop_price
        what = f"{request.side} {request.type} {request.symbol} ({request.client_id})"
        with self._writing(what):
            order = await self._client.create_order(
                market["symbol"], kind, request.side, request.amount, price, params
            )
        return await self._complete(market, order)

    async def find(self, symbol: str, client_id: str) -> OrderState | None:
        market = await self._market(symbol)
        order = await self._find_raw(
            f"fetch_order {symbol} {client_id}",
            functools.partial(
                self._client.fetch_order, None, market["symbol"], {"origClientOrderId": client_id}
            ),
        )
        return None if order is None else await self._complete(market, order)

    async def cancel(self, symbol: str, client_id: str) -> OrderState | None:
        """Cancel by client id. Binance answers a leg of an OCO list in list shape (the
        whole list is cancelled); the leg's report is picked out of it."""
        import ccxt

        market = await self._market(symbol)
        try:
            with self._writing(f"cancel {symbol} {client_id}"):
                raw = await self._client.private_delete_order(
                    {"symbol": market["id"], "origClientOrderId": client_id}
                )
        except ccxt.OrderNotFound:  # gone already (filled, cancelled) or never there
            return await self.find(symbol, client_id)
        reports = raw.get("orderReports") if isinstance(raw, dict) else None
        list_client_id = None
        if reports:
            list_client_id = raw.get("listClientOrderId")
            raw = next((r for r in reports if r.get("clientOrderId") == client_id), reports[0])
        order = self._client.parse_order(raw, market)
        return await self._complete(market, order, list_client_id=list_client_id)

    async def protect(self, request: ProtectionRequest) -> ProtectionState:
        market = await self._market(request.symbol)
        rules = await self.rules(request.symbol)
        client = self._client
        stop = float(client.price_to_precision(market["symbol"], request.stop_loss))
        floor = math.floor(stop * (1 - STOP_LIMIT_SLACK) / (rules.price_step or 1e-12))
        stop_limit = client.price_to_precision(
            market["symbol"], floor * rules.price_step if rules.price_step else stop
        )
        amount = client.amount_to_precision(market["symbol"], request.amount)
        what = f"protect {request.symbol} ({request.list_client_id})"
        if not rules.has_oco:
            leg = OrderRequest(
                signal_id=request.signal_id,
                role="stop_loss",
                symbol=request.symbol,
                side="sell",
                type="stop_loss_limit",
                amount=float(amount),
                client_id=leg_client_id(request.list_client_id, "stop_loss"),
                price=float(stop_limit),
                stop_price=stop,
            )
            state = await self.place(leg)
            return self._single(request.list_client_id, market, state)
        params = {
            "symbol": market["id"],
            "side": "SELL",
            "quantity": amount,
            "listClientOrderId": request.list_client_id,
            "aboveType": "LIMIT_MAKER",
            "abovePrice": client.price_to_precision(market["symbol"], request.take_profit),
            "aboveClientOrderId": leg_client_id(request.list_client_id, "take_profit"),
            "belowType": "STOP_LOSS_LIMIT",
            "belowStopPrice": client.price_to_precision(market["symbol"], stop),
            "belowPrice": stop_limit,
            "belowTimeInForce": "GTC",
            "belowClientOrderId": leg_client_id(request.list_client_id, "stop_loss"),
            "newOrderRespType": "FULL",
        }
        with self._writing(what):
            raw = await client.private_post_orderlist_oco(params)
        return await self._list_state(market, raw)

    def _single(
        self, list_client_id: str, market: dict[str, Any], leg: OrderState
    ) -> ProtectionState:
        status: Literal["open", "done", "canceled"] = (
            "open" if not leg.final else "done" if leg.filled > 0 else "canceled"
        )
        return ProtectionState(list_client_id, str(market["id"]), status, (leg,))

    async def _list_state(self, market: dict[str, Any], raw: dict[str, Any]) -> ProtectionState:
        list_client_id = str(raw.get("listClientOrderId") or "")
        reports = raw.get("orderReports")
        if reports:
            orders = [self._client.parse_order(r, market) for r in reports]
        else:
            orders = [
                await self._find_raw(
                    f"fetch_order {market['id']} {leg.get('clientOrderId')}",
                    functools.partial(
                        self._client.fetch_order,
                        None,
                        market["symbol"],
                        {"origClientOrderId": leg.get("clientOrderId")},
                    ),
                )
                for leg in raw.get("orders") or []
            ]
        legs = tuple(
            [
                await self._complete(market, o, list_client_id=list_client_id)
                for o in orders
                if o is not None
            ]
        )
        executing = raw.get("listOrderStatus") == "EXECUTING" and any(not leg.final for leg in legs)
        status: Literal["open", "done", "canceled"] = (
            "open" if executing else "done" if any(leg.filled > 0 for leg in legs) else "canceled"
        )
        return ProtectionState(list_client_id, str(market["id"]), status, legs)

    async def find_protection(self, symbol: str, list_client_id: str) -> ProtectionState | None:
        market = await self._market(symbol)
        if not (await self.rules(symbol)).has_oco:
            leg = await self.find(symbol, leg_client_id(list_client_id, "stop_loss"))
            return None if leg is None else self._single(list_client_id, market, leg)
        raw = await self._find_raw(
            f"fetch order list {symbol} {list_client_id}",
            functools.partial(
                self._client.private_get_orderlist, {"origClientOrderId": list_client_id}
            ),
        )
        return None if raw is None else await self._list_state(market, raw)

    async def cancel_protection(self, symbol: str, list_client_id: str) -> ProtectionState | None:
        import ccxt

        market = await self._market(symbol)
        if not (await self.rules(symbol)).has_oco:
            leg = await self.cancel(symbol, leg_client_id(list_client_id, "stop_loss"))
            return None if leg is None else self._single(list_client_id, market, leg)
        try:
            with self._writing(f"cancel order list {symbol} {list_client_id}"):
                raw = await self._client.private_delete_orderlist(
                    {"symbol": market["id"], "listClientOrderId": list_client_id}
                )
        except ccxt.OrderNotFound:  # done (a leg filled), cancelled before, or never there
            return await self.find_protection(symbol, list_client_id)
        return await self._list_state(market, raw)

    async def open_orders(self, symbol: str) -> list[OrderState]:
        market = await self._market(symbol)
        orders = await self._read(
            f"fetch_open_orders {symbol}",
            functools.partial(self._client.fetch_open_orders, market["symbol"]),
        )
        return [await self._complete(market, o) for o in orders]

    async def fills(self, symbol: str, since_ms: int) -> list[Fill]:
        """Newest page first, then back by trade id until a trade precedes `since_ms`:
        Binance answers a bare `startTime` with only the 24 hours after it."""
        market = await self._market(symbol)

        async def page(params: dict[str, Any]) -> list[dict[str, Any]]:
            rows = await self._read(
                f"fetch_my_trades {symbol}",
                functools.partial(
                    self._client.fetch_my_trades, market["symbol"], None, TRADE_PAGE, params
                ),
            )
            return sorted(rows, key=lambda t: int(t["id"]))

        trades = await page({})
        while len(trades) >= TRADE_PAGE and int(trades[0]["timestamp"]) >= since_ms:
            first = int(trades[0]["id"])
            if first <= 0:
                break
            older = await page({"fromId": max(first - TRADE_PAGE, 0)})
            older = [t for t in older if int(t["id"]) < first]
            if not older:
                break
            trades = older + trades
        return [await self._fill(market, t) for t in trades if int(t["timestamp"]) >= since_ms]

    async def _fill(self, market: dict[str, Any], trade: dict[str, Any]) -> Fill:
        order_id = str(trade.get("order") or "")
        client_id = self._client_ids.get(order_id)
        if client_id is None and order_id:
            order = await self._find_raw(
                f"fetch_order {market['id']} {order_id}",
                functools.partial(self._client.fetch_order, order_id, market["symbol"]),
            )
            client_id = str((order or {}).get("clientOrderId") or "")
            self._client_ids[order_id] = client_id
        price = float(trade["price"])
        fee = trade.get("fee") or {}
        amount = float(trade["amount"])
        if trade.get("side") == "buy" and fee.get("currency") == market["base"]:
            # Binance takes a buy's fee in the bought asset: the account holds the rest,
            # and that is what can be protected and sold (the fee is still counted in quote)
            amount -= float(fee.get("cost") or 0.0)
        return Fill(
            trade_id=str(trade["id"]),
            client_id=client_id or "",
            symbol=str(market["id"]),
            side="buy" if trade.get("side") == "buy" else "sell",
            amount=amount,
            price=price,
            fee=self._fee_in_quote(market, [trade.get("fee") or {}], price),
            timestamp=int(trade["timestamp"]),
            exchange_order_id=order_id or None,
        )

    async def close(self) -> None:
        await self._client.close()
