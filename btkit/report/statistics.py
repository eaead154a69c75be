"""Figures over closed trades (SPEC §8), pure: no I/O, `None` where undefined.

PnL figures are in percent per trade; drawdown is on the cumulative sum of
per-trade PnL % in close order; durations are in minutes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from btkit.domain import MINUTE_MS, ClosedResult, CloseReason, Position

MINUTES_PER_YEAR = 365 * 24 * 60
Floats = npt.NDArray[np.float64]
_CLOSE_ORDER = attrgetter("closed_at", "opened_at", "symbol")


@dataclass(frozen=True, slots=True)
class Trade:
    signal_id: str
    symbol: str
    position: Position
    opened_at: int
    closed_at: int
    close_reason: CloseReason
    price_open: float
    price_close: float
    price_take_profit: float
    price_stop_loss: float
    pnl_percentage: float

    @property
    def duration_minutes(self) -> float:
        return (self.closed_at - self.opened_at) / MINUTE_MS

    @classmethod
    def from_closed(cls, result: ClosedResult) -> Trade:
        signal = result.signal
        return cls(
            signal.id,
            result.symbol,
            signal.position,
            signal.timestamp,
            result.close_timestamp,
            result.close_reason,
            result.pnl.price_open,
            result.pnl.price_close,
            signal.price_take_profit,
            signal.price_stop_loss,
            result.pnl.pnl_percentage,
        )


@dataclass(frozen=True, slots=True)
class Summary:
    trades: int
    wins: int
    losses: int
    win_rate: float | None
    average_pnl: float | None
    total_pnl: float
    stdev: float | None
    sharpe: float | None
    annualized_sharpe: float | None
    sortino: float | None
    certainty_ratio: float | None
    expected_yearly_returns: float | None
    max_drawdown: float
    calmar: float | None
    profit_factor: float | None
    expectancy: float | None
    average_duration_minutes: float | None
    best: float | None
    worst: float | None
    longest_win_streak: int
    longest_loss_streak: int


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def max_drawdown(pnls: Floats) -> float:
    """Largest fall of cumulative PnL % from an earlier peak (the start counts as 0)."""
    if len(pnls) == 0:
        return 0.0
    equity = np.cumsum(pnls)
    peaks = np.maximum.accumulate(np.maximum(equity, 0.0))
    return float(np.max(peaks - equity))


def longest_streak(members: npt.NDArray[np.bool_]) -> int:
    """Longest run of True."""
    if not members.any():
        return 0
    edges = np.diff(np.r_[0, members.astype(np.int8), 0])
    return int(np.max(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)))


def _mean(values: Floats) -> float | None:
    return float(values.mean()) if len(values) else None


def summarize(trades: Sequence[Trade]) -> Summary:
    ordered = sorted(trades, key=_CLOSE_ORDER)
    count = len(ordered)
    pnls = np.fromiter((t.pnl_percentage for t in ordered), np.float64, count)
    durations = np.fromiter((t.closed_at - t.opened_at for t in ordered), np.float64, count)
    won = pnls > 0
    wins, losses = pnls[won], pnls[~won]
    average = _mean(pnls)
    deviation = float(pnls.std(ddof=1)) if count >= 2 else None
    sharpe = _ratio(average, deviation)
    downside = float(np.sqrt(np.mean(np.minimum(pnls, 0.0) ** 2))) if count else None
    avg_win, avg_loss = _mean(wins), _mean(losses)
    duration = None if count == 0 else float(durations.mean()) / MINUTE_MS
    yearly = None
    if average is not None and duration:
        yearly = average * MINUTES_PER_YEAR / duration
    drawdown = max_drawdown(pnls)
    win_rate = len(wins) / count if count else None
    expectancy = None
    if win_rate is not None:
        expectancy = win_rate * (avg_win or 0.0) + (1 - win_rate) * (avg_loss or 0.0)
    return Summary(
        trades=count,
        wins=len(wins),
        losses=len(losses),
        win_rate=None if win_rate is None else win_rate * 100,
        average_pnl=average,
        total_pnl=math.fsum(pnls.tolist()),
        stdev=deviation,
        sharpe=sharpe,
        annualized_sharpe=None if sharpe is None else sharpe * math.sqrt(365),
        sortino=_ratio(average, downside),
        certainty_ratio=_ratio(avg_win, None if avg_loss is None else abs(avg_loss)),
        expected_yearly_returns=yearly,
        max_drawdown=drawdown,
        calmar=_ratio(yearly, drawdown),
        profit_factor=_ratio(float(wins.sum()), abs(float(losses.sum())) if len(losses) else None),
        expectancy=expectancy,
        average_duration_minutes=duration,
        best=float(pnls.max()) if count else None,
        worst=float(pnls.min()) if count else None,
        longest_win_streak=longest_streak(won),
        longest_loss_streak=longest_streak(~won),
    )


def breakdown(trades: Sequence[Trade], key: Callable[[Trade], str]) -> dict[str, Summary]:
    groups: dict[str, list[Trade]] = {}
    for trade in trades:
        groups.setdefault(key(trade), []).append(trade)
    return {name: summarize(group) for name, group in sorted(groups.items())}
