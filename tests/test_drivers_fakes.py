"""The drivers over the in-memory fakes of every port: what they write, in which order."""

from __future__ import annotations

import asyncio
import inspect
import logging
import typing

import numpy as np
import pytest

from btkit import ports
from btkit.domain.errors import StorageError
from btkit.domain.model import ClosedResult, OpenedResult, PersistedState, Signal
from btkit.drivers.backtest import BacktestRun
from btkit.drivers.live import LiveOptions, LiveSession, SymbolFailedError
from btkit.drivers.runner import SymbolRunner
from btkit.engine.frames import Frame
from btkit.engine.pnl import Costs
from btkit.market.array_market import ArrayMarket
from btkit.market.arrays import CandleArrays
from btkit.strategies import strategy
from tests.fakes import (
    FakeClock,
    FakeEventLog,
    FakeExchange,
    FakeSignalStore,
    PriceMarket,
    RecordingPrinter,
    flat_candle,
    minute,
)
from tests.trading_fakes import FakeBroker, FakeOrderLog, FixedOrderBook, ScriptedTrading

FAKES: dict[type, type] = {
    ports.Clock: FakeClock,
    ports.Exchange: FakeExchange,
    ports.MarketData: PriceMarket,
    ports.SignalStore: FakeSignalStore,
    ports.EventLog: FakeEventLog,
    ports.EventPrinter: RecordingPrinter,
    ports.Broker: FakeBroker,
    ports.OrderLog: FakeOrderLog,
    ports.OrderBookSource: FixedOrderBook,
    ports.Trading: ScriptedTrading,
}
LONG = Signal("long", 100.0, 102.0, 99.0, 3)  # at a flat 100 it expires 3 minutes later


def always_long(symbol: str) -> typing.Any:
    async def get_signal(symbol: str) -> Signal:
        return LONG

    return get_signal


def make_runner(
    get_signal,
    *,
    market=None,
    store=None,
    log=None,
    symbol="S",
    timeout=None,
    backtest=False,
):
    """The real SymbolRunner over fakes (the one place that knows its constructor)."""
    return SymbolRunner(
        symbol=symbol,
        strategy=strategy("test", interval="1m")(get_signal),
        exchange_name="fake",
        market=market or PriceMarket({minute(n): 100.0 for n in range(200)}),
        store=store or FakeSignalStore(),
        costs=Costs(),
        ledger=log,
        backtest=backtest,
        strategy_timeout=timeout,
    )


def test_there_is_a_fake_for_every_port_and_it_matches_the_port():
    declared = {
        value
        for value in vars(ports).values()
        if inspect.isclass(value)
        and typing.Protocol in value.__mro__
        and value.__module__ == ports.__name__
    }
    assert declared == set(FAKES), "add a fake to tests/fakes.py for every port"
    for port, fake in FAKES.items():
        for name, member in vars(port).items():
            if name.startswith("_") or not callable(member):
                continue
            assert hasattr(fake, name), f"{fake.__name__} lacks {port.__name__}.{name}"
            is_async = inspect.iscoroutinefunction(member)
            assert inspect.iscoroutinefunction(getattr(fake, name)) == is_async, (
                f"{fake.__name__}.{name} must be {'async' if is_async else 'a plain function'}"
            )


def test_an_open_is_saved_then_recorded_and_a_close_recorded_then_saved():
    journal: list[tuple[str, object]] = []
    log = FakeEventLog(journal)
    runner = make_runner(always_long("S"), store=FakeSignalStore(journal=journal), log=log)

    async def ticks():
        return [await runner.tick(minute(n)) for n in range(5, 9)]

    results = asyncio.run(ticks())
    opened, closed = results[0], results[3]
    assert isinstance(opened, OpenedResult)
    assert isinstance(closed, ClosedResult)
    assert closed.close_reason == "time_expired"
    assert [entry[0] for entry in journal] == ["save", "opened", "closed", "save"]
    assert journal[0][1].signal == opened.signal  # the state file held it before the ledger
    assert journal[3][1].signal is None
    assert (opened.seq, closed.seq) == (1, 2)
    assert [(seq, action) for seq, action, _ in log.events] == [(1, "opened"), (2, "closed")]


def test_a_runner_writes_nothing_until_it_is_restored_and_a_replayed_open_keeps_its_seq():
    journal: list[tuple[str, object]] = []
    log = FakeEventLog(journal)
    first = make_runner(always_long("S"), store=FakeSignalStore(journal=journal), log=log)
    opened = asyncio.run(first.tick(minute(5)))
    assert isinstance(opened, OpenedResult)
    journal.clear()

    again = make_runner(always_long("S"), store=FakeSignalStore(first._store.state), log=log)
    assert journal == []  # constructing reads only
    asyncio.run(again.restore())
    asyncio.run(again.restore())
    assert journal == [("opened", opened.signal.id)]  # recorded again, once: the same event
    assert [seq for seq, _, _ in log.events] == [1]
    assert again.signal == opened.signal


