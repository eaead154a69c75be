"""Every port in one place: what the engine and its drivers need from the world.

Drivers and use cases depend on these protocols only; the adapters in
`btkit.adapters` implement them, and `btkit.wiring` picks which. Nothing here
imports an adapter, so naming a port never loads ccxt, SQLite or Rich.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from btkit.domain.model import (
    Candle,
    ClosedResult,
    CloseReason,
    OpenSignal,
    PersistedState,
    StreamedResult,
)
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

if TYPE_CHECKING:  # a NumPy type: naming the port must not load NumPy
    from btkit.domain.candles import Candles


class Clock(Protocol):
    """Time: the engine asks a Clock, never the OS."""

    def now_ms(self) -> int: ...

    async def sleep_until(self, when_ms: int) -> None: ...

    def join(self) -> None:
        """A task that will wait on this clock starts; simulated time waits for it."""

    def leave(self) -> None:
        """That task ends; simulated time no longer waits for it."""


class Exchange(Protocol):
    """Little more than "candles for symbol, interval, since, limit"."""

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


class MarketData(Protocol):
    """Finished candles and the tick price, as strategies and the runner see them."""

    async def candles(self, symbol: str, interval: str, limit: int, when: int) -> Candles:
        """The `limit` most recent candles finished at `when`, oldest first (read-only:
        strategies get it, and a cache may hold it)."""
        ...

    async def average_price(self, symbol: str, when: int) -> float | None:
        """VWAP of the last five finished minutes; None when there is no candle."""
        ...


class SignalStore(Protocol):
    """One symbol's open signal, throttle and cursor, kept crash-safe."""

    def load(self) -> PersistedState: ...

    async def save(self, state: PersistedState) -> None:
        """Durable when it returns; may run off the event loop."""
        ...


class EventLog(Protocol):
    """What the runner needs from a ledger."""

    async def record_opened(self, signal: OpenSignal) -> int:
        """Durable when it returns; the event's sequence number (the same on a replay)."""
        ...

    async def record_closed(self, result: ClosedResult) -> int:
        """Durable when it returns; the event's sequence number (the same on a replay)."""
        ...

    def closed_at(self, signal_id: str, opened_at: int) -> int | None:
        """When the signal opened at `opened_at` closed, if the ledger has its close (a
        strategy may reuse its own ids: an older signal's close is not this one's)."""
        ...

    def undelivered(
        self, strategy: str, exchange: str, symbols: Sequence[str]
    ) -> list[StreamedResult]:
        """This run's events of these symbols not yet marked delivered, in sequence order,
        rebuilt with their ids and seq and flagged `redelivered`."""
        ...

    async def mark_delivered(self, result: StreamedResult) -> None:
        """The stream's consumer has `result`. Call it only after the consumer took the
        event: the mark may lag (an event is then delivered again), never run ahead."""
        ...


@dataclass
class StartupInfo:
    """What the start-up panel shows."""

    strategy: str
    strategy_file: str
    interval: str
    exchange: str
    symbols: list[str]
    folders: dict[str, str]
    restored: list[OpenSignal] = field(default_factory=list)
    replay: str | None = None
    trade: TradeMode = "off"
    """Shown in red when `live`: real orders, real money."""
    trade_detail: str = ""
    """E.g. `paper wallet 10000 USDT, stake 100 USDT` or the live account's quote balance."""


class EventPrinter(Protocol):
    """Where `opened`/`closed` events go for a person or a pipe."""

    def startup(self, info: StartupInfo) -> None: ...

    def event(self, result: StreamedResult) -> None: ...

    def finish(self, message: str) -> None: ...


class OrderBookSource(Protocol):
    """The current order book of a market (paper fills walk it)."""

    async def order_book(self, symbol: str, limit: int) -> OrderBook: ...


