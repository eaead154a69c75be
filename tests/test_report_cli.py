"""`btkit report` and `btkit status` as a user runs them, in a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3

from btkit.adapters.clock import WallClock


def test_report_writes_markdown_and_picture_from_the_ledger(replayed):
    project = replayed
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


def test_report_json_filters_and_out(replayed):
    project = replayed
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


def _listing(folder):
    return sorted((p.name, p.stat().st_size) for p in folder.iterdir())


def _damage(whole: bytes, kind: str) -> bytes:
    if kind == "empty":
        return b""
    if kind == "garbage":
        return bytes(range(256)) * 16
    if kind == "truncated":
        return whole[: len(whole) // 2]
    middle = bytearray(whole)  # every page after the first overwritten
    middle[4096:] = b"\x5a" * (len(whole) - 4096)
    return bytes(middle)


def test_report_on_a_damaged_ledger_is_a_clear_error_and_touches_nothing(replayed):
    project = replayed  # live history: backtests are kept apart, in data/runs/
    ledger = project.root / "data" / "btkit.sqlite"
    whole = ledger.read_bytes()
    report = project.root / "logs" / "live" / "my-strategy.md"
    kept_report = report.read_bytes()
    for kind in ("empty", "garbage", "truncated", "overwritten"):
        ledger.write_bytes(_damage(whole, kind))
        before = _listing(ledger.parent)
        for form in ("md", "json"):
            done = project.run("report", "my-strategy", "--format", form)
            assert done.returncode == 1, (kind, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr, kind
            assert f"the ledger {ledger.relative_to(project.root)}: " in done.stderr
            assert "move it aside" in done.stderr
            assert ledger.read_bytes() == _damage(whole, kind), kind
            assert _listing(ledger.parent) == before, kind
        assert report.read_bytes() == kept_report


def test_report_files_are_owner_only_and_replaced_whole(project):
    old_umask = os.umask(0)
    try:
        assert project.run("backtest", "ETHBTC", "-s", "my-strategy").returncode == 0
        target = project.root / "report.json"
        target.write_text("an older report\n")
        target.chmod(0o644)
        old_inode = target.stat().st_ino
        done = project.run(
            "report",
            "my-strategy",
            "--mode",
            "backtest",
            "--format",
            "json",
            "--out",
            "report.json",
        )
        assert done.returncode == 0, done.stderr
        assert (
            project.run(
                "report", "my-strategy", "--mode", "backtest", "--out", "out/report.md"
            ).returncode
            == 0
        )
    finally:
        os.umask(old_umask)
    assert json.loads(target.read_text())["summary"]["trades"] > 0
    assert target.stat().st_ino != old_inode  # a new file renamed over the old one
    for written in (target, project.root / "out/report.md", project.root / "out/report.png"):
        assert written.stat().st_mode & 0o777 == 0o600, written
    assert (project.root / "out").stat().st_mode & 0o777 == 0o700
    assert [p.name for p in project.root.iterdir() if p.name.startswith(".")] == []


def test_backtest_shows_the_last_signals_and_its_report_has_the_picture(project):
    done = project.run("backtest", "ETHBTC", "LTCBTC", "-s", "my-strategy")
    assert done.returncode == 0, done.stderr
    report = project.root / "logs" / "backtest" / "my-strategy.md"
    assert "![Equity curve](my-strategy.png)" in report.read_text()
    assert report.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert "closed signals" in done.stdout  # "Last 10 of N closed signals"
    assert "compounded" in done.stdout
    printed = project.run("report", "my-strategy", "--mode", "backtest")
    assert printed.returncode == 0
    closed_in_file = report.read_text().count("| closed |")
    assert closed_in_file > 10
    assert printed.stdout.count(" closed ") <= 10
    assert "The last 10 of" in printed.stdout
    assert "my-strategy.md" in printed.stdout


def test_a_close_without_a_valid_pnl_is_left_out_and_named(replayed):
    project = replayed
    args = ("report", "my-strategy", "--format", "json")
    before = json.loads(project.run(*args).stdout)["summary"]["trades"]
    db = sqlite3.connect(project.root / "data" / "btkit.sqlite")
    with db:  # what an older btkit stored for a close at a NaN price
        db.execute(
            "UPDATE events SET pnl_percentage = NULL, price_close = NULL WHERE rowid = "
            "(SELECT min(rowid) FROM events WHERE action = 'closed')"
        )
    db.close()
    done = project.run(*args)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["trades"] == before - 1
    assert "1 closed signal(s) in the ledger have no valid PnL" in done.stderr
    assert project.run("report", "my-strategy").returncode == 0