def test_a_close_that_reached_the_ledger_but_not_the_state_file_is_cleared_on_restore():
    log = FakeEventLog()
    first = make_runner(always_long("S"), log=log)

    async def open_and_close():
        return [await first.tick(minute(n)) for n in range(5, 9)]

    closed = asyncio.run(open_and_close())[3]
    assert isinstance(closed, ClosedResult)
    # A crash between the ledger's close and the state file: the file still has the signal.
    crashed = PersistedState(closed.signal, minute(5), minute(7))
    store = FakeSignalStore(crashed)
    runner = make_runner(always_long("S"), store=store, log=log)
    asyncio.run(runner.restore())
    assert runner.signal is None
    assert store.state.signal is None
    assert store.state.last_tick == minute(8)  # resumes after the close
    assert [action for _, action, _ in log.events] == ["opened", "closed"]  # nothing new


def session_over_fakes(runners, *, clock=None, **kwargs):
    options = kwargs.pop("options", LiveOptions(settle_ms=0, restart_backoff_seconds=0))
    return LiveSession(runners, clock or FakeClock(minute(5)), options=options, **kwargs)


def run_session(session):
    async def collect():
        return [result async for result in session.events()]

    return asyncio.run(asyncio.wait_for(collect(), 60))


def test_a_stop_from_the_cycle_hook_ends_after_that_tick_and_saves_the_cursor():
    store = FakeSignalStore()
    runner = make_runner(always_long("S"), store=store)
    cycles: list[int] = []

    def on_cycle(session: LiveSession) -> None:
        cycles.append(session.runners[0].last_tick)
        if len(cycles) == 2:
            session.stop()

    clock = FakeClock(minute(5))
    session = session_over_fakes([runner], clock=clock, on_cycle=on_cycle, ends={"S": minute(99)})
    results = run_session(session)
    assert cycles == [minute(5), minute(6)]
    assert [r.action for r in results] == ["opened"]
    assert store.state == PersistedState(results[0].signal, minute(5), minute(6))
    assert store.saved[-1].last_tick == minute(6)  # the cursor saved on the way out
    assert clock.participants == 0  # every symbol that joined the clock left it
    assert session.open_signals == 1


def test_closes_reach_the_report_hook_after_the_ledger_and_its_failure_is_contained(caplog):
    log = FakeEventLog()
    recorded_first: list[bool] = []

    def on_closed(result: ClosedResult) -> None:
        recorded_first.append(
            log.closed_at(result.signal.id, result.signal.timestamp) == result.close_timestamp
        )
        raise RuntimeError("the report disk is full")

    runner = make_runner(always_long("S"), log=log)
    session = session_over_fakes([runner], on_closed=on_closed, ends={"S": minute(20)})
    results = run_session(session)
    assert [r.action for r in results] == ["opened", "closed"] * 4
    assert recorded_first == [True] * 4
    assert caplog.text.count("could not rewrite the live report; trading goes on") == 4
    assert [r.seq for r in results] == list(range(1, 9))


def test_a_storage_failure_ends_the_run_at_once_without_restarts():
    store = FakeSignalStore()
    store.fail = StorageError("No space left on device")
    session = session_over_fakes(
        [make_runner(always_long("S"), store=store)], ends={"S": minute(99)}
    )
    with pytest.raises(StorageError, match="No space left"):
        run_session(session)
    assert session.down == {}  # not a symbol to restart: the process ends (exit 1)
    assert session.failed_symbols == []


def test_one_symbols_storage_failure_ends_every_symbol_not_just_its_own():
    """A fatal error in one symbol must end the process; the others must not tick on
    (and feed the watchdog) while that symbol's open signal goes unwatched."""
    from btkit.adapters.clock import SimulatedClock

    broken = FakeSignalStore()
    broken.fail = StorageError("No space left on device")
    market = PriceMarket({minute(n): 100.0 for n in range(2000)})
    healthy = make_runner(always_long("GOOD"), market=market, symbol="GOOD")
    failing = make_runner(always_long("BAD"), market=market, symbol="BAD", store=broken)
    cycles: list[int] = []
    session = session_over_fakes(
        [healthy, failing],
        clock=SimulatedClock(minute(5)),
        ends={"GOOD": minute(1999), "BAD": minute(1999)},
        on_cycle=lambda s: cycles.append(1),
    )
    with pytest.raises(StorageError, match="No space left"):
        run_session(session)
    assert healthy.last_tick is not None
    assert healthy.last_tick < minute(10)  # stopped within its tick, not at its end
    assert len(cycles) < 5


