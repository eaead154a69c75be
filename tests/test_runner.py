"""SPEC §3 through the real SymbolRunner, with a function-backed exchange."""

from __future__ import annotations

import asyncio
import logging

import pytest

from btkit import Signal, get_candles, strategy
from btkit.adapters.store.signal_state import MemorySignalStore
from btkit.domain.errors import TransientExchangeError
from btkit.domain.model import ClosedResult, IdleResult, OpenedResult, PersistedState
from btkit.drivers.runner import SymbolRunner
from btkit.engine.pnl import Costs, compute_pnl
from btkit.market.service import ExchangeMarket
from tests.fakes import ListExchange, flat_candle, minute


def make_runner(candles, get_signal, *, interval="1m", store=None, **callbacks):
    definition = strategy("test", interval=interval, **callbacks)(get_signal)
    return SymbolRunner(
        symbol="S",
        strategy=definition,
        exchange_name="fake",
        market=ExchangeMarket(ListExchange(candles)),
        store=store or MemorySignalStore(),
        costs=Costs(),
    )


def once(signal):
    """A get_signal that returns `signal` on its first call only."""
    calls = []

    async def get_signal(symbol):
        calls.append(symbol)
        return signal if len(calls) == 1 else None

    get_signal.calls = calls
    return get_signal


async def run_minutes(runner, first, last):
    return [await runner.tick(minute(n)) for n in range(first, last + 1)]


LONG = Signal("long", 100.0, 102.0, 99.0, 10)
SHORT = Signal("short", 100.0, 98.0, 101.0, 10)

# Minutes 0-4 trade at 100; the signal opens at tick 5. The price at tick t is the
# VWAP of minutes t-5 .. t-1, so a jump shows one fifth at a time:
# (name, signal, prices from minute 5, close minute, reason, close price)
SCENARIOS = [
    ("long take-profit", LONG, [100, 105, 105, 105], 8, "take_profit", 102.0),  # 510/5
    ("long stop-loss", LONG, [100, 95, 95], 7, "stop_loss", 99.0),  # 495/5
    ("long expires", LONG, [100] * 12, 15, "time_expired", 100.0),
    ("short take-profit", SHORT, [100, 90, 90], 7, "take_profit", 98.0),  # 490/5
    ("short stop-loss", SHORT, [100, 105, 100], 7, "stop_loss", 101.0),  # 505/5
    ("short expires", SHORT, [100] * 12, 15, "time_expired", 100.0),
]


@pytest.mark.parametrize(
    ("signal", "prices", "close_minute", "reason", "close_price"),
    [s[1:] for s in SCENARIOS],
    ids=[s[0] for s in SCENARIOS],
)
def test_close_scenarios(signal, prices, close_minute, reason, close_price):
    history = [flat_candle(n, 100.0) for n in range(5)]
    candles = history + [flat_candle(5 + i, p) for i, p in enumerate(prices)]
    runner = make_runner(candles, once(signal))

    results = asyncio.run(run_minutes(runner, 5, 20))

    assert isinstance(results[0], OpenedResult)
    assert results[0].current_price == signal.price_open
    closed = [r for r in results if isinstance(r, ClosedResult)]
    assert len(closed) == 1
    assert closed[0].close_reason == reason
    assert closed[0].close_timestamp == minute(close_minute)
    assert closed[0].current_price == pytest.approx(close_price)
    expected = compute_pnl(signal.position, 100.0, closed[0].current_price, Costs())
    assert closed[0].pnl == expected


def test_price_beats_expiry_in_the_same_tick():
    prices = [100] * 9 + [120]  # minute 14 jumps; tick 15 is both expired and over TP
    candles = [flat_candle(n, 100.0) for n in range(5)] + [
        flat_candle(5 + i, p) for i, p in enumerate(prices)
    ]
    runner = make_runner(candles, once(LONG))
    results = asyncio.run(run_minutes(runner, 5, 15))
    assert results[-1].close_reason == "take_profit"
    assert results[-1].close_timestamp == minute(15)


def test_state_is_persisted_before_opened_and_closed_are_returned():
    store = MemorySignalStore()
    candles = [flat_candle(n, 100.0) for n in range(5)] + [flat_candle(5, 110.0)]
    runner = make_runner(candles, once(LONG), store=store)
    opened = asyncio.run(runner.tick(minute(5)))
    assert isinstance(opened, OpenedResult)
    assert store.state.signal == opened.signal
    assert store.saves == 1
    closed = asyncio.run(runner.tick(minute(6)))
    assert isinstance(closed, ClosedResult)
    assert store.state.signal is None
    assert store.saves == 2


