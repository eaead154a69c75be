"""One symbol's tick (SPEC §3) as pure functions: state and inputs in, result and state out.

The live runner and the backtest driver both decide through these functions;
they only add I/O around them (the strategy call, the price, the writes). So
throttle, validation, TP/SL/expiry and PnL exist once, and are tested here
without an event loop, a clock or a file.

A tick goes: `plan_tick` says whether the strategy is to be called. If it is,
`after_call` records the call in the throttle and `accept_signal` turns the
strategy's answer into an `OpenSignal` (or names what is wrong with it);
`open_step` opens an accepted one. Otherwise (or when nothing opens) the tick
needs the price: `idle_step` without a signal, `monitor_step` with one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from btkit.domain.model import (
    ActiveResult,
    ClosedResult,
    CloseReason,
    IdleResult,
    OpenedResult,
    OpenSignal,
    PersistedState,
    Signal,
    TickResult,
)
from btkit.engine.decision import close_reason, signal_call_due
from btkit.engine.pnl import Costs, compute_pnl
from btkit.engine.validation import coerce_signal, validate_signal

_SIGNAL_IDS = uuid.UUID("6f1c1d2e-5b7a-4a43-9a51-1f0e6b0d7c11")

Need = Literal["call_strategy", "price"]
"""What a tick needs from the world first."""


@dataclass(frozen=True, slots=True)
class SymbolKey:
    """Who ticks: the names every result and signal id carry."""

    strategy_name: str
    exchange_name: str
    symbol: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """A strategy's answer that may not open, with every broken rule named."""

    problems: tuple[str, ...]


R = TypeVar("R", bound=TickResult | None, covariant=True)


@dataclass(frozen=True, slots=True)
class Step(Generic[R]):
    """A tick's outcome: its result (None: skipped for lack of a price) and the new state."""

    result: R
    state: PersistedState


def signal_id(exchange_name: str, strategy_name: str, symbol: str, timestamp: int) -> str:
    """Deterministic, so a replay after a crash re-creates the same id."""
    return str(uuid.uuid5(_SIGNAL_IDS, f"{exchange_name}/{strategy_name}/{symbol}/{timestamp}"))


def plan_tick(state: PersistedState, when: int, interval_ms: int, *, stopped: bool) -> Need:
    """Call the strategy only with no open signal, not stopping, and the throttle due."""
    if (
        state.signal is None
        and not stopped
        and signal_call_due(state.last_signal_call, when, interval_ms)
    ):
        return "call_strategy"
    return "price"


def after_call(state: PersistedState, when: int) -> PersistedState:
    """The strategy was called at `when` (whatever it answered): the throttle restarts."""
    return PersistedState(state.signal, when, state.last_tick)


def ruled_out(state: PersistedState, when: int) -> PersistedState:
    """After due calls that a backtest skipped because the strategy's screen ruled them
    out, the last at `when`: what `after_call` then `idle_step` leave, without the result."""
    return PersistedState(state.signal, when, when)


def accept_signal(raw: object, key: SymbolKey, when: int) -> OpenSignal | Rejected | None:
    """The strategy's answer as a signal to open; None: no signal."""
    if raw is None:
        return None
    signal = coerce_signal(raw)
    if not isinstance(signal, Signal):
        return Rejected(tuple(signal))
    problems = validate_signal(signal, when)
    if problems:
        return Rejected(tuple(problems))
    return OpenSignal(
        id=signal.id or signal_id(key.exchange_name, key.strategy_name, key.symbol, when),
        position=signal.position,
        price_open=float(signal.price_open),
        price_take_profit=float(signal.price_take_profit),
        price_stop_loss=float(signal.price_stop_loss),
        minute_estimated_time=signal.minute_estimated_time,
        symbol=key.symbol,
        strategy_name=key.strategy_name,
        exchange_name=key.exchange_name,
        timestamp=when,
        note=signal.note,
        stake=None if signal.stake is None else float(signal.stake),
    )


def open_step(
    state: PersistedState, key: SymbolKey, signal: OpenSignal, when: int
) -> Step[OpenedResult]:
    """Open `signal` at `when`: the state to save first, then the `opened` result."""
    opened = OpenedResult(
        strategy_name=key.strategy_name,
        exchange_name=key.exchange_name,
        symbol=key.symbol,
        timestamp=when,
        current_price=signal.price_open,
        signal=signal,
    )
    return Step(opened, PersistedState(signal, when, when))


def idle_step(
    state: PersistedState, key: SymbolKey, when: int, price: float | None
) -> Step[IdleResult]:
    """No open signal and none opened: `idle`, with the price when there is one."""
    idle = IdleResult(
        strategy_name=key.strategy_name,
        exchange_name=key.exchange_name,
        symbol=key.symbol,
        timestamp=when,
        current_price=price,
    )
    return Step(idle, PersistedState(state.signal, state.last_signal_call, when))


def monitor_step(
    state: PersistedState, key: SymbolKey, when: int, price: float | None, costs: Costs
) -> Step[ActiveResult | ClosedResult | None]:
    """The open signal at `when`: skipped without a price, else `active` or `closed`."""
    signal = state.signal
    if signal is None:
        raise ValueError(f"{key.symbol}: no open signal to monitor")
    if price is None:
        return Step(None, PersistedState(signal, state.last_signal_call, when))
    if close_reason(signal, price, when) is None:
        active = ActiveResult(
            strategy_name=key.strategy_name,
            exchange_name=key.exchange_name,
            symbol=key.symbol,
            timestamp=when,
            current_price=price,
            signal=signal,
        )
        return Step(active, PersistedState(signal, state.last_signal_call, when))
    return close_step(state, key, when, price, costs)


def close_step(
    state: PersistedState,
    key: SymbolKey,
    when: int,
    price: float,
    costs: Costs,
    *,
    reason: CloseReason | None = None,
) -> Step[ClosedResult]:
    """Close the open signal at `when` and `price` (TP, then SL, then expiry), with PnL.

    `reason` given: the exchange closed the position (a protective order filled), so the
    signal closes with that reason at that fill price, whatever the model says.
    """
    signal = state.signal
    if signal is None:
        raise ValueError(f"{key.symbol}: no open signal to close")
    if reason is None:
        reason = close_reason(signal, price, when)
    if reason is None:
        raise ValueError(f"{key.symbol}: the signal does not close at {when}")
    closed = ClosedResult(
        strategy_name=key.strategy_name,
        exchange_name=key.exchange_name,
        symbol=key.symbol,
        timestamp=when,
        current_price=price,
        signal=signal,
        close_reason=reason,
        close_timestamp=when,
        pnl=compute_pnl(signal.position, signal.price_open, price, costs),
    )
    return Step(closed, PersistedState(None, state.last_signal_call, when))
