"""Bad candle files through the real CLI: a few bad rows are dropped and named, a
wrong file is refused with the fix, and nothing ends in a traceback."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ALWAYS_LONG, json_events

WINDOW = ("--start", "2018-01-20T06:00", "--end", "2018-01-20T14:00")


def _spoil(project, symbol, edit):
    """Rewrite data rows of the project's candle file by their 0-based index."""
    path = project.root / "data" / "candles" / f"{symbol}-1m.csv"
    lines = path.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    path.write_text(header + "".join(edit(rows)))
    return path, rows


def _set(row, column, value):
    cells = row.rstrip("\n").split(",")
    cells[column] = value
    return ",".join(cells) + "\n"


def test_a_few_bad_rows_are_dropped_and_named_in_backtest_and_replay(project):
    project.write_strategy("always_long.py", ALWAYS_LONG)

    def spoil(rows):
        rows[400] = _set(rows[400], 2, "0.0001")  # high far below low
        rows[500] = _set(rows[500], 4, "0")  # close 0
        rows[600] = _set(rows[600], 1, "nan")
        return rows

    _spoil(project, "ETHBTC", spoil)
    backtest = project.run("backtest", "ETHBTC", "-s", "always-long", "--json")
    assert backtest.returncode == 0, backtest.stderr
    assert (
        "dropped 3 bad candle(s): line 402 (high is below low), line 502 (a price is not > 0), "
        "line 602 (a price is not a finite number)" in backtest.stderr
    )
    assert all(
        e["pnl"]["pnl_percentage"] == e["pnl"]["pnl_percentage"]
        for e in json_events(backtest.stdout)
        if e["action"] == "closed"
    )
    replay = project.run("live", "ETHBTC", "-s", "always-long", "--json", *WINDOW)
    assert replay.returncode == 0, replay.stderr
    assert "dropped 3 bad candle(s): line 402 (high is below low)" in replay.stderr  # cached


def test_a_file_in_seconds_is_refused_with_what_to_do(project):
    def seconds(rows):
        return [str(int(row.split(",", 1)[0]) // 1000) + "," + row.split(",", 1)[1] for row in rows]

    _spoil(project, "ETHBTC", seconds)
    for args in (("backtest", "ETHBTC"), ("live", "ETHBTC", *WINDOW)):
        done = project.run(*args, "-s", "my-strategy")
        assert done.returncode == 2, done.stderr
        assert "the timestamps are in seconds (line 2: 1516423980)" in done.stderr
        assert "Multiply the first column by 1000" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_2_gb_sparse_file_is_refused_at_once(project):
    path = project.root / "data" / "candles" / "ETHBTC-1m.csv"
    with path.open("r+b") as handle:
        handle.truncate(2 * 1024**3)  # past its end: a hole of NUL bytes, as a cut copy leaves
    done = project.run("backtest", "ETHBTC", "-s", "my-strategy", "--json")
    assert done.returncode == 2, done.stderr
    assert "NUL bytes" in done.stderr
    assert "the file is damaged" in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout or "{}") == {}


def test_candle_files_are_found_by_any_spelling_of_the_symbol(tmp_path):
    from btkit.adapters.store.candle_files import find_candle_file
    from btkit.domain.errors import DataError

    for name in ("ETH-BTC", "LTCBTC", "XRP_ETH", "ETHBTC:BTC", "ABC-DE", "AB-CDE"):
        (tmp_path / f"{name}-1m.csv").touch()
    found = {s: find_candle_file(tmp_path, s).name for s in ("ETH/BTC", "eth-btc", "ETHBTC")}
    assert set(found.values()) == {"ETH-BTC-1m.csv"}
    assert find_candle_file(tmp_path, "LTC/BTC").name == "LTCBTC-1m.csv"
    assert find_candle_file(tmp_path, "xrp/eth").name == "XRP_ETH-1m.csv"
    assert find_candle_file(tmp_path, "ETH/BTC:BTC").name == "ETHBTC:BTC-1m.csv"
    assert find_candle_file(tmp_path, "AB-CDE").name == "AB-CDE-1m.csv"  # exact name wins
    with pytest.raises(DataError, match="ABCDE matches several candle files") as ambiguous:
        find_candle_file(tmp_path, "ABCDE")
    assert "AB-CDE-1m.csv, ABC-DE-1m.csv" in str(ambiguous.value)
    with pytest.raises(DataError, match=r"No candle file for DOGE/BTC .* Available: AB-CDE, "):
        find_candle_file(tmp_path, "DOGE/BTC")


def test_backtest_and_replay_of_eth_btc_find_a_file_named_the_exchange_s_way(project):
    project.write_strategy("always_long.py", ALWAYS_LONG)
    candles = project.root / "data" / "candles"
    (candles / "ETHBTC-1m.csv").rename(candles / "ETH-BTC-1m.csv")  # as OKX names it
    backtest = project.run("backtest", "ETH/BTC", "-s", "always-long", "--json")
    assert backtest.returncode == 0, backtest.stderr
    assert {e["symbol"] for e in json_events(backtest.stdout)} == {"ETH-BTC"}
    live = project.run("live", "eth/btc", "-s", "always-long", "--json", *WINDOW)
    assert live.returncode == 0, live.stderr
    assert {e["symbol"] for e in json_events(live.stdout)} == {"ETH-BTC"}
    assert (project.signal_dir / "replay-always-long-ETH-BTC.json").exists()
    (candles / "LTCBTC-1m.csv").rename(candles / "ETHBTC-1m.csv")
    for args in (("backtest", "ETH/BTC"), ("live", "ETH/BTC", *WINDOW)):
        ambiguous = project.run(*args, "-s", "always-long")
        assert ambiguous.returncode == 2, ambiguous.stderr
        assert "ETH-BTC-1m.csv, ETHBTC-1m.csv" in ambiguous.stderr
        assert "Traceback" not in ambiguous.stderr
