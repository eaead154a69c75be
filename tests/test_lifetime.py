"""SPEC §3: a signal with an infinite lifetime lives until TP or SL, end to end.

JSON has no Infinity: the state file, `--json` events and the JSON report hold
null; humans read "until TP/SL". Everything here goes through the real CLI.
"""

from __future__ import annotations

import asyncio
import json
import math

import numpy as np

from btkit import Signal
from btkit.adapters.store.ledger import Query, SqliteLedger
from btkit.domain.model import OpenSignal
from btkit.drivers.backtest import _SCAN_CHUNK
from btkit.engine.decision import close_reason
from btkit.engine.scan import first_close_index
from tests.fakes import flat_candle, minute
from tests.test_backtest import collect, make_run

UNTIL_TP_SL = """
import math
from btkit import Signal, get_average_price, strategy

@strategy("forever", interval="5m", warmup_minutes=10)
async def forever(symbol):
    price = await get_average_price(symbol)
    return Signal("long", price, price * 1.004, price * 0.996, math.inf)
"""


def strict_json(text: str) -> object:
    """json.loads that refuses NaN / Infinity, as every other JSON parser does."""

    def refuse(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def close_key(event: dict) -> tuple:
    pnl = round(event["pnl"]["pnl_percentage"], 9)
    return event["signal"]["id"], event["close_reason"], event["close_timestamp"], pnl


def test_live_replay_and_backtest_keep_a_signal_until_tp_or_sl(project):
    project.write_strategy("forever.py", UNTIL_TP_SL)
    live = project.run("live", "ETHBTC", "-s", "forever", "--json")
    assert live.returncode == 0, live.stderr
    events = [strict_json(line) for line in live.stdout.splitlines()]
    closed = [e for e in events if e["action"] == "closed"]
    assert len(closed) >= 3, live.stderr
    assert {e["close_reason"] for e in closed} <= {"take_profit", "stop_loss"}
    assert all(e["signal"]["minute_estimated_time"] is None for e in events)
    # The history ran out with one signal open: it is kept, as null, in valid JSON.
    state = strict_json((project.signal_dir / "replay-forever-ETHBTC.json").read_text())
    assert state["signal"]["minute_estimated_time"] is None

    backtest = project.run("backtest", "ETHBTC", "-s", "forever", "--json")
    assert backtest.returncode == 0, backtest.stderr
    replayed = [strict_json(line) for line in backtest.stdout.splitlines()]
    assert [close_key(e) for e in replayed] == [close_key(e) for e in closed]

    plain = project.run("live", "ETHBTC", "-s", "forever", "--restart")
    assert plain.returncode == 0, plain.stderr
    assert "  until TP/SL  " in plain.stdout

    # The restored signal survives a restart, then shows in status and both reports.
    status = project.run("status")
    assert status.returncode == 0, status.stderr
    assert "until TP/SL" in status.stdout
    report = project.run("report", "forever", "--format", "json")
    assert report.returncode == 0, report.stderr
    document = strict_json(report.stdout)
    assert [s["minute_estimated_time"] for s in document["still_open"]] == [None]
    markdown = project.run("report", "forever")
    assert markdown.returncode == 0, markdown.stderr
    ledger = SqliteLedger(project.root / "data" / "btkit.sqlite")
    try:
        still_open = ledger.read(Query("forever")).still_open
        assert [s.minute_estimated_time for s in still_open] == [math.inf]
    finally:
        ledger.close()
    backtest_report = project.run("report", "forever", "--mode", "backtest", "--format", "json")
    assert backtest_report.returncode == 0, backtest_report.stderr  # from the run store
    still = strict_json(backtest_report.stdout)["still_open"]
    assert [s["minute_estimated_time"] for s in still] == [None]


FOREVER = OpenSignal("s", "long", 100.0, 110.0, 90.0, math.inf, "S", "t", "fake", minute(5))


def test_an_infinite_lifetime_never_expires_live_or_in_the_scan():
    assert FOREVER.expires_at is None
    assert close_reason(FOREVER, 100.0, minute(10**7)) is None
    assert close_reason(FOREVER, 110.0, minute(10**7)) == "take_profit"
    times = np.array([minute(n) for n in range(6, 10_000)], dtype=np.int64)
    prices = np.full(len(times), 100.0)
    assert first_close_index(FOREVER, times, prices) is None
    prices[-1] = 89.0
    assert first_close_index(FOREVER, times, prices) == len(times) - 1


def test_the_backtest_follows_an_endless_signal_past_many_scan_chunks():
    late = 5 + 3 * _SCAN_CHUNK // 60_000 + 17  # beyond several scan chunks
    candles = [flat_candle(n, 100.0) for n in range(late)]
    candles += [flat_candle(n, 111.0) for n in range(late, late + 10)]
    opened = []

    async def once_forever(symbol):
        if opened:
            return None
        opened.append(symbol)
        return Signal("long", 100.0, 110.0, 90.0, math.inf)

    run = make_run(candles, once_forever)
    closed = asyncio.run(collect(run))
    # The §3 price reaches 111 once all five minutes before a tick are at 111.
    assert [(c.close_reason, c.close_timestamp) for c in closed] == [
        ("take_profit", minute(late + 5))
    ]