def test_a_symbol_that_fails_too_often_ends_every_symbol():
    from btkit.adapters.clock import SimulatedClock

    class Broken(PriceMarket):
        async def average_price(self, symbol: str, when: int) -> float | None:
            if symbol == "BAD":
                raise ValueError("bug in an adapter")
            return await super().average_price(symbol, when)

    market = Broken({minute(n): 100.0 for n in range(2000)})
    runners = [make_runner(always_long(s), market=market, symbol=s) for s in ("GOOD", "BAD")]
    session = session_over_fakes(
        runners,
        clock=SimulatedClock(minute(5)),
        ends={"GOOD": minute(1999), "BAD": minute(1999)},
        options=LiveOptions(settle_ms=0, restart_backoff_seconds=0, symbol_restarts=2),
    )
    with pytest.raises(SymbolFailedError, match="BAD: its loop failed 3 times"):
        run_session(session)
    assert runners[0].last_tick is not None
    assert runners[0].last_tick < minute(100)


class FlakyMarket(PriceMarket):
    """Fails once, at one minute, for one symbol: a bug in an adapter."""

    def __init__(self, prices, symbol: str, at: int) -> None:
        super().__init__(prices)
        self.fail = (symbol, at)

    async def average_price(self, symbol: str, when: int) -> float | None:
        if (symbol, when) == self.fail:
            self.fail = ("", 0)
            raise ValueError("bug in an adapter")
        return await super().average_price(symbol, when)


def test_a_failed_symbol_restarts_where_it_stopped_while_the_other_goes_on(caplog):
    from btkit.adapters.clock import SimulatedClock

    market = FlakyMarket({minute(n): 100.0 for n in range(30)}, "BAD", minute(8))
    runners = [make_runner(always_long(s), market=market, symbol=s) for s in ("GOOD", "BAD")]
    statuses: list[str] = []
    session = session_over_fakes(
        runners, clock=SimulatedClock(minute(5)), ends={"GOOD": minute(20), "BAD": minute(20)}
    )
    session.on_status = lambda s: statuses.append(s.status_line())
    results = run_session(session)
    assert all(r.last_tick == minute(20) for r in runners)
    assert "DOWN: BAD (failed 1x: ValueError: bug in an adapter)" in statuses[0]
    assert "DOWN" not in statuses[-1]  # back up
    by_symbol = {s: [r.action for r in results if r.symbol == s] for s in ("GOOD", "BAD")}
    assert by_symbol["GOOD"] == by_symbol["BAD"] == ["opened", "closed"] * 4
    assert "BAD: its loop runs again after a restart" in caplog.text


def test_a_plain_stop_cancels_a_hung_strategy_call_without_counting_a_failure(caplog):
    entered = asyncio.Event()

    async def hangs(symbol: str) -> None:
        entered.set()
        await asyncio.Event().wait()

    runner = make_runner(hangs, timeout=3600)
    session = session_over_fakes([runner], ends={"S": minute(99)})

    async def scenario() -> None:
        consumer = asyncio.ensure_future(session.events().__anext__())
        async with asyncio.timeout(30):
            await entered.wait()
            assert runner.in_strategy is not None
            session.stop()
            with pytest.raises(StopAsyncIteration):
                await consumer

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert "get_signal cancelled: btkit is stopping" in caplog.text
    assert runner.failures.failed == 0


def arrays(candles):
    fields = ("timestamp", "open", "high", "low", "close", "volume")
    return CandleArrays(*[np.array([getattr(c, f) for c in candles]) for f in fields])


def backtest_over_fakes(minutes: int, *, log=None, progress=None):
    market = ArrayMarket("S", arrays([flat_candle(n, 100.0) for n in range(minutes)]))
    runner = make_runner(always_long("S"), market=market, log=log, backtest=True)
    return BacktestRun(runner, market, Frame(minute(5), minute(minutes - 1)), progress=progress)


def test_a_backtest_stop_ends_at_the_next_tick_and_keeps_what_closed():
    run = backtest_over_fakes(3000)

    async def first_then_stop():
        closed = []
        async for result in run.results():
            closed.append(result)
            run.request_stop()
        return closed

    closed = asyncio.run(first_then_stop())
    assert len(closed) == 1
    assert run.still_open is None
    assert len(run.opened) == 1


def test_a_backtest_records_through_the_event_log_as_live_does_and_reports_progress():
    log = FakeEventLog()
    reached: list[int] = []
    run = backtest_over_fakes(3000, log=log, progress=reached.append)

    async def everything():
        return [closed async for closed in run.results()]

    closed = asyncio.run(everything())
    assert len(closed) == (3000 - 1 - 5) // 4  # open, 3 minutes active, closed: every 4
    assert [r.seq for r in closed] == [2 * n for n in range(1, len(closed) + 1)]
    assert [action for _, action, _ in log.events] == ["opened", "closed"] * len(closed) + (
        ["opened"] if run.still_open else []
    )
    assert reached == sorted(reached)
    assert reached[-1] == minute(2999)
    assert len(reached) >= 2  # a day in, and at the end
