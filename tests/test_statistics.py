"""Report figures against values computed by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy
import pytest

from btkit.adapters.report.markdown import ReportInput, render
from btkit.engine.statistics import Trade, breakdown, summarize

HOUR = 3_600_000


def trade(pnl, minutes, n, symbol="ETHBTC", reason="take_profit"):
    opened = n * 10 * HOUR
    return Trade(
        f"id{n}", symbol, "long", opened, opened + minutes * 60_000, reason, 1.0, 1.0, 1.1, 0.9, pnl
    )


def test_mixed_trades():
    # PnL 2, -1, 3, -2 with durations 60, 120, 60, 120 minutes
    s = summarize([trade(2, 60, 0), trade(-1, 120, 1), trade(3, 60, 2), trade(-2, 120, 3)])
    assert (s.trades, s.wins, s.losses, s.win_rate) == (4, 2, 2, 50.0)
    assert s.average_pnl == pytest.approx(0.5)
    assert s.total_pnl == pytest.approx(2.0)
    assert s.stdev == pytest.approx(2.380476, abs=1e-6)  # sqrt(17 / 3)
    assert s.sharpe == pytest.approx(0.210042, abs=1e-6)
    assert s.annualized_sharpe == pytest.approx(0.210042 * 365**0.5, abs=1e-5)
    assert s.sortino == pytest.approx(0.447214, abs=1e-6)  # 0.5 / sqrt(1.25)
    assert s.certainty_ratio == pytest.approx(2.5 / 1.5)
    assert s.average_duration_minutes == 90
    # the stake: 1.02, 1.0098, 1.040094, 1.01929212 (compounded, not summed)
    assert s.compounded_return == pytest.approx(1.929212)
    assert s.max_drawdown == pytest.approx(2.0)  # 1.040094 -> 1.01929212
    growth = 1.01929212 ** (1 / 4)  # per trade; 5840 trades of 90 minutes a year
    assert s.expected_yearly_returns == pytest.approx((growth**5840 - 1) * 100, rel=1e-9)
    assert s.calmar == pytest.approx(s.expected_yearly_returns / 2.0)
    assert s.profit_factor == pytest.approx(5 / 3)
    assert s.expectancy == pytest.approx(0.5)
    assert (s.best, s.worst) == (3, -2)
    assert (s.longest_win_streak, s.longest_loss_streak) == (1, 1)


def test_all_wins():
    s = summarize([trade(1, 30, 0), trade(2, 30, 1)])
    assert s.win_rate == 100
    assert s.losses == 0
    assert s.certainty_ratio is None
    assert s.profit_factor is None
    assert s.max_drawdown == 0
    assert s.calmar is None
    assert s.sortino is None
    assert (s.longest_win_streak, s.longest_loss_streak) == (2, 0)


def test_all_losses():
    s = summarize([trade(-1, 30, 0), trade(-3, 30, 1)])
    assert s.win_rate == 0
    assert s.certainty_ratio is None
    assert s.profit_factor == 0
    assert s.max_drawdown == pytest.approx(100 - 0.99 * 0.97 * 100)  # 3.97 %
    assert s.longest_loss_streak == 2


def test_one_trade_has_no_deviation():
    s = summarize([trade(1.5, 45, 0)])
    assert s.stdev is None
    assert s.sharpe is None
    assert s.annualized_sharpe is None
    assert s.average_pnl == 1.5


def test_zero_trades_every_figure_but_the_counts_is_undefined():
    s = summarize([])
    counts = {"trades", "wins", "losses", "break_even", "longest_win_streak", "longest_loss_streak"}
    for name, value in dataclasses.asdict(s).items():
        assert value == (0 if name in counts else None), name
    text = render(ReportInput("Live report: x", []))
    assert "No events yet" in text


def test_breakdowns_and_na_in_markdown():
    trades = [trade(1, 30, 0, "ETHBTC"), trade(-1, 30, 1, "LTCBTC", "stop_loss")]
    assert set(breakdown(trades, lambda t: t.symbol)) == {"ETHBTC", "LTCBTC"}
    text = render(ReportInput("Backtest report: x", [trade(1.5, 45, 0)]))
    assert "| Sharpe ratio (per trade: mean / standard deviation) | N/A |" in text
    assert "| Win rate (of trades won or lost) | 100.00% (1W / 0L / 0 break-even) |" in text
    assert text.count("| opened |") == 1
    assert text.count("| closed |") == 1


def test_break_even_trades_are_neither_wins_nor_losses():
    # win, loss, break-even, loss, loss, break-even, win
    pnls = [2.0, -1.0, 0.0, -1.0, -1.0, 0.0, 1.0]
    s = summarize([trade(p, 60, n) for n, p in enumerate(pnls)])
    assert (s.trades, s.wins, s.losses, s.break_even) == (7, 2, 3, 2)
    assert s.win_rate == pytest.approx(40.0)  # 2 of the 5 that won or lost
    assert s.certainty_ratio == pytest.approx(1.5 / 1.0)
    assert s.profit_factor == pytest.approx(3.0 / 3.0)
    assert s.longest_loss_streak == 2  # a break-even ends a streak, never extends it
    assert s.longest_win_streak == 1
    only_even = summarize([trade(0.0, 60, 0), trade(0.0, 60, 1)])
    assert (only_even.wins, only_even.losses, only_even.break_even) == (0, 0, 2)
    assert only_even.win_rate is None
    assert only_even.certainty_ratio is None
    assert (only_even.longest_win_streak, only_even.longest_loss_streak) == (0, 0)


@pytest.mark.parametrize("pnl", [0.1, -0.2026, 0.7, 0.3])
def test_equal_pnls_have_no_sharpe_despite_float_noise(pnl):
    noise = numpy.full(7, pnl).std(ddof=1)
    assert noise < 1e-15  # ~1e-17 for most values: a naive mean / stdev gives ~1e15
    s = summarize([trade(pnl, 60, n) for n in range(7)])
    assert s.stdev == 0
    assert s.sharpe is None
    assert s.annualized_sharpe is None


def test_losses_compound_and_the_drawdown_never_exceeds_the_stake():
    # 200 losses of 2.5 %: the summed figure is -500 %, a stake cannot lose that.
    s = summarize([trade(-2.5, 60, n) for n in range(200)])
    assert s.total_pnl == pytest.approx(-500.0)
    assert s.compounded_return == pytest.approx((0.975**200 - 1) * 100)
    assert 99 < s.max_drawdown < 100
    assert -100 <= s.expected_yearly_returns < -99
    # a short that loses more than its stake ends the stake at 0, never below
    wiped = summarize([trade(1.0, 60, 0), trade(-150.0, 60, 1), trade(5.0, 60, 2)])
    assert wiped.max_drawdown == 100
    assert wiped.compounded_return == -100
    assert wiped.expected_yearly_returns == -100
    from btkit.engine.statistics import equity_curve

    assert list(equity_curve(numpy.array([1.0, -150.0, 5.0]))) == [1.01, 0.0, 0.0]


def test_figures_are_finite_or_undefined():
    huge = summarize([trade(50.0, 1, n) for n in range(3)])  # +50 % a minute, for a year
    assert huge.expected_yearly_returns is None
    for value in dataclasses.asdict(huge).values():
        assert value is None or math.isfinite(value)
