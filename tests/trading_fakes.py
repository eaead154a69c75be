"""In-memory fakes of the trading ports: a broker with injectable faults, an order log,
an order book and a scripted Trading. Passed in through constructors, like tests/fakes.py."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

from btkit.domain.errors import InsufficientFundsError, OrderRejectedError, OrderUncertainError
from btkit.domain.model import ClosedResult, OpenSignal
from btkit.domain.orders import (
    Balance,
    Fill,
    MarketRules,
    OrderBook,
    OrderRequest,
    OrderState,
    ProtectionRequest,
    ProtectionState,
    TradeMode,
    TradeReport,
)
from btkit.ports import ExchangeClose

RULES = MarketRules(
    symbol="S",
    base="B",
    quote="Q",
    amount_step=0.001,
    price_step=0.01,
    min_amount=0.001,
    min_notional=10.0,
    taker_fee=0.001,
)


class FakeBroker:
    """Market orders fill at `price`; protection legs fill when `trigger()` is called.

    Faults for the next `place`/`protect`: `"lost"` (executes, then raises
    OrderUncertainError as a lost response would), `"timeout"` (raises before
    executing), `"reject"`, `"insufficient"`, and `"partial"` (fills half).
    """

    name = "fake"
    mode: TradeMode = "paper"

    def __init__(self, price: float = 100.0, balances: dict[str, float] | None = None) -> None:
        self.price = price
        self.now = 0
        self.wallet = dict(balances or {"Q": 10_000.0, "B": 0.0})
        self.orders: dict[str, OrderState] = {}
        self.lists: dict[str, ProtectionState] = {}
        self.trades: list[Fill] = []
        self.faults: list[str] = []
        self.sent: list[str] = []
        """Client ids of every request that reached the 'exchange' (duplicates show)."""
        self._ids = itertools.count(1)

    async def rules(self, symbol: str) -> MarketRules:
        return dataclasses.replace(RULES, symbol=symbol)

    async def balances(self) -> dict[str, Balance]:
        return {code: Balance(free=v, total=v) for code, v in self.wallet.items()}

    def _fault(self) -> str | None:
        return self.faults.pop(0) if self.faults else None

    async def place(self, request: OrderRequest) -> OrderState:
        fault = self._fault()
        if fault == "timeout":
            raise OrderUncertainError(f"timeout placing {request.client_id}")
        if fault == "reject":
            raise OrderRejectedError(f"{request.client_id}: Filter failure: LOT_SIZE")
        cost = request.amount * self.price
        if fault == "insufficient" or (request.side == "buy" and cost > self.wallet["Q"]):
            raise InsufficientFundsError("Account has insufficient balance")
        if request.client_id in self.orders and not self.orders[request.client_id].final:
            raise OrderRejectedError("Duplicate order sent.")
        self.sent.append(request.client_id)
        amount = request.amount / 2 if fault == "partial" else request.amount
        state = self._execute(request, amount)
        if fault == "lost":
            raise OrderUncertainError(f"no response for {request.client_id}")
        return state

    def _execute(self, request: OrderRequest, amount: float) -> OrderState:
        sign = 1.0 if request.side == "buy" else -1.0
        fee = amount * self.price * RULES.taker_fee
        self.wallet["Q"] = self.wallet.get("Q", 0.0) - sign * amount * self.price - fee
        self.wallet["B"] = self.wallet.get("B", 0.0) + sign * amount
        exchange_id = str(next(self._ids))
        self.trades.append(
            Fill(
                f"t{exchange_id}",
                request.client_id,
                request.symbol,
                request.side,
                amount,
                self.price,
                fee,
                self.now,
                exchange_id,
            )
        )
        state = OrderState(
            client_id=request.client_id,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            role=request.role,
            status="closed" if amount == request.amount else "open",
            amount=request.amount,
            filled=amount,
            average=self.price,
            fee=fee,
            timestamp=self.now,
            exchange_id=exchange_id,
        )
        self.orders[request.client_id] = state
        return state

    async def find(self, symbol: str, client_id: str) -> OrderState | None:
        return self.orders.get(client_id)

    async def cancel(self, symbol: str, client_id: str) -> OrderState | None:
        order = self.orders.get(client_id)
        if order is None or order.final:
            return order
        self.orders[client_id] = dataclasses.replace(order, status="canceled")
        return self.orders[client_id]

    async def protect(self, request: ProtectionRequest) -> ProtectionState:
        fault = self._fault()
        if fault == "timeout":
            raise OrderUncertainError(f"timeout placing {request.list_client_id}")
        if fault == "reject":
            raise OrderRejectedError("Filter failure: PERCENT_PRICE_BY_SIDE")
        self.sent.append(request.list_client_id)
        legs = tuple(
            OrderState(
                client_id=f"{request.list_client_id}-{role}",
                symbol=request.symbol,
                side="sell",
                type=kind,
                role=role,
                status="open",
                amount=request.amount,
                filled=0.0,
                average=None,
                fee=0.0,
                timestamp=self.now,
                price=price,
                list_client_id=request.list_client_id,
            )
            for role, kind, price in (
                ("take_profit", "limit_maker", request.take_profit),
                ("stop_loss", "stop_loss_limit", request.stop_loss),
            )
        )
        state = ProtectionState(request.list_client_id, request.symbol, "open", legs)
        self.lists[request.list_client_id] = state
        if fault == "lost":
            raise OrderUncertainError(f"no response for {request.list_client_id}")
        return state

    def trigger(self, list_client_id: str, role: str, price: float) -> None:
        """A leg of the list fills at `price` (the other expires), as on Binance."""
        current = self.lists[list_client_id]
        legs = []
        for leg in current.legs:
            if leg.role == role:
                self.price = price
                request = OrderRequest(
                    "", leg.role, leg.symbol, "sell", leg.type, leg.amount, leg.client_id
                )
                legs.append(self._execute(request, leg.amount))
            else:
                legs.append(dataclasses.replace(leg, status="expired"))
        self.lists[list_client_id] = dataclasses.replace(current, status="done", legs=tuple(legs))

    async def find_protection(self, symbol: str, list_client_id: str) -> ProtectionState | None:
        return self.lists.get(list_client_id)

    async def cancel_protection(self, symbol: str, list_client_id: str) -> ProtectionState | None:
        current = self.lists.get(list_client_id)
        if current is None or current.status != "open":
            return current
        legs = tuple(dataclasses.replace(leg, status="canceled") for leg in current.legs)
        self.lists[list_client_id] = dataclasses.replace(current, status="canceled", legs=legs)
        return self.lists[list_client_id]

    async def open_orders(self, symbol: str) -> list[OrderState]:
        resting = [o for o in self.orders.values() if not o.final]
        for protection in self.lists.values():
            resting += [leg for leg in protection.legs if not leg.final]
        return [o for o in resting if o.symbol == symbol]

    async def fills(self, symbol: str, since_ms: int) -> list[Fill]:
        return [f for f in self.trades if f.symbol == symbol and f.timestamp >= since_ms]

    async def close(self) -> None:
        pass


class FakeOrderLog:
    """The ledger's orders and fills, in memory; `journal` shows the write order."""

    def __init__(self, journal: list[tuple[str, object]] | None = None) -> None:
        self.journal = journal if journal is not None else []
        self._orders: dict[str, dict[str, OrderState]] = {}
        self._fills: dict[str, dict[str, Fill]] = {}
        self.halts: dict[str, str] = {}

    async def record_order(self, signal_id: str, state: OrderState) -> None:
        self.journal.append(("order", state))
        self._orders.setdefault(signal_id, {})[state.client_id] = state

    async def record_protection(self, signal_id: str, state: ProtectionState) -> None:
        for leg in state.legs:
            await self.record_order(signal_id, leg)

    async def record_fills(self, signal_id: str, fills: Sequence[Fill]) -> list[Fill]:
        known = self._fills.setdefault(signal_id, {})
        new = [f for f in fills if f.trade_id not in known]
        for fill in new:
            known[fill.trade_id] = fill
            self.journal.append(("fill", fill))
        return new

    def orders(self, signal_id: str) -> list[OrderState]:
        return list(self._orders.get(signal_id, {}).values())

    def fills(self, signal_id: str) -> list[Fill]:
        return list(self._fills.get(signal_id, {}).values())

    def open_trades(self, symbol: str) -> list[str]:
        held = []
        for signal_id, fills in self._fills.items():
            net = sum(f.amount if f.side == "buy" else -f.amount for f in fills.values())
            symbols = {f.symbol for f in fills.values()}
            if symbol in symbols and net > 1e-12:
                held.append(signal_id)
        for signal_id, orders in self._orders.items():
            if signal_id not in held and any(
                o.symbol == symbol and not o.final for o in orders.values()
            ):
                held.append(signal_id)
        return held

    def realised_since(self, since_ms: int) -> float:
        """As the port says: trades closed (bought, then all sold) at or after `since_ms`."""
        total = 0.0
        for fills in self._fills.values():
            trade = list(fills.values())
            net = sum(f.amount if f.side == "buy" else -f.amount for f in trade)
            if not trade or net > 1e-9 or max(f.timestamp for f in trade) < since_ms:
                continue
            for f in trade:
                total += f.amount * f.price if f.side == "sell" else -f.amount * f.price
                total -= f.fee
        return total

    async def record_halt(self, symbol: str, reason: str | None, when: int) -> None:
        self.journal.append(("halt", (symbol, reason)))
        if reason is None:
            self.halts.pop(symbol, None)
        else:
            self.halts[symbol] = reason


