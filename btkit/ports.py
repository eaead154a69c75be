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
    OpenSignal,
    PersistedState,
    StreamedResult,
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


class EventPrinter(Protocol):
    """Where `opened`/`closed` events go for a person or a pipe."""

    def startup(self, info: StartupInfo) -> None: ...

    def event(self, result: StreamedResult) -> None: ...

    def finish(self, message: str) -> None: ...
