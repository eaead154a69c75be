"""The vocabulary of SPEC §1: candles, signals, PnL and tick results.

Plain frozen dataclasses: cheap to build on the hot path, hashable, and
serialised with `dataclasses.asdict`, so the JSON field names are the SPEC's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Position = Literal["long", "short"]
CloseReason = Literal["take_profit", "stop_loss", "time_expired"]
Action = Literal["idle", "opened", "active", "closed"]

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV period; `timestamp` is the period's start in ms UTC."""

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True)
class Signal:
    """What a strategy's `get_signal` returns; validated before it is accepted."""

    position: Position
    price_open: float
    price_take_profit: float
    price_stop_loss: float
    minute_estimated_time: float
    note: str = ""
    id: str | None = None


@dataclass(frozen=True, slots=True)
class OpenSignal:
    """An accepted signal: what is persisted while it is open."""

    id: str
    position: Position
    price_open: float
    price_take_profit: float
    price_stop_loss: float
    minute_estimated_time: float
    symbol: str
    strategy_name: str
    exchange_name: str
    timestamp: int
    note: str = ""

    @property
    def expires_at(self) -> int:
        """Tick time (ms) at which the signal closes as `time_expired`."""
        return self.timestamp + round(self.minute_estimated_time * MINUTE_MS)


@dataclass(frozen=True, slots=True)
class Pnl:
    """Profit after fees and slippage; the prices are the unadjusted ones."""

    pnl_percentage: float
    price_open: float
    price_close: float


@dataclass(frozen=True, slots=True, kw_only=True)
class IdleResult:
    strategy_name: str
    exchange_name: str
    symbol: str
    timestamp: int
    current_price: float | None
    action: Literal["idle"] = "idle"


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenedResult:
    strategy_name: str
    exchange_name: str
    symbol: str
    timestamp: int
    current_price: float
    signal: OpenSignal
    action: Literal["opened"] = "opened"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveResult:
    strategy_name: str
    exchange_name: str
    symbol: str
    timestamp: int
    current_price: float
    signal: OpenSignal
    action: Literal["active"] = "active"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosedResult:
    strategy_name: str
    exchange_name: str
    symbol: str
    timestamp: int
    current_price: float
    signal: OpenSignal
    close_reason: CloseReason
    close_timestamp: int
    pnl: Pnl
    action: Literal["closed"] = "closed"


TickResult = IdleResult | OpenedResult | ActiveResult | ClosedResult
"""A tagged union on `action` (SPEC §1)."""

StreamedResult = OpenedResult | ClosedResult
"""The results the live loop streams to its consumers (SPEC §6)."""


def result_to_dict(result: TickResult) -> dict[str, Any]:
    """The JSON form of a result: SPEC field names, timestamps in ms."""
    return dataclasses.asdict(result)
