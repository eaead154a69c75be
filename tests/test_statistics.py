"""Report figures against values computed by hand."""

from __future__ import annotations

import pytest

from btkit.report.markdown import ReportInput, render
from btkit.report.statistics import Trade, breakdown, summarize

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
    assert s.expected_yearly_returns == pytest.approx(0.5 * 525_600 / 90)  # 2920
    assert s.max_drawdown == pytest.approx(2.0)  # cumulative 2, 1, 4, 2
    assert s.calmar == pytest.approx(1460.0)
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
    assert s.max_drawdown == pytest.approx(4.0)
    assert s.longest_loss_streak == 2


def test_one_trade_has_no_deviation():
    s = summarize([trade(1.5, 45, 0)])
    assert s.stdev is None
    assert s.sharpe is None
    assert s.annualized_sharpe is None
    assert s.average_pnl == 1.5


def test_zero_trades():
    s = summarize([])
    assert s.trades == 0
    assert s.win_rate is None
    assert s.average_pnl is None
    assert s.total_pnl == 0
    assert s.best is None
    text = render(ReportInput("Live report: x", []))
    assert "No events yet" in text


def test_breakdowns_and_na_in_markdown():
    trades = [trade(1, 30, 0, "ETHBTC"), trade(-1, 30, 1, "LTCBTC", "stop_loss")]
    assert set(breakdown(trades, lambda t: t.symbol)) == {"ETHBTC", "LTCBTC"}
    text = render(ReportInput("Backtest report: x", [trade(1.5, 45, 0)]))
    assert "| Sharpe ratio | N/A |" in text
    assert "| Win rate | 100.00% (1W / 0L) |" in text
    assert text.count("| opened |") == 1
    assert text.count("| closed |") == 1
