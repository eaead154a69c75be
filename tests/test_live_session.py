"""The live driver with a simulated clock and function-backed exchanges."""

from __future__ import annotations

import asyncio
import logging

import pytest

from btkit import Signal, get_candles, strategy
from btkit.adapters.clock import SimulatedClock
from btkit.adapters.store.signal_state import MemorySignalStore
from btkit.domain.errors import ExchangeOutageError, TransientExchangeError
from btkit.domain.model import MINUTE_MS
from btkit.drivers.live import LiveOptions, LiveSession, SymbolFailedError
from btkit.drivers.runner import SymbolRunner
from btkit.engine.pnl import Costs
from btkit.market.service import ExchangeMarket
from tests.fakes import ListExchange, flat_candle, minute


async def no_signal(symbol):
    return None


async def long_signal(symbol):
    return Signal("long", 100.0, 150.0, 50.0, 30)


def make_session(
    exchange,
    get_signal=no_signal,
    *,
    symbols=("S",),
    options=LiveOptions(settle_ms=0),
    end=None,
    strategy_timeout=None,
):
    end = minute(60) if end is None else end
    definition = strategy("test")(get_signal)
    clock = SimulatedClock(minute(5))
    market = ExchangeMarket(exchange)
    runners = [
        SymbolRunner(
            symbol=s,
            strategy=definition,
            exchange_name="fake",
            market=market,
            store=MemorySignalStore(),
            costs=Costs(),
            strategy_timeout=strategy_timeout,
            warn_after_failures=options.warn_after,
        )
        for s in symbols
    ]
    return LiveSession(runners, clock, options=options, ends={s: end for s in symbols})


async def collect(session):
    return [r async for r in session.events()]


def test_an_outage_longer_than_the_budget_ends_the_run():
    failing = ListExchange([], fail=lambda: TransientExchangeError("HTTP 503"))
    options = LiveOptions(settle_ms=0, outage_budget_ms=10 * MINUTE_MS)
    session = make_session(failing, options=options, end=minute(600))
    with pytest.raises(ExchangeOutageError, match="longer than the outage budget"):
        asyncio.run(collect(session))
    assert failing.fetches == 12  # minutes 5..16: at 16 the outage exceeds 10 minutes


def test_short_outages_are_skipped_and_logged(caplog):
    candles = [flat_candle(n, 100.0) for n in range(70)]
    down = {minute(n) for n in range(10, 13)}
    clock_box = {}
    exchange = ListExchange(
        candles,
        fail=lambda: (
            TransientExchangeError("HTTP 502") if clock_box["clock"].now_ms() in down else None
        ),
    )
    session = make_session(exchange)
    clock_box["clock"] = session.clock
    with caplog.at_level(logging.WARNING):
        asyncio.run(collect(session))
    assert caplog.text.count("skipped: HTTP 502") == 3
    assert session.runners[0].last_tick == minute(60)


def test_a_dead_symbol_is_restarted_named_and_starves_the_watchdog(caplog):
    candles = [flat_candle(n, 100.0) for n in range(70)]
    fetches = {"BAD": 0}

    class HalfBroken(ListExchange):
        async def fetch_candles(self, symbol, interval, since_ms, limit):
            if symbol == "BAD":
                fetches["BAD"] += 1
                raise ValueError("bug in an adapter")
            return await super().fetch_candles(symbol, interval, since_ms, limit)

    options = LiveOptions(settle_ms=0, restart_backoff_seconds=0, symbol_restarts=3)
    session = make_session(HalfBroken(candles), symbols=("GOOD", "BAD"), options=options)
    cycles, statuses = [], []
    session._on_cycle = cycles.append
    session.on_status = lambda s: statuses.append(s.status_line())
    with pytest.raises(SymbolFailedError, match="BAD: its loop failed 4 times in a row"):
        asyncio.run(collect(session))
    assert fetches["BAD"] == 4  # the first run and 3 restarts
    assert cycles == []  # never "all is well" while BAD is down
    assert "BAD: its loop FAILED (ValueError: bug in an adapter); restarting it" in caplog.text
    assert caplog.text.count("Traceback") <= 4
    assert "DOWN: BAD (failed 1x: ValueError: bug in an adapter)" in statuses[0]
    assert "DOWN: BAD (failed 4x: ValueError: bug in an adapter)" in statuses[-1]


def test_a_symbol_that_recovers_after_a_restart_feeds_the_watchdog_again(caplog):
    candles = [flat_candle(n, 100.0) for n in range(70)]
    failures = {"BAD": 2}

    class Flaky(ListExchange):
        async def fetch_candles(self, symbol, interval, since_ms, limit):
            if symbol == "BAD" and failures["BAD"]:
                failures["BAD"] -= 1
                raise ValueError("bug in an adapter")
            return await super().fetch_candles(symbol, interval, since_ms, limit)

    options = LiveOptions(settle_ms=0, restart_backoff_seconds=0, symbol_restarts=3)
    session = make_session(Flaky(candles), symbols=("GOOD", "BAD"), options=options)
    cycles = []
    session._on_cycle = lambda s: cycles.append(s.status_line())
    with caplog.at_level(logging.INFO):
        asyncio.run(collect(session))
    assert session.down == {}
    assert session.failed_symbols == []
    assert all(r.last_tick == minute(60) for r in session.runners)
    assert "BAD: its loop runs again after a restart" in caplog.text
    assert cycles
    assert all("DOWN" not in line for line in cycles)