class Broker(Protocol):
    """Where orders go: the paper wallet, or a real exchange through ccxt.

    Every order carries a client id derived from its signal id. `place` raises
    `OrderUncertainError` when the order may exist (timeout, lost response, 5xx):
    the caller then looks it up with `find` and never sends it blindly again;
    `OrderRejectedError` (incl. `InsufficientFundsError`) when it surely does not.
    """

    name: str
    mode: TradeMode
    """`paper` or `live`."""

    async def rules(self, symbol: str) -> MarketRules: ...

    async def balances(self) -> dict[str, Balance]:
        """Per currency code (e.g. "USDT")."""
        ...

    async def place(self, request: OrderRequest) -> OrderState: ...

    async def find(self, symbol: str, client_id: str) -> OrderState | None:
        """The order with this client id (open or not); None if the exchange never had it."""
        ...

    async def cancel(self, symbol: str, client_id: str) -> OrderState | None:
        """Cancel if still open; the order's final state; None if it does not exist."""
        ...

    async def protect(self, request: ProtectionRequest) -> ProtectionState:
        """Take-profit and stop-loss on the exchange as one OCO list (or a stop-loss alone
        where the market has no OCO). Same error contract as `place`."""
        ...

    async def find_protection(self, symbol: str, list_client_id: str) -> ProtectionState | None: ...

    async def cancel_protection(self, symbol: str, list_client_id: str) -> ProtectionState | None:
        """Cancel the whole list; its final state; None if it does not exist."""
        ...

    async def open_orders(self, symbol: str) -> list[OrderState]:
        """Every open order of the market, btkit's (client id prefix `btk-`) or not."""
        ...

    async def fills(self, symbol: str, since_ms: int) -> list[Fill]:
        """Executions of the account on the market since `since_ms`, oldest first."""
        ...

    async def close(self) -> None: ...


class OrderLog(Protocol):
    """Orders and fills in the ledger, apart from signal events; bound at wiring to one
    (strategy, exchange, trade mode). Append-only; each write durable when it returns."""

    async def record_order(self, signal_id: str, state: OrderState) -> None:
        """Append the order's latest state. An intent (status `new`) is recorded *before*
        the order is sent, so a crash leaves a trace to look up."""
        ...

    async def record_protection(self, signal_id: str, state: ProtectionState) -> None:
        """Append the list's latest state (each leg as an order row)."""
        ...

    async def record_fills(self, signal_id: str, fills: Sequence[Fill]) -> list[Fill]:
        """Append the fills not yet recorded (by trade id); returns the new ones."""
        ...

    def orders(self, signal_id: str) -> list[OrderState]:
        """The latest state of each of the signal's orders, in the order first recorded."""
        ...

    def fills(self, signal_id: str) -> list[Fill]: ...

    def open_trades(self, symbol: str) -> list[str]:
        """Signal ids of the symbol with a position held or an order not final."""
        ...

    def realised_since(self, since_ms: int) -> float:
        """Realised PnL in quote currency of trades closed since `since_ms` (all symbols),
        after fees: what the daily loss limit counts."""
        ...

    async def record_halt(self, symbol: str, reason: str | None, when: int) -> None:
        """Trading on `symbol` stopped for `reason` (None: resumed), for `btkit status`
        and `btkit positions` to show."""
        ...


@dataclass(frozen=True, slots=True)
class ExchangeClose:
    """The exchange closed the position before the model did (a protective order filled,
    possibly while btkit was down): the signal closes with this reason at this price."""

    reason: CloseReason
    price: float
    timestamp: int
    report: TradeReport


class Trading(Protocol):
    """What a symbol's runner asks of trading (`--trade off`: `NoTrading`, which does
    nothing). Implementations never raise for an order problem: they report it in the
    returned `TradeReport` and, when they cannot explain the exchange's state, set
    `halted`; only `StorageError` (the ledger) propagates."""

    halted: str | None
    """Why this symbol opens no new positions (reconciliation mismatch, circuit breaker);
    an open signal keeps being monitored."""

    async def restore(self, signal: OpenSignal | None, when: int) -> ExchangeClose | None:
        """Reconcile on start: the ledger's orders against the exchange's."""
        ...

    async def check(self, signal: OpenSignal | None, when: int) -> ExchangeClose | None:
        """Each tick, before the model monitors: asks the exchange only when due (timer)."""
        ...

    async def enter(self, signal: OpenSignal, when: int, price: float) -> TradeReport | None:
        """The signal opened (state and ledger written): buy, then protect."""
        ...

    async def exit(self, result: ClosedResult) -> TradeReport | None:
        """The model closes the signal: cancel protection, sell at market. Idempotent."""
        ...
