"""The outage budget counts failed exchange requests, not quiet markets (issue 9 item 7)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import stat

import pytest

from btkit import Signal, get_candles, strategy
from btkit.adapters.clock import SimulatedClock
from btkit.adapters.exchanges.retry import RetryPolicy, with_retries
from btkit.adapters.store.candle_append import CandleAppender
from btkit.adapters.store.signal_state import MemorySignalStore
from btkit.domain.errors import ExchangeOutageError, TransientExchangeError
from btkit.domain.model import MINUTE_MS
from btkit.drivers.live import LiveOptions, LiveSession
from btkit.drivers.runner import SymbolRunner
from btkit.engine.pnl import Costs
from btkit.market.service import ExchangeMarket
from tests.fakes import ListExchange, flat_candle, minute


def session_over(exchange, get_signal, *, budget_minutes=10, end=120):
    clock = SimulatedClock(minute(5))
    runner = SymbolRunner(
        symbol="S",
        strategy=strategy("test")(get_signal),
        exchange_name="fake",
        market=ExchangeMarket(exchange),
        store=MemorySignalStore(),
        costs=Costs(),
    )
    options = LiveOptions(settle_ms=0, outage_budget_ms=budget_minutes * MINUTE_MS)
    return LiveSession([runner], clock, options=options, ends={"S": minute(end)})


async def collect(session):
    return [r async for r in session.events()]


def test_an_hour_without_trades_under_an_open_signal_is_not_an_outage():
    # Candles stop at minute 20 and come back at minute 85: 65 quiet minutes, budget 10.
    quiet = range(20, 85)
    candles = [flat_candle(n, 100.0) for n in range(130) if n not in quiet and n != 90]
    candles.append(flat_candle(90, 120.0, volume=50.0))  # take-profit after the gap

    async def long_once(symbol):
        return Signal("long", 100.0, 110.0, 90.0, 500)

    session = session_over(ListExchange(candles), long_once, end=125)
    results = asyncio.run(collect(session))
    assert [r.action for r in results][:2] == ["opened", "closed"]
    assert results[1].close_reason == "take_profit"
    assert results[1].close_timestamp == minute(91)
    assert session.runners[0].last_tick == minute(125)


def test_exchange_errors_inside_get_signal_skip_the_tick_and_are_not_strategy_bugs(caplog):
    candles = [flat_candle(n, 100.0) for n in range(200)]
    failing = {minute(n) for n in range(10, 14)}
    box = {}
    exchange = ListExchange(
        candles,
        fail=lambda: (
            TransientExchangeError("HTTP 502 from the exchange")
            if box["clock"].now_ms() in failing
            else None
        ),
    )
    calls = []

    async def reads_candles(symbol):
        calls.append(box["clock"].now_ms())
        await get_candles(symbol, "5m", 3)
        return None

    session = session_over(exchange, reads_candles, end=30)
    box["clock"] = session.clock
    with caplog.at_level(logging.WARNING):
        asyncio.run(collect(session))
    assert "raised in get_signal" not in caplog.text
    assert "Traceback" not in caplog.text
    assert caplog.text.count("skipped: HTTP 502 from the exchange") == 4
    # the throttle is not used up by a failed call: the next minute asks again
    assert minute(14) in calls


def test_a_retry_after_longer_than_the_budget_is_cut_to_it():
    now = [0.0]
    waits = []

    async def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    async def rate_limited():
        raise TransientExchangeError("429", retry_after=600.0)

    policy = RetryPolicy(max_retries=4, budget_seconds=120.0)
    with pytest.raises(ExchangeOutageError, match="longer than the outage budget"):
        asyncio.run(
            with_retries(
                rate_limited, policy=policy, sleep=sleep, what="x", monotonic=lambda: now[0]
            )
        )
    assert waits == [120.0]


def test_a_persistent_policy_retries_past_max_retries_until_the_budget_is_spent():
    now = [0.0]
    failures = [TransientExchangeError("503")] * 9

    async def sleep(seconds):
        now[0] += seconds

    async def flaky():
        if failures:
            raise failures.pop()
        return "candles"

    policy = RetryPolicy(max_retries=2, base_seconds=1.0, cap_seconds=4.0, persistent=True)
    result = asyncio.run(
        with_retries(
            flaky,
            policy=policy,
            sleep=sleep,
            what="x",
            rng=random.Random(3),
            monotonic=lambda: now[0],
        )
    )
    assert result == "candles"
    assert now[0] <= 9 * 4.0


def test_the_download_part_file_is_owner_only_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        appender = CandleAppender(tmp_path / "X-1m.csv")
        appender.append([flat_candle(0, 1.5)])
    finally:
        os.umask(old)
    assert stat.S_IMODE(appender.part.stat().st_mode) == 0o600