def test_stop_with_drain_waits_for_the_open_signal_to_close():
    candles = [flat_candle(n, 100.0) for n in range(100)]
    session = make_session(ListExchange(candles), long_signal, end=minute(99))

    async def scenario():
        results = []
        async for result in session.events():
            results.append(result)
            session.stop(drain=True)
        return results, session.clock.now_ms()

    results, stopped_at = asyncio.run(scenario())
    assert [r.action for r in results] == ["opened", "closed"]
    assert results[1].close_reason == "time_expired"
    assert stopped_at == minute(5 + 30 + 1)  # not the end of the data


def test_plain_stop_leaves_the_signal_open_for_the_next_start():
    candles = [flat_candle(n, 100.0) for n in range(100)]
    session = make_session(ListExchange(candles), long_signal, end=minute(99))

    async def scenario():
        async for _ in session.events():
            session.stop()

    asyncio.run(scenario())
    assert session.open_signals == 1
    assert session.runners[0]._store.state.signal is not None


def test_heartbeat_reports_symbols_and_open_signals(caplog):
    candles = [flat_candle(n, 100.0) for n in range(100)]
    session = make_session(
        ListExchange(candles), long_signal, options=LiveOptions(settle_ms=0, heartbeat_seconds=0.01)
    )

    async def scenario():
        async for _ in session.events():
            await asyncio.sleep(0.05)  # a slow consumer: the heartbeat fires meanwhile

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert "heartbeat: 1 symbol(s), 1 open signal(s), last tick" in caplog.text


def test_the_candle_caches_stay_bounded():
    candles = [flat_candle(n, 100.0) for n in range(3000)]
    market = ExchangeMarket(ListExchange(candles), cache_size=16, keep_minutes=100)

    async def many():
        for n in range(10, 2990):
            await market.average_price("S", minute(n))
            await market.candles("S", "5m", 3, minute(n))

    asyncio.run(many())
    assert len(market._minutes["S"].candles) <= 100
    assert len(market._cache) == 16


def test_a_tick_fetches_each_minute_once():
    exchange = ListExchange([flat_candle(n, 100.0 + n) for n in range(200)])
    market = ExchangeMarket(exchange)

    async def ticks():
        for n in range(40, 100):
            await market.candles("S", "1m", 35, minute(n))  # the strategy's query
            await market.average_price("S", minute(n))  # the monitoring price

    asyncio.run(ticks())
    assert exchange.fetches == 60  # one per tick: only the newest minute
    got = asyncio.run(market.candles("S", "1m", 35, minute(99)))
    assert [c.timestamp for c in got] == [minute(n) for n in range(64, 99)]


def test_a_hung_get_signal_times_out_and_the_other_symbols_go_on(caplog):
    candles = [flat_candle(n, 100.0) for n in range(70)]

    async def hang_on_one(symbol):
        if symbol == "HUNG":
            await asyncio.Event().wait()
        return await long_signal(symbol)

    options = LiveOptions(settle_ms=0, warn_after=3)
    session = make_session(
        ListExchange(candles),
        hang_on_one,
        symbols=("OK", "HUNG"),
        options=options,
        strategy_timeout=0.01,
    )
    results = asyncio.run(collect(session))
    hung = session.runners[1]
    assert {r.symbol for r in results} == {"OK"}
    assert session.runners[0].last_tick == hung.last_tick == minute(60)
    assert hung.failures.always
    assert "did not return within 0.01 s" in caplog.text
    assert "STRATEGY FAILING: HUNG (" in session.status_line()
    assert "OK (" not in session.status_line()


class SlowExchange(ListExchange):
    """The first fetch takes longer than the strategy timeout, as exchange retries do.

    The margins are wide (a 1.5 s wait against a 0.5 s timeout, the strategy's own
    time a few ms), so a busy machine cannot make the strategy's own time look long.
    """

    slow_seconds = 1.5

    async def fetch_candles(self, symbol, interval, since_ms, limit):
        if self.slow_seconds:
            await asyncio.sleep(self.slow_seconds)
            self.slow_seconds = 0
        return await super().fetch_candles(symbol, interval, since_ms, limit)


def test_waiting_for_market_data_does_not_count_against_the_strategy_timeout(caplog):
    candles = [flat_candle(n, 100.0) for n in range(70)]

    async def reads_candles(symbol):
        await get_candles(symbol, "1m", 3)  # waits on the slow exchange, not on itself
        return await long_signal(symbol)

    session = make_session(
        SlowExchange(candles), reads_candles, strategy_timeout=0.5, end=minute(12)
    )
    results = asyncio.run(collect(session))
    assert [r.action for r in results][:1] == ["opened"]
    assert session.runners[0].failures.failed == 0
    assert "did not return within" not in caplog.text


def test_the_first_heartbeat_comes_with_the_first_complete_cycle(caplog):
    candles = [flat_candle(n, 100.0) for n in range(100)]
    session = make_session(ListExchange(candles), options=LiveOptions(settle_ms=2_000))
    with caplog.at_level(logging.INFO):
        asyncio.run(collect(session))
    assert "1 symbol(s): first tick now, for the minute" in caplog.text
    first = next(r.message for r in caplog.records if r.message.startswith("heartbeat:"))
    assert "last tick 2023-11-14 22:04 UTC; next tick at 2023-11-14 22:05:02 UTC" in first
