"""Walk-forward validation, pure: windows, scores, rankings and the per-fold choice.

The period is cut into `folds + 1` consecutive windows of equal length. Fold i
tunes on window i (the parameter set that ranks first there) and scores that
choice on window i + 1, which the choice never saw. The leaderboard ranks every
parameter set on the tuning windows 0..folds-1 together and shows it next to
the last window, which no ranking looked at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from btkit.domain.model import MINUTE_MS
from btkit.engine.statistics import Summary, Trade, summarize

METRICS = ("sharpe", "total-return", "profit-factor")


@dataclass(frozen=True, slots=True)
class Window:
    """Ticks from start to end, both included (ms UTC, on minutes)."""

    start: int
    end: int


def split(start: int, end: int, folds: int, *, least_minutes: int = 1) -> list[Window]:
    """`folds + 1` consecutive windows covering [start, end], each whole minutes long.

    A ValueError when a window would be shorter than `least_minutes`.
    """
    if folds < 1:
        raise ValueError("--folds must be at least 1")
    minutes = (end - start) // MINUTE_MS + 1
    count = folds + 1
    each = minutes // count
    if each < max(least_minutes, 1):
        raise ValueError(
            f"{minutes:,} minutes cannot be cut into {count} windows of at least "
            f"{least_minutes:,} minutes each; choose a longer period or fewer --folds"
        )
    windows = []
    for i in range(count):
        first = start + i * each * MINUTE_MS
        last = end if i == count - 1 else first + (each - 1) * MINUTE_MS
        windows.append(Window(first, last))
    return windows


def score(summary: Summary, metric: str) -> float | None:
    """The metric to rank by (higher is better); None where it is undefined."""
    if metric == "sharpe":
        return summary.sharpe
    if metric == "total-return":
        return summary.compounded_return
    if metric == "profit-factor":
        return summary.profit_factor
    raise ValueError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")


@dataclass(frozen=True, slots=True)
class Ranked:
    """One parameter set's figures on one stretch of time."""

    index: int
    """Position of the parameter set in the sweep's list (ties go to the earlier one)."""
    summary: Summary
    score: float | None
    allowed: bool
    """False when its drawdown exceeds the limit: listed, never chosen."""


def rank(
    trades_by_set: Sequence[Sequence[Trade]], metric: str, max_drawdown: float | None = None
) -> list[Ranked]:
    """Every parameter set, best first: allowed before refused, defined scores before none."""
    ranked = []
    for index, trades in enumerate(trades_by_set):
        summary = summarize(trades)
        value = score(summary, metric)
        drawdown = summary.max_drawdown or 0.0
        allowed = max_drawdown is None or drawdown <= max_drawdown
        ranked.append(Ranked(index, summary, value, allowed))
    return sorted(ranked, key=_order)


def _order(entry: Ranked) -> tuple[bool, bool, float, int]:
    value = entry.score
    defined = value is not None and math.isfinite(value)
    return (not entry.allowed, not defined, -(value or 0.0) if defined else 0.0, entry.index)


@dataclass(frozen=True, slots=True)
class Fold:
    tune: Window
    test: Window
    chosen: int | None
    """The parameter set ranked first on `tune` (None: every set was refused or scoreless)."""
    in_sample: Summary | None
    out_of_sample: Summary | None
    in_score: float | None
    out_score: float | None


def walk_forward(
    windows: Sequence[Window],
    trades: Mapping[tuple[int, int], Sequence[Trade]],
    sets: int,
    metric: str,
    max_drawdown: float | None = None,
) -> list[Fold]:
    """Tune on each window, score the choice on the next. `trades[(set, window)]`."""
    folds = []
    for i in range(len(windows) - 1):
        ranked = rank([trades[(s, i)] for s in range(sets)], metric, max_drawdown)
        best = ranked[0] if ranked and ranked[0].allowed and ranked[0].score is not None else None
        if best is None:
            folds.append(Fold(windows[i], windows[i + 1], None, None, None, None, None))
            continue
        tested = summarize(trades[(best.index, i + 1)])
        folds.append(
            Fold(
                windows[i],
                windows[i + 1],
                best.index,
                best.summary,
                tested,
                best.score,
                score(tested, metric),
            )
        )
    return folds


@dataclass(frozen=True, slots=True)
class Row:
    """A leaderboard line: one parameter set in sample and out of sample."""

    index: int
    in_sample: Ranked
    out_of_sample: Summary
    out_score: float | None


def leaderboard(
    windows: Sequence[Window],
    trades: Mapping[tuple[int, int], Sequence[Trade]],
    sets: int,
    metric: str,
    max_drawdown: float | None = None,
) -> list[Row]:
    """Every set ranked on windows 0..n-2 together, with its figures on the last window."""
    last = len(windows) - 1
    tuning = [[t for w in range(last) for t in trades[(s, w)]] for s in range(sets)]
    rows = []
    for entry in rank(tuning, metric, max_drawdown):
        tested = summarize(trades[(entry.index, last)])
        rows.append(Row(entry.index, entry, tested, score(tested, metric)))
    return rows


def walk_forward_total(folds: Sequence[Fold]) -> float | None:
    """The out-of-sample stake after following every fold's choice in turn, in % gained."""
    equity = 1.0
    seen = False
    for fold in folds:
        if fold.out_of_sample is None or fold.out_of_sample.compounded_return is None:
            continue
        seen = True
        equity *= 1.0 + fold.out_of_sample.compounded_return / 100.0
    return (equity - 1.0) * 100.0 if seen else None
