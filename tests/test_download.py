"""`btkit download` against the local exchange server: resumable and never torn."""

from __future__ import annotations

import subprocess
import time

import pytest

from btkit.adapters.store.candle_append import CandleAppender
from btkit.adapters.store.candle_csv import read_candle_csv
from tests.binance_server import BinanceServer
from tests.conftest import REPO
from tests.fakes import flat_candle

START, END = 1516492800000, 1516536000000  # 2018-01-21 00:00 to 12:00 UTC
RANGE = ("--start", "2018-01-21T00:00", "--end", "2018-01-21T12:00")


@pytest.fixture
def binance():
    source = read_candle_csv(REPO / "data" / "candles" / "LTCBTC-1m.csv")
    with BinanceServer({"LTCBTC": source}) as server:
        yield server


def expected_rows():
    lines = (REPO / "data" / "candles" / "LTCBTC-1m.csv").read_text().splitlines()[1:]
    return [line for line in lines if START <= int(line.split(",")[0]) < END]


def env_for(server):
    return {
        "BTKIT_EXCHANGE_URL": server.url,
        "BTKIT_EXCHANGE_RATE_LIMIT_MS": "1",
        "BTKIT_EXCHANGE_PAGE_LIMIT": "100",
    }


def test_download_killed_mid_way_resumes_and_appends_only_what_is_missing(project, binance):
    target = project.root / "data" / "candles" / "LTCBTC-1m.csv"
    target.unlink()
    part = target.with_name("LTCBTC-1m.csv.part")
    binance.faults.delay_seconds = 0.3
    command = project.command("download", "LTCBTC", "-e", "binance", *RANGE)
    with subprocess.Popen(
        command,
        cwd=project.root,
        env={**project.env(), **env_for(binance)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as victim:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            not part.exists() or part.read_text().count("\n") < 200
        ):
            time.sleep(0.05)
        victim.kill()
    assert not target.exists()  # never half-written: the CSV appears only whole
    kept = part.read_text().splitlines()
    assert 200 <= len(kept) < len(expected_rows())

    binance.faults.delay_seconds = 0.0
    binance.klines_starts.clear()
    done = project.run("download", "LTCBTC", "-e", "binance", *RANGE, env=env_for(binance))
    assert done.returncode == 0, done.stderr
    # the CSV was absent: all rows are new to it, the killed run's part included
    assert f"LTCBTC: {len(expected_rows()):,} new candles" in done.stdout
    assert min(binance.klines_starts) == int(kept[-1].split(",")[0]) + 60_000
    assert not part.exists()
    rows = target.read_text().splitlines()
    assert rows[0] == "timestamp,open,high,low,close,volume"
    parsed = read_candle_csv(target)
    original = read_candle_csv(REPO / "data" / "candles" / "LTCBTC-1m.csv").between(START, END)
    assert parsed.timestamp.tolist() == original.timestamp.tolist()
    assert parsed.close.tolist() == original.close.tolist()
    assert parsed.volume.tolist() == original.volume.tolist()

    again = project.run("download", "LTCBTC", "-e", "binance", *RANGE, env=env_for(binance))
    assert "LTCBTC: 0 new candles" in again.stdout


def test_download_errors(project, binance):
    replay = project.run("download", "LTCBTC", "-e", "replay")
    assert replay.returncode == 2
    unknown = project.run("download", "NOPE", "-e", "binance", *RANGE, env=env_for(binance))
    assert unknown.returncode == 2
    assert "has no market 'NOPE'" in unknown.stderr


def test_a_torn_part_file_is_cut_back_to_its_last_whole_line(tmp_path):
    target = tmp_path / "X-1m.csv"
    appender = CandleAppender(target)
    appender.append([flat_candle(0, 1.5), flat_candle(1, 1.6)])
    with appender.part.open("a") as handle:
        handle.write("1700000120000,1.7,1.")  # a crash mid-line
    reopened = CandleAppender(target)
    assert reopened.last_timestamp() == flat_candle(1, 1.6).timestamp
    assert reopened.part.read_text().count("\n") == 2
    assert reopened.commit() == 2
    assert read_candle_csv(target).close.tolist() == [1.5, 1.6]


def test_a_range_past_the_exchanges_last_candle_succeeds_and_leaves_no_part(project, binance):
    target = project.root / "data" / "candles" / "LTCBTC-1m.csv"
    target.unlink()
    # the server's history ends at 2018-01-30 04:50; it answers [] after that
    past_the_end = ("--start", "2018-01-29T20:00", "--end", "2018-02-04T00:00")
    done = project.run("download", "LTCBTC", "-e", "binance", *past_the_end, env=env_for(binance))
    assert done.returncode == 0, done.stderr
    assert not target.with_name("LTCBTC-1m.csv.part").exists()
    lines = (REPO / "data" / "candles" / "LTCBTC-1m.csv").read_text().splitlines()[1:]
    wanted = [line for line in lines if int(line.split(",")[0]) >= 1517256000000]
    assert read_candle_csv(target).timestamp.tolist() == [int(w.split(",")[0]) for w in wanted]
    assert binance.klines_requests < 20  # the empty tail is found at once, not walked


def test_an_exchange_that_fails_for_good_keeps_what_was_fetched_in_the_csv(project, binance):
    target = project.root / "data" / "candles" / "LTCBTC-1m.csv"
    target.unlink()
    binance.inject("ok", "ok", "ok")  # three pages of 100, then every request fails
    env = {
        **env_for(binance),
        "BTKIT_OUTAGE_BUDGET_MINUTES": "0.02",
        "BTKIT_RETRY_BASE_SECONDS": "0.1",
    }
    binance.faults.queue.extend(["503"] * 1000)
    done = project.run("download", "LTCBTC", "-e", "binance", *RANGE, env=env)
    assert done.returncode == 1
    assert "longer than the outage budget" in done.stderr
    assert not target.with_name("LTCBTC-1m.csv.part").exists()
    kept = read_candle_csv(target).timestamp.tolist()
    assert len(kept) >= 100
    assert kept == [int(row.split(",")[0]) for row in expected_rows()[: len(kept)]]
