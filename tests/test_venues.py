"""The real ccxt client and the real CLI against OKX- and Bybit-speaking local servers."""

from __future__ import annotations

import shutil

import pytest

from btkit.adapters.store.candle_csv import read_candle_csv
from tests.conftest import ALWAYS_LONG, REPO, json_events
from tests.test_ccxt_exchange import closes, exchange_env
from tests.venue_servers import BybitServer, OkxServer, scaled

ETHBTC = REPO / "data" / "candles" / "ETHBTC-1m.csv"
WINDOW = ("--start", "2018-01-20T12:00", "--end", "2018-01-20T15:00")
DAY = ("--start", "2018-01-21T00:00", "--end", "2018-01-21T12:00")
START, END = 1516492800000, 1516536000000  # DAY in ms

NEEDS_400 = """
from btkit import Signal, get_average_price, get_candles, strategy

@strategy("needs-400", interval="15m", warmup_minutes=400)
async def needs_400(symbol):
    candles = await get_candles(symbol, "1m", 400)
    if len(candles) < 350:
        return None
    price = await get_average_price(symbol)
    seen = f"{len(candles)} {candles[0].timestamp} {candles[-1].timestamp}"
    return Signal("long", price, price * 1.002, price * 0.998, 30, note=seen)
"""


@pytest.fixture(scope="module")
def eth():
    return read_candle_csv(ETHBTC)


@pytest.fixture
def okx(eth):
    with OkxServer({"ETH-BTC": eth}) as server:
        yield server


@pytest.fixture
def bybit(eth):
    with BybitServer({"ETHBTC": eth}, {"ETHBTC": scaled(eth, 1.01)}) as server:
        yield server


def opened_notes(stdout):
    return [
        (e["signal"]["timestamp"], e["signal"]["note"])
        for e in json_events(stdout)
        if e["action"] == "opened"
    ]


def test_okx_pages_of_300_still_give_a_strategy_its_400_newest_candles(project, okx):
    project.write_strategy("needs_400.py", NEEDS_400)
    replay_dir = project.root / "replay-data" / "candles"
    replay_dir.mkdir(parents=True)
    shutil.copy(ETHBTC, replay_dir / "ETH-BTC-1m.csv")  # OKX's name for the market
    args = ("live", "ETH-BTC", "-s", "needs-400", "--json", *WINDOW)
    replay = project.run(*args, "-e", "replay", "--data-dir", "replay-data")
    live = project.run(*args, "-e", "okx", env=exchange_env(okx))
    assert replay.returncode == 0, replay.stderr
    assert live.returncode == 0, live.stderr
    assert len(opened_notes(replay.stdout)) >= 3
    assert opened_notes(live.stdout) == opened_notes(replay.stdout)
    assert closes(live.stdout) == closes(replay.stdout)
    assert all(int(q["limit"]) <= 300 for q in okx.candle_queries)  # OKX's cap, asked for


def test_okx_errors_sent_with_http_200_and_empty_bodies_are_retried(project, okx):
    project.write_strategy("always_long.py", ALWAYS_LONG)
    okx.inject("busy", "ok", "empty-body", "busy")
    live = project.run(
        "live",
        "ETH-BTC",
        "-s",
        "always-long",
        "-e",
        "okx",
        "--json",
        *WINDOW,
        env=exchange_env(okx),
    )
    assert live.returncode == 0, live.stderr
    assert "ExchangeNotAvailable" in live.stderr
    assert "not JSON" in live.stderr
    assert "skipped" not in live.stderr
    assert [e["action"] for e in json_events(live.stdout)] == ["opened"]


def test_okx_symbol_hints_are_in_okx_form_and_case_does_not_matter(project, okx):
    env = exchange_env(okx)
    wrong = project.run("live", "ETHBTC", "-s", "my-strategy", "-e", "okx", *WINDOW, env=env)
    assert wrong.returncode == 2
    assert "okx has no market 'ETHBTC'. Close matches: ETH-BTC" in wrong.stderr
    assert "market id (ETH-BTC) or the unified symbol (ETH/BTC)" in wrong.stderr
    lower = project.run("live", "eth-btc", "-s", "my-strategy", "-e", "okx", *WINDOW, env=env)
    assert lower.returncode == 0, lower.stderr
    assert (project.signal_dir / "okx-sim-my-strategy-ETH-BTC.json").exists()


def test_bybit_system_error_10016_is_retried_and_spot_and_perpetual_stay_apart(project, bybit):
    (project.root / "data" / "candles" / "ETHBTC-1m.csv").unlink()
    bybit.inject("10016", "10016", "ok", "10016", "ok", "ok", "10016")
    env = {**exchange_env(bybit), "BTKIT_EXCHANGE_PAGE_LIMIT": "100"}
    done = project.run("download", "ETHBTC", "ETH/BTC:BTC", "-e", "bybit", *DAY, env=env)
    assert done.returncode == 0, done.stderr
    assert "System error. Please try again later." in done.stderr
    candles = project.root / "data" / "candles"
    spot = read_candle_csv(candles / "ETHBTC-1m.csv")
    perpetual = read_candle_csv(candles / "ETHBTC.P-1m.csv")
    original = read_candle_csv(ETHBTC).between(START, END)
    assert spot.timestamp.tolist() == original.timestamp.tolist()
    assert spot.close.tolist() == original.close.tolist()
    assert perpetual.timestamp.tolist() == original.timestamp.tolist()
    assert perpetual.close.tolist() == pytest.approx((original.close * 1.01).tolist())
    assert not list(candles.glob("*.part"))


def test_bybit_spot_and_perpetual_sharing_an_id_have_their_own_state(project, bybit):
    project.write_strategy("always_long.py", ALWAYS_LONG)
    env = exchange_env(bybit)
    args = ("live", "ETHBTC", "ETH/BTC:BTC", "-s", "always-long", "-e", "bybit", "--json")
    live = project.run(*args, *WINDOW, env=env)
    assert live.returncode == 0, live.stderr
    events = json_events(live.stdout)
    prices = {e["symbol"]: e["signal"]["price_open"] for e in events if e["action"] == "opened"}
    assert set(prices) == {"ETHBTC", "ETHBTC.P"}
    assert prices["ETHBTC.P"] == pytest.approx(prices["ETHBTC"] * 1.01)
    assert (project.signal_dir / "bybit-sim-always-long-ETHBTC.json").exists()
    assert (project.signal_dir / "bybit-sim-always-long-ETHBTC.P.json").exists()


def test_two_spellings_of_one_market_are_refused(project, bybit):
    done = project.run(
        "live",
        "ETHBTC",
        "eth/btc",
        "-s",
        "my-strategy",
        "-e",
        "bybit",
        *WINDOW,
        env=exchange_env(bybit),
    )
    assert done.returncode == 2
    assert "ETHBTC and eth/btc are the same market (ETHBTC)" in done.stderr
