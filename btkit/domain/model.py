"""The vocabulary of SPEC §1: candles, signals, PnL and tick results.

Plain frozen dataclasses: cheap to build on the hot path, hashable, and
serialised with `dataclasses.asdict`, so the JSON field names are the SPEC's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from btkit.domain.orders import TradeReport

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
    stake: float | None = None
    """Quote amount to trade for this signal (`--trade paper|live`); None: `--stake`."""


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
    stake: float | None = None
    """The signal's own stake, if its strategy set one."""

    @property
    def expires_at(self) -> int | None:
        """Tick time (ms) at which the signal closes as `time_expired`; None: never.

        An infinite `minute_estimated_time` (SPEC §3) lives until TP or SL.
        """
        if math.isinf(self.minute_estimated_time):
            return None
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
    seq: int | None = None
    """The event's sequence number in the ledger (None where nothing is recorded)."""
    redelivered: bool = False
    """Re-emitted on start: it may have reached consumers before a crash."""
    trade: TradeReport | None = None
    """What trading did at this event (None with `--trade off` and on a redelivery)."""


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
    seq: int | None = None
    """The event's sequence number in the ledger (None where nothing is recorded)."""
    redelivered: bool = False
    """Re-emitted on start: it may have reached consumers before a crash."""
    trade: TradeReport | None = None
    """What trading did at this event (None with `--trade off` and on a redelivery)."""


TickResult = IdleResult | OpenedResult | ActiveResult | ClosedResult
"""A tagged union on `action` (SPEC §1)."""

StreamedResult = OpenedResult | ClosedResult
"""The results the live loop streams to its consumers (SPEC §6)."""


def lifetime_to_json(minutes: float) -> float | None:
    """JSON has no Infinity: a signal that lives until TP or SL is stored as null."""
    return None if math.isinf(minutes) else minutes


def lifetime_from_json(minutes: float | None) -> float:
    return math.inf if minutes is None else minutes


def lifetime_text(minutes: float) -> str:
    """For humans: `60 min`, or `until TP/SL` for an infinite lifetime."""
    return "until TP/SL" if math.isinf(minutes) else f"{minutes:g} min"


def signal_to_dict(signal: OpenSignal) -> dict[str, Any]:
    """The JSON form of an open signal (an infinite lifetime is null)."""
    document = dataclasses.asdict(signal)
    document["minute_estimated_time"] = lifetime_to_json(signal.minute_estimated_time)
    if signal.stake is None:  # most signals: their JSON stays as it always was
        del document["stake"]
    return document


def result_to_dict(result: TickResult) -> dict[str, Any]:
    """The JSON form of a result: SPEC field names, timestamps in ms, valid JSON."""
    document = dataclasses.asdict(result)
    if not isinstance(result, IdleResult):
        document["signal"] = signal_to_dict(result.signal)
    trade = getattr(result, "trade", None)
    if trade is not None:  # what trading did: the order, its fill, the gap to the model
        document["trade"]["gap_percent"] = trade.gap_percent
    return document


@dataclass(frozen=True, slots=True)
class PersistedState:
    """One symbol's durable state: the open signal, the throttle and the replay cursor."""

    signal: OpenSignal | None = None
    last_signal_call: int | None = None
    last_tick: int | None = None
