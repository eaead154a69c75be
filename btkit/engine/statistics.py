"""Figures over closed trades (SPEC §8), pure: no I/O, `None` where undefined.

Per-trade figures are in percent of the stake (after fees and slippage). Equity
is a stake of 1 reinvested whole in each trade, in close order (compounded), so
drawdown and yearly returns read as what happened to money, never above 100 %
lost; a trade that loses more than the stake (a short whose price more than
doubled) ends the stake at 0. Durations are in minutes.

A figure whose denominator is within float noise of 0 is undefined (None), not
a huge number: equal PnLs give a standard deviation of ~1e-17, not 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from btkit.domain.model import MINUTE_MS, ClosedResult, CloseReason, Position

MINUTES_PER_YEAR = 365 * 24 * 60
NOISE = 1e-9
"""Relative size below which a denominator counts as 0 (PnLs are printed to 1e-4)."""
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
    """Counts are ints; every other figure is None where undefined (null in JSON)."""

    trades: int
    wins: int
    losses: int
    break_even: int
    longest_win_streak: int
    longest_loss_streak: int
    win_rate: float | None = None
    average_pnl: float | None = None
    total_pnl: float | None = None
    compounded_return: float | None = None
    stdev: float | None = None
    sharpe: float | None = None
    annualized_sharpe: float | None = None
    sortino: float | None = None
    certainty_ratio: float | None = None
    expected_yearly_returns: float | None = None
    max_drawdown: float | None = None
    calmar: float | None = None
    profit_factor: float | None = None
    expectancy: float | None = None
    average_duration_minutes: float | None = None
    best: float | None = None
    worst: float | None = None


def _is_noise(value: float, scale: float) -> bool:
    return abs(value) <= NOISE * max(1.0, abs(scale))


def _ratio(numerator: float | None, denominator: float | None, scale: float = 1.0) -> float | None:
    """numerator / denominator, None when either is undefined or the denominator is ~0."""
    if numerator is None or denominator is None or _is_noise(denominator, scale):
        return None
    return _finite(numerator / denominator)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def equity_curve(pnls: Floats) -> Floats:
    """The compounded stake after each trade, starting from 1 (never below 0)."""
    factors: Floats = np.maximum(1.0 + pnls / 100.0, 0.0)
    return np.cumprod(factors, dtype=np.float64)


def drawdowns(equity: Floats) -> Floats:
    """Fall of each point of the curve from its earlier peak, in % (the start, 1, counts)."""
    peaks = np.maximum.accumulate(np.maximum(equity, 1.0))
    return (1.0 - equity / peaks) * 100.0


def longest_streak(members: npt.NDArray[np.bool_]) -> int:
    """Longest run of True."""
    if not members.any():
        return 0
    edges = np.diff(np.r_[0, members.astype(np.int8), 0])
    return int(np.max(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)))


def _mean(values: Floats) -> float | None:
    return float(values.mean()) if len(values) else None


def yearly_return(final_equity: float, trades: int, average_minutes: float) -> float | None:
    """The stake's growth per trade (geometric mean), compounded over a year of trades
    back to back at the average duration, in %; None where it overflows."""
    if trades == 0 or average_minutes <= 0:
        return None
    if final_equity <= 0:
        return -100.0
    exponent = math.log(final_equity) / trades * (MINUTES_PER_YEAR / average_minutes)
    if exponent > 700:  # beyond float range: no readable figure
        return None
    return math.expm1(exponent) * 100.0


def _deviation(pnls: Floats) -> float | None:
    """Sample standard deviation; float noise around 0 is 0."""
    if len(pnls) < 2:
        return None
    deviation = float(pnls.std(ddof=1))
    return 0.0 if _is_noise(deviation, float(np.abs(pnls).max())) else deviation


def summarize(trades: Sequence[Trade]) -> Summary:
    ordered = sorted(trades, key=_CLOSE_ORDER)
    count = len(ordered)
    pnls = np.fromiter((t.pnl_percentage for t in ordered), np.float64, count)
    if count == 0:
        return Summary(0, 0, 0, 0, 0, 0)
    durations = np.fromiter((t.closed_at - t.opened_at for t in ordered), np.float64, count)
    won, lost = pnls > 0, pnls < 0  # exactly 0: break-even, neither
    wins, losses = pnls[won], pnls[lost]
    scale = float(np.abs(pnls).max())
    average = float(pnls.mean())
    deviation = _deviation(pnls)
    sharpe = _ratio(average, deviation, scale)
    downside = float(np.sqrt(np.mean(np.minimum(pnls, 0.0) ** 2)))
    avg_win, avg_loss = _mean(wins), _mean(losses)
    duration = float(durations.mean()) / MINUTE_MS
    equity = equity_curve(pnls)
    yearly = yearly_return(float(equity[-1]), count, duration)
    drawdown = float(np.max(drawdowns(equity)))
    decided = len(wins) + len(losses)
    return Summary(
        trades=count,
        wins=len(wins),
        losses=len(losses),
        break_even=count - decided,
        win_rate=len(wins) / decided * 100 if decided else None,
        average_pnl=average,
        total_pnl=math.fsum(pnls.tolist()),
        compounded_return=(float(equity[-1]) - 1.0) * 100.0,
        stdev=deviation,
        sharpe=sharpe,
        annualized_sharpe=None if sharpe is None else sharpe * math.sqrt(365),
        sortino=_ratio(average, downside, scale),
        certainty_ratio=_ratio(avg_win, None if avg_loss is None else abs(avg_loss), scale),
        expected_yearly_returns=yearly,
        max_drawdown=drawdown,
        calmar=_ratio(yearly, drawdown),
        profit_factor=_ratio(
            float(wins.sum()), abs(float(losses.sum())) if len(losses) else None, scale
        ),
        expectancy=(len(wins) * (avg_win or 0.0) + len(losses) * (avg_loss or 0.0)) / count,
        average_duration_minutes=duration,
        best=float(pnls.max()),
        worst=float(pnls.min()),
        longest_win_streak=longest_streak(won),
        longest_loss_streak=longest_streak(lost),
    )


def without_invalid(trades: Sequence[Trade]) -> tuple[list[Trade], list[Trade]]:
    """(trades with a finite PnL, the others): a ledger from an older btkit may hold a
    close whose price was NaN (its PnL stored as NULL); it cannot enter any figure."""
    valid: list[Trade] = []
    invalid: list[Trade] = []
    for trade in trades:
        pnl: object = trade.pnl_percentage
        usable = isinstance(pnl, float | int) and math.isfinite(pnl)
        (valid if usable else invalid).append(trade)
    return valid, invalid


def breakdown(trades: Sequence[Trade], key: Callable[[Trade], str]) -> dict[str, Summary]:
    groups: dict[str, list[Trade]] = {}
    for trade in trades:
        groups.setdefault(key(trade), []).append(trade)
    return {name: summarize(group) for name, group in sorted(groups.items())}
