"""`btkit report` and `btkit status` as a user runs them, in a subprocess."""

from __future__ import annotations

import json

from btkit.clock import WallClock


def test_report_writes_markdown_and_picture_from_the_ledger(project):
    assert project.run("live", "ETHBTC", "LTCBTC", "-s", "my-strategy").returncode == 0
    done = project.run("report", "my-strategy")
    assert done.returncode == 0, done.stderr
    markdown = project.root / "logs" / "live" / "my-strategy.md"
    picture = markdown.with_suffix(".png")
    assert picture.read_bytes().startswith(b"\x89PNG")
    text = markdown.read_text()
    assert "![Equity curve](my-strategy.png)" in text
    for figure in (
        "Win rate",
        "Sharpe ratio",
        "Annualized Sharpe ratio",
        "Certainty ratio",
        "Expected yearly returns",
        "Max drawdown",
        "Sortino ratio",
        "Calmar ratio",
        "Profit factor",
        "Expectancy",
        "Average duration",
        "Best trade",
        "Longest loss streak",
        "## Per symbol",
        "## Per close reason",
        "## Events",
    ):
        assert figure in text
    assert "Closed signals" in done.stdout  # printed too


def test_report_json_filters_and_out(project):
    assert project.run("live", "ETHBTC", "LTCBTC", "-s", "my-strategy").returncode == 0
    everything = json.loads(project.run("report", "my-strategy", "--format", "json").stdout)
    only_eth = project.run(
        "report", "my-strategy", "--format", "json", "--symbol", "ETHBTC", "--out", "eth.json"
    )
    assert only_eth.returncode == 0
    eth = json.loads((project.root / "eth.json").read_text())
    assert {s["symbol"] for s in eth["closed_signals"]} == {"ETHBTC"}
    assert 0 < eth["summary"]["trades"] < everything["summary"]["trades"]
    first = everything["closed_signals"][0]
    assert set(first) >= {
        "id",
        "symbol",
        "position",
        "open_time",
        "close_time",
        "price_open",
        "price_close",
        "close_reason",
        "pnl_percentage",
    }
    late = json.loads(
        project.run(
            "report", "my-strategy", "--format", "json", "--since", "2018-01-20T20:00"
        ).stdout
    )
    assert all(s["open_time"] >= 1516478400000 for s in late["closed_signals"])


def test_the_daemon_keeps_the_live_report_current(project):
    assert project.run("live", "ETHBTC", "-s", "my-strategy").returncode == 0
    text = (project.root / "logs" / "live" / "my-strategy.md").read_text()
    closes = json.loads(project.run("report", "my-strategy", "--format", "json").stdout)
    assert f"| Closed signals | {closes['summary']['trades']} |" in text


def test_backtest_mode_reports_the_latest_backtest_run(project):
    assert project.run("backtest", "ETHBTC", "-s", "my-strategy").returncode == 0
    done = project.run("report", "my-strategy", "--mode", "backtest", "--format", "json")
    document = json.loads(done.stdout)
    assert document["run_id"].startswith("backtest-")
    assert document["summary"]["trades"] > 0


def test_report_errors_are_friendly(project):
    none_yet = project.run("report", "my-strategy")
    assert none_yet.returncode == 2
    assert "No ledger" in none_yet.stderr
    assert project.run("live", "ETHBTC", "-s", "my-strategy").returncode == 0
    unknown = project.run("report", "other")
    assert unknown.returncode == 2
    assert "Strategies with events: my-strategy" in unknown.stderr
    bad = project.run("report", "my-strategy", "--format", "xml")
    assert bad.returncode == 2


def test_status_lists_open_signals_and_warns_about_stale_ones(project):
    assert project.run("status").stdout.startswith("No open signals")
    project.signal_dir.mkdir(parents=True)
    opened = WallClock().now_ms() - 3 * 3_600_000
    state = {
        "version": 1,
        "exchange_name": "binance",
        "strategy_name": "my-strategy",
        "symbol": "BTCUSDT",
        "last_signal_call": opened,
        "last_tick": opened,
        "signal": {
            "id": "abc",
            "position": "long",
            "price_open": 100.0,
            "price_take_profit": 110.0,
            "price_stop_loss": 95.0,
            "minute_estimated_time": 60,
            "symbol": "BTCUSDT",
            "strategy_name": "my-strategy",
            "exchange_name": "binance",
            "timestamp": opened,
            "note": "",
        },
    }
    (project.signal_dir / "binance-my-strategy-BTCUSDT.json").write_text(json.dumps(state))
    (project.signal_dir / "binance-x-ETHUSDT.json").write_text("{broken")
    done = project.run("status")
    assert done.returncode == 0
    assert "BTCUSDT" in done.stdout
    assert "expired" in done.stdout
    assert "no daemon runs it and its lifetime ended 120 min ago" in done.stdout
    assert "unreadable" in done.stdout