def test_restored_signal_is_monitored_not_reopened():
    store = MemorySignalStore()
    candles = [flat_candle(n, 100.0) for n in range(5)] + [flat_candle(5, 110.0)]
    first = make_runner(candles, once(LONG), store=store)
    asyncio.run(first.tick(minute(5)))
    get_signal = once(LONG)
    second = make_runner(candles, get_signal, store=store)
    assert second.signal == first.signal
    closed = asyncio.run(second.tick(minute(6)))
    assert closed.close_reason == "take_profit"
    assert get_signal.calls == []


def test_throttle_calls_get_signal_once_per_interval():
    candles = [flat_candle(n, 100.0) for n in range(30)]
    calls = []

    async def never(symbol):
        calls.append(symbol)

    runner = make_runner(candles, never, interval="5m")
    asyncio.run(run_minutes(runner, 5, 19))
    assert len(calls) == 3  # minutes 5, 10, 15


def test_strategy_exception_is_logged_and_counts_as_no_signal(caplog):
    candles = [flat_candle(n, 100.0) for n in range(10)]

    async def broken(symbol):
        raise ZeroDivisionError("oops")

    runner = make_runner(candles, broken)
    with caplog.at_level(logging.ERROR):
        results = asyncio.run(run_minutes(runner, 5, 6))
    assert all(isinstance(r, IdleResult) for r in results)
    assert "strategy test raised in get_signal for S" in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_invalid_signal_is_rejected_and_never_persisted(caplog):
    store = MemorySignalStore()
    candles = [flat_candle(n, 100.0) for n in range(10)]
    runner = make_runner(candles, once(Signal("long", 100.0, 90.0, float("nan"), 0)), store=store)
    with caplog.at_level(logging.ERROR):
        result = asyncio.run(runner.tick(minute(5)))
    assert isinstance(result, IdleResult)
    assert store.saves == 0
    assert "price_stop_loss must be a finite number" in caplog.text
    assert "minute_estimated_time" in caplog.text
    assert "long needs take-profit > open > stop-loss" in caplog.text  # TP 90 < open 100


def test_tick_with_no_candles_is_skipped_and_the_signal_kept(caplog):
    candles = [flat_candle(n, 100.0) for n in range(6)]  # nothing after minute 5
    runner = make_runner(candles, once(LONG))
    asyncio.run(runner.tick(minute(6)))
    with caplog.at_level(logging.WARNING):
        skipped = asyncio.run(runner.tick(minute(30)))
    assert skipped is None
    assert runner.signal is not None
    assert "tick skipped" in caplog.text


def test_get_candles_never_returns_the_forming_candle():
    candles = [flat_candle(n, float(n + 1)) for n in range(20)]
    seen = []

    async def peek(symbol):
        seen.extend(await get_candles(symbol, "1m", 3))

    runner = make_runner(candles, peek)
    asyncio.run(runner.tick(minute(10) + 30_000))  # half-way through minute 10
    assert [c.timestamp for c in seen] == [minute(7), minute(8), minute(9)]


def test_exchange_errors_propagate_to_the_driver():
    exchange = ListExchange([], fail=lambda: TransientExchangeError("timeout"))
    definition = strategy("test")(once(None))
    runner = SymbolRunner(
        symbol="S",
        strategy=definition,
        exchange_name="fake",
        market=ExchangeMarket(exchange),
        store=MemorySignalStore(),
        costs=Costs(),
    )
    with pytest.raises(TransientExchangeError):
        asyncio.run(runner.tick(minute(5)))


def test_callbacks_run_and_their_errors_are_contained(caplog):
    seen = []

    async def on_open(result):
        seen.append(result.action)

    def on_close(result):
        seen.append(result.close_reason)
        raise RuntimeError("callback bug")

    candles = [flat_candle(n, 100.0) for n in range(5)] + [flat_candle(5, 110.0)]
    runner = make_runner(candles, once(LONG), on_open=on_open, on_close=on_close)
    with caplog.at_level(logging.ERROR):
        asyncio.run(run_minutes(runner, 5, 6))
    assert seen == ["opened", "take_profit"]
    assert "on_close callback raised" in caplog.text


def test_stopped_runner_opens_nothing_new():
    candles = [flat_candle(n, 100.0) for n in range(10)]
    get_signal = once(LONG)
    runner = make_runner(candles, get_signal)
    runner.stopped = True
    asyncio.run(runner.tick(minute(5)))
    assert get_signal.calls == []
    assert runner.signal is None


def test_cursor_and_throttle_are_restored():
    store = MemorySignalStore(PersistedState(None, last_signal_call=minute(5), last_tick=minute(7)))
    runner = make_runner([], once(None), store=store)
    assert (runner.last_signal_call, runner.last_tick) == (minute(5), minute(7))
