"""The report's forms: JSON nulls, the terminal's short form, the two-panel picture."""

from __future__ import annotations

import json

import pytest

from btkit.adapters.report.builder import LiveReportWriter, json_report, write_report_forms
from btkit.adapters.report.picture import draw_equity_curve, equity_figure
from btkit.adapters.store.ledger import LedgerContents, Query, SqliteLedger
from btkit.domain.model import ClosedResult, OpenSignal, Pnl
from btkit.engine.statistics import Trade

HOUR = 3_600_000


def trade(pnl: float, n: int) -> Trade:
    opened = n * HOUR
    return Trade(
        f"id{n}", "ETHBTC", "long", opened, opened + HOUR // 2, "take_profit", 1, 1, 1.1, 0.9, pnl
    )


def test_json_with_no_closed_signal_is_null_but_for_the_counts():
    still_open = OpenSignal("s1", "long", 1.0, 1.1, 0.9, 60, "ETHBTC", "x", "replay", HOUR)
    document = json_report(LedgerContents([], [still_open], None), Query("x"))
    text = json.dumps(document, allow_nan=False)  # strict JSON: no NaN, no Infinity
    summary = json.loads(text)["summary"]
    assert summary["trades"] == summary["wins"] == summary["losses"] == 0
    assert summary["sharpe"] is None
    assert summary["total_pnl"] is None
    assert summary["max_drawdown"] is None
    assert summary["win_rate"] is None


def test_equal_pnls_give_a_null_sharpe_in_json():
    document = json_report(LedgerContents([trade(0.1, n) for n in range(5)], [], None), Query("x"))
    assert document["summary"]["sharpe"] is None
    assert document["summary"]["stdev"] == 0
    assert "compounded" in document["basis"]


def test_a_terminal_shows_the_summary_and_the_last_events_only(tmp_path):
    contents = LedgerContents([trade(0.5 if n % 2 else -0.4, n) for n in range(400)], [], None)
    path = tmp_path / "x.md"
    short = write_report_forms(contents, Query("x"), path)
    full = path.read_text()
    assert full.count("| closed |") == 400
    assert short.count("| closed |") + short.count("| opened |") == 10
    picture = tmp_path / "x.png"
    assert (
        f"The last 10 of 800 events; all of them are in {path} (equity picture: {picture})" in short
    )
    assert "![Equity curve](x.png)" in full
    assert "Max drawdown (of the stake, from its peak)" in short
    assert short.index("## Summary") < short.index("## Events")


def test_the_picture_has_an_equity_and_a_drawdown_panel(tmp_path):
    from matplotlib import pyplot

    trades = [trade(p, n) for n, p in enumerate([1.0, -30.0, 2.0, -50.0])]
    figure = equity_figure(trades, "x")
    try:
        top, bottom = figure.axes
        assert "drawdown" in bottom.get_ylabel()
        falls = bottom.lines[0].get_ydata()
        # 1.01 -> 0.707 -> 0.72114 -> 0.36057: from the peak 1.01, -64.3 %
        assert min(falls) == pytest.approx(-(1 - 0.36057 / 1.01) * 100, abs=1e-3)
        assert max(top.lines[0].get_ydata()) == pytest.approx(1.0)
    finally:
        pyplot.close(figure)
    path = draw_equity_curve(trades, "x", tmp_path / "x.png")
    assert path is not None
    assert path.read_bytes().startswith(b"\x89PNG")
    assert path.stat().st_mode & 0o777 == 0o600


def _close(ledger: SqliteLedger, n: int, pnl: float) -> None:
    signal = OpenSignal(f"s{n}", "long", 1.0, 1.1, 0.9, 60, "ETHBTC", "x", "replay", n * HOUR)
    ledger.write_opened(signal)
    ledger.write_closed(
        ClosedResult(
            strategy_name="x",
            exchange_name="replay",
            symbol="ETHBTC",
            timestamp=n * HOUR + HOUR // 2,
            current_price=1.0,
            signal=signal,
            close_reason="time_expired",
            close_timestamp=n * HOUR + HOUR // 2,
            pnl=Pnl(pnl, 1.0, 1.0),
        )
    )


def test_the_live_report_redraws_its_picture_at_most_once_a_minute(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    now = [0.0]
    writer = LiveReportWriter(ledger, tmp_path / "logs", "x", lambda: now[0])
    report = tmp_path / "logs" / "live" / "x.md"
    picture = report.with_suffix(".png")
    _close(ledger, 0, 1.0)
    writer.on_closed()
    writer.wait()  # the rewrite runs on a thread
    first = picture.read_bytes()
    assert "| Closed signals | 1 |" in report.read_text()
    for n, second in enumerate((2.0, 30.0), start=1):  # Markdown rewritten, picture kept
        now[0] = second
        _close(ledger, n, -2.0)
        writer.on_closed()
        writer.wait()
        assert f"| Closed signals | {n + 1} |" in report.read_text()
        assert "![Equity curve](x.png)" in report.read_text()
        assert picture.read_bytes() == first
    writer.flush()  # on stop: the picture catches up
    assert picture.read_bytes() != first
    stopped = picture.read_bytes()
    now[0] = 95.0
    _close(ledger, 3, 0.5)
    writer.on_closed()
    writer.flush()
    assert picture.read_bytes() != stopped
    ledger.close()