class FixedOrderBook:
    def __init__(self, book: OrderBook) -> None:
        self.book = book

    async def order_book(self, symbol: str, limit: int) -> OrderBook:
        return dataclasses.replace(
            self.book, bids=self.book.bids[:limit], asks=self.book.asks[:limit]
        )


class ScriptedTrading:
    """A Trading that records what the runner asked and answers from a script."""

    def __init__(self) -> None:
        self.halted: str | None = None
        self.calls: list[tuple[str, str | None]] = []
        self.on_restore: ExchangeClose | None = None
        self.on_check: ExchangeClose | None = None

    async def restore(self, signal: OpenSignal | None, when: int) -> ExchangeClose | None:
        self.calls.append(("restore", signal.id if signal else None))
        return self.on_restore

    async def check(self, signal: OpenSignal | None, when: int) -> ExchangeClose | None:
        self.calls.append(("check", signal.id if signal else None))
        close, self.on_check = self.on_check, None
        return close

    async def enter(self, signal: OpenSignal, when: int, price: float) -> TradeReport | None:
        self.calls.append(("enter", signal.id))
        return TradeReport("paper", "entry", "c", "closed", 1.0, 1.0, price, 0.1, price)

    async def exit(self, result: ClosedResult) -> TradeReport | None:
        self.calls.append(("exit", result.signal.id))
        price = result.current_price
        return TradeReport("paper", "exit", "x", "closed", 1.0, 1.0, price, 0.1, price)
