"""What one tick decides (SPEC §3): pure functions of signal, price and time.

`price_hits` works element-wise on NumPy arrays as well as on floats, so the
backtest's vectorised scan and the live tick share the very same rule.
"""

from __future__ import annotations

from typing import TypeVar

from btkit.domain.model import CloseReason, OpenSignal, Position

P = TypeVar("P")


def price_hits(position: Position, take_profit: float, stop_loss: float, price: P) -> tuple[P, P]:
    """(take-profit reached, stop-loss reached) at `price`, a float or an array."""
    if position == "long":
        return price >= take_profit, price <= stop_loss  # type: ignore[operator, return-value]
    return price <= take_profit, price >= stop_loss  # type: ignore[operator, return-value]


def close_reason(signal: OpenSignal, price: float, when: int) -> CloseReason | None:
    """Why the signal closes at this tick, if it does; price beats expiry."""
    take_profit, stop_loss = price_hits(
        signal.position, signal.price_take_profit, signal.price_stop_loss, price
    )
    if take_profit:
        return "take_profit"
    if stop_loss:
        return "stop_loss"
    expires_at = signal.expires_at
    if expires_at is not None and when >= expires_at:
        return "time_expired"
    return None


def next_signal_call_at(last_call: int | None, interval_ms: int) -> int | None:
    """Throttle: the first tick time at which `get_signal` may be called again.

    None: at once (never called). The live runner asks `signal_call_due`; the
    backtest jumps straight to this time: both follow this one rule.
    """
    return None if last_call is None else last_call + interval_ms


def signal_call_due(last_call: int | None, when: int, interval_ms: int) -> bool:
    """Throttle: at least one signal interval since the last `get_signal` call."""
    due_at = next_signal_call_at(last_call, interval_ms)
    return due_at is None or when >= due_at
