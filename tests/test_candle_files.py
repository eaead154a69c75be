"""Bad candle files through the real CLI: a few bad rows are dropped and named, a
wrong file is refused with the fix, and nothing ends in a traceback."""

from __future__ import annotations

import json

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
    assert "3 bad row(s) were dropped" in replay.stderr  # the cache remembers them


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
