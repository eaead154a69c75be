"""Nothing blocks the event loop: ledger commits, state-file fsyncs and report rebuilds
run on threads while other coroutines (another symbol's tick) go on.

Each test holds the blocking work on a `threading.Event` the test controls and
checks that the loop made progress meanwhile; no test depends on a duration.
On code that does the work on the loop, the held work blocks the loop until
`HOLD_LIMIT` and the test fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from btkit import Signal, strategy
from btkit.adapters.clock import SimulatedClock
from btkit.adapters.report.builder import LiveReportWriter
from btkit.adapters.store.ledger import LedgerContents, LedgerLockedError, SqliteLedger
from btkit.adapters.store.signal_state import JsonSignalStore, MemorySignalStore
from btkit.domain.errors import StorageError
from btkit.domain.model import ClosedResult, OpenSignal, PersistedState, Pnl
from btkit.drivers.live import LiveOptions, LiveSession
from btkit.drivers.runner import SymbolRunner
from btkit.engine.pnl import Costs
from btkit.market.service import ExchangeMarket
from tests.fakes import ListExchange, flat_candle, minute
from tests.test_ledger_integrity import hold_write_lock, release

HOLD_LIMIT = 20.0
"""Longest a held write waits for the test; only reached when the work blocks the loop."""

SIGNAL = OpenSignal("sig-1", "long", 100.0, 110.0, 95.0, 60, "ETHBTC", "strat", "replay", minute(5))


def closed(signal: OpenSignal = SIGNAL, pnl: float = 1.5) -> ClosedResult:
    return ClosedResult(
        strategy_name=signal.strategy_name,
        exchange_name=signal.exchange_name,
        symbol=signal.symbol,
        timestamp=minute(20),
        current_price=110.0,
        signal=signal,
        close_reason="take_profit",
        close_timestamp=minute(20),
        pnl=Pnl(pnl, signal.price_open, 110.0),
    )


def signal(n: int) -> OpenSignal:
    return dataclasses.replace(SIGNAL, id=f"sig-{n}", timestamp=minute(5 + n))


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a condition with a deadline (the loop runs meanwhile)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.001)


async def loop_turns(count: int = 20) -> int:
    """Another coroutine's work: it only gets turns if the loop is free."""
    for _ in range(count):
        await asyncio.sleep(0)
    return count


class Hold:
    """A gate for blocking work: `entered` once it waits, it goes on at `release`."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.waiting = False
        self.threads: set[int] = set()

    def wait(self) -> None:
        self.threads.add(threading.get_ident())
        self.waiting = True
        self.entered.set()
        try:
            assert self.release.wait(HOLD_LIMIT), "held work blocked the event loop"
        finally:
            self.waiting = False


class HeldLedger(SqliteLedger):
    """A real ledger whose writes of the signals in `held` (`actions`) wait for the test."""

    def __init__(self, path: Path, **kwargs: object) -> None:
        super().__init__(path, **kwargs)
        self.hold = Hold()
        self.held: set[str] = set()
        self.actions = {"opened", "closed"}

    def write_opened(self, signal: OpenSignal) -> int:
        if signal.id in self.held and "opened" in self.actions:
            self.hold.wait()
        return super().write_opened(signal)

    def write_closed(self, result: ClosedResult) -> int:
        if result.signal.id in self.held and "closed" in self.actions:
            self.hold.wait()
        return super().write_closed(result)


def committed(path: Path, signal_id: str) -> list[str]:
    """The actions of a signal another connection sees: committed rows only."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT action FROM events WHERE signal_id = ?", (signal_id,))
        return sorted(r[0] for r in rows)
    finally:
        db.close()


def test_a_ledger_write_runs_off_the_loop_and_returns_once_committed(tmp_path):
    path = tmp_path / "btkit.sqlite"
    ledger = HeldLedger(path)
    ledger.write_opened(SIGNAL)
    ledger.held.add(SIGNAL.id)

    async def scenario() -> tuple[int, list[str]]:
        writing = asyncio.create_task(ledger.record_closed(closed()))
        await until(ledger.hold.entered.is_set, "the write started")
        assert await loop_turns() == 20  # the loop is free while the write waits
        assert ledger.hold.waiting
        assert not writing.done()
        assert committed(path, SIGNAL.id) == ["opened"]
        ledger.hold.release.set()
        seq = await writing
        return seq, committed(path, SIGNAL.id)  # durable when the await returns

    try:
        seq, seen = asyncio.run(scenario())
    finally:
        ledger.hold.release.set()
        ledger.close()
    assert seen == ["closed", "opened"]
    assert seq == 2
    assert threading.get_ident() not in ledger.hold.threads


def test_writes_queued_during_a_commit_share_the_next_one_and_a_refused_one_fails_alone(
    tmp_path,
):
    path = tmp_path / "btkit.sqlite"
    ledger = HeldLedger(path)
    ledger.write_opened(signal(99))
    ledger.held.add("sig-0")
    changed = dataclasses.replace(signal(99), price_open=101.0)  # a different event, same key
    broken = dataclasses.replace(signal(98), price_open=math.nan)

    async def record(item: OpenSignal) -> tuple[int, list[str]]:
        seq = await ledger.record_opened(item)
        return seq, committed(path, item.id)  # seen by another connection on return

    async def scenario() -> list[object]:
        first = asyncio.create_task(record(signal(0)))
        await until(ledger.hold.entered.is_set, "the first write holds the writer")
        queued = [asyncio.create_task(record(signal(n))) for n in range(1, 9)]
        refused = [asyncio.create_task(record(item)) for item in (changed, broken)]
        await until(lambda: len(ledger._writer._queue) == 10, "every write queued")
        ledger.hold.release.set()
        return await asyncio.gather(first, *queued, *refused, return_exceptions=True)

    try:
        outcomes = asyncio.run(scenario())
    finally:
        ledger.hold.release.set()
        ledger.close()
    *recorded, refused_changed, refused_nan = outcomes
    assert [seen for _, seen in recorded] == [["opened"]] * 9  # each durable on return
    assert len({seq for seq, _ in recorded}) == 9
    assert isinstance(refused_changed, StorageError)
    assert "already holds a different opened event" in str(refused_changed)
    assert isinstance(refused_nan, StorageError)
    assert "not a finite number" in str(refused_nan)
    assert ledger._writer.batches == 2  # the held write, then the ten queued behind it
    assert committed(path, "sig-98") == []


def test_a_failed_write_raises_storage_error_to_each_caller(tmp_path):
    path = tmp_path / "btkit.sqlite"
    ledger = SqliteLedger(path, busy_timeout=0.2)
    holder = hold_write_lock(path)

    async def scenario() -> list[object]:
        writes = [ledger.record_opened(signal(n)) for n in range(3)]
        return await asyncio.gather(*writes, return_exceptions=True)

    try:
        outcomes = asyncio.run(scenario())
    finally:
        release(holder)
    assert all(isinstance(o, LedgerLockedError) for o in outcomes), outcomes
    assert len({id(o) for o in outcomes}) == 3  # each caller its own error
    assert asyncio.run(ledger.record_opened(signal(0))) == 1  # released: it goes through
    ledger.close()


def test_close_commits_every_queued_write_then_refuses_new_ones(tmp_path):
    path = tmp_path / "btkit.sqlite"
    ledger = HeldLedger(path)
    ledger.held.add("sig-0")
    closer = threading.Thread(target=ledger.close)

    async def scenario() -> list[int]:
        writes = [asyncio.create_task(ledger.record_opened(signal(0)))]
        await until(ledger.hold.entered.is_set, "the first write holds the writer")
        writes += [asyncio.create_task(ledger.record_opened(signal(n))) for n in range(1, 4)]
        await until(lambda: len(ledger._writer._queue) == 3, "the others queued")
        closer.start()  # close waits for the queue: it must not drop these writes
        ledger.hold.release.set()
        return await asyncio.gather(*writes)

    try:
        seqs = asyncio.run(scenario())
    finally:
        ledger.hold.release.set()
        if closer.is_alive():
            closer.join()
    assert sorted(seqs) == [1, 2, 3, 4]
    assert all(committed(path, f"sig-{n}") == ["opened"] for n in range(4))
    with pytest.raises(StorageError, match="closed"):
        asyncio.run(ledger.record_opened(signal(5)))


class HeldExecutor(ThreadPoolExecutor):
    """State-file writes wait for the test before they run (on the executor's thread)."""

    def __init__(self) -> None:
        super().__init__(2, thread_name_prefix="test-state")
        self.hold = Hold()

    def submit(self, fn, /, *args, **kwargs):
        def held():
            self.hold.wait()
            return fn(*args, **kwargs)

        return super().submit(held)


def json_store(tmp_path: Path, executor: HeldExecutor) -> JsonSignalStore:
    store = JsonSignalStore(
        tmp_path / "signal",
        exchange_name="replay",
        strategy_name="strat",
        symbol="ETHBTC",
        now_ms=lambda: 0,
        executor=executor,
    )
    store.acquire()
    return store


def test_a_state_file_save_runs_off_the_loop_and_is_whole_when_it_returns(tmp_path):
    executor = HeldExecutor()
    store = json_store(tmp_path, executor)

    async def scenario() -> None:
        saving = asyncio.create_task(store.save(PersistedState(SIGNAL, minute(5), minute(5))))
        await until(executor.hold.entered.is_set, "the save started")
        assert await loop_turns() == 20
        assert not saving.done()
        assert not store.path.exists()
        executor.hold.release.set()
        await saving
        assert store.load().signal == SIGNAL  # on disk when the await returns

    try:
        asyncio.run(scenario())
    finally:
        executor.hold.release.set()
        executor.shutdown()
        store.release()
    assert threading.get_ident() not in executor.hold.threads


def test_a_save_whose_caller_was_cancelled_lands_before_the_next_one(tmp_path):
    executor = HeldExecutor()
    store = json_store(tmp_path, executor)
    older = PersistedState(SIGNAL, minute(5), minute(5))
    newer = PersistedState(None, minute(5), minute(20))

    async def scenario() -> None:
        first = asyncio.create_task(store.save(older))
        await until(executor.hold.entered.is_set, "the first save started")
        first.cancel()  # e.g. the symbol's task is cancelled mid-save
        second = asyncio.create_task(store.save(newer))
        await loop_turns()
        assert not second.done()  # it waits for the first write to land
        executor.hold.release.set()
        await second

    try:
        asyncio.run(scenario())
    finally:
        executor.hold.release.set()
        executor.shutdown()
        store.release()
    assert store.load() == newer


def test_a_failed_state_file_save_raises_storage_error_to_its_caller(tmp_path):
    executor = HeldExecutor()
    executor.hold.release.set()
    store = json_store(tmp_path, executor)
    shutil.rmtree(tmp_path / "signal")
    try:
        with pytest.raises(StorageError, match="Cannot write"):
            asyncio.run(store.save(PersistedState(SIGNAL, minute(5), minute(5))))
    finally:
        executor.shutdown()


class HeldReport(LiveReportWriter):
    """The live report writer, whose ledger read waits for the test."""

    def __init__(self, ledger: SqliteLedger, logs: Path, clock: Callable[[], float]) -> None:
        super().__init__(ledger, logs, "strat", clock)
        self.hold = Hold()
        self.reads = 0
        self.on_read: Callable[[], None] = lambda: None

    def _contents(self) -> LedgerContents:
        self.reads += 1
        self.on_read()
        self.hold.wait()
        return super()._contents()


def test_the_live_report_is_rebuilt_off_the_loop_and_flush_waits_for_it(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    ledger.write_opened(SIGNAL)
    ledger.write_closed(closed())
    writer = HeldReport(ledger, tmp_path / "logs", lambda: 0.0)
    report = tmp_path / "logs" / "live" / "strat.md"

    async def scenario() -> None:
        writer.on_closed()
        assert not report.exists()  # on_closed only asked for it
        await until(writer.hold.entered.is_set, "the rebuild started")
        assert await loop_turns() == 20
        assert not report.exists()

    try:
        asyncio.run(scenario())
        writer.hold.release.set()
        writer.flush()  # at exit: waits for the rebuild in progress
    finally:
        writer.hold.release.set()
        ledger.close()
    assert "| Closed signals | 1 |" in report.read_text()
    assert threading.get_ident() not in writer.hold.threads


def test_report_requests_during_a_rebuild_coalesce_into_one(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    ledger.write_opened(SIGNAL)
    now = [0.0]
    writer = HeldReport(ledger, tmp_path / "logs", lambda: now[0])

    async def scenario() -> None:
        writer.on_closed()
        await until(writer.hold.entered.is_set, "the first rebuild started")
        for n in range(1, 6):  # five more closes, each past the one-second throttle
            now[0] = 2.0 * n
            ledger.write_closed(closed(signal(n)))
            writer.on_closed()
        await loop_turns()

    try:
        asyncio.run(scenario())
        writer.hold.release.set()
        writer.wait()
        assert writer.reads == 2  # the one running, then one for all five waiting
        report = tmp_path / "logs" / "live" / "strat.md"
        assert "| Closed signals | 5 |" in report.read_text()
        writer.flush()  # the picture was skipped (once a minute): drawn on stop
        assert writer.reads == 3
    finally:
        writer.hold.release.set()
        ledger.close()


def test_a_close_reaches_the_consumer_before_its_report_rebuild_starts(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    writer = HeldReport(ledger, tmp_path / "logs", time.monotonic)
    writer.hold.release.set()
    consumed: list[str] = []
    seen_by_rebuilds: list[list[str]] = []
    writer.on_read = lambda: seen_by_rebuilds.append(list(consumed))

    async def long_signal(symbol):
        return Signal("long", 100.0, 150.0, 50.0, 10)

    runner = SymbolRunner(
        symbol="S",
        strategy=strategy("test")(long_signal),
        exchange_name="fake",
        market=ExchangeMarket(ListExchange([flat_candle(n, 100.0) for n in range(40)])),
        store=MemorySignalStore(),
        costs=Costs(),
        ledger=ledger,
    )
    session = LiveSession(
        [runner],
        SimulatedClock(minute(5)),
        options=LiveOptions(settle_ms=0),
        ends={"S": minute(17)},
        on_closed=lambda _: writer.on_closed(),
    )

    async def consume() -> None:
        async for event in session.events():
            consumed.append(event.action)

    try:
        asyncio.run(consume())
        writer.flush()
    finally:
        ledger.close()
    assert consumed == ["opened", "closed", "opened"]
    assert seen_by_rebuilds[0] == ["opened", "closed"]  # the close was consumed first


def test_another_symbol_ticks_while_one_symbols_close_is_being_committed(tmp_path):
    ledger = HeldLedger(tmp_path / "btkit.sqlite")
    ledger.actions = {"closed"}
    candles = [flat_candle(n, 100.0) for n in range(40)]

    async def a_signal_for_a(symbol):
        return Signal("long", 100.0, 150.0, 50.0, 10) if symbol == "A" else None

    definition = strategy("test")(a_signal_for_a)
    market = ExchangeMarket(ListExchange(candles))
    runners = [
        SymbolRunner(
            symbol=symbol,
            strategy=definition,
            exchange_name="fake",
            market=market,
            store=MemorySignalStore(),
            costs=Costs(),
            ledger=ledger,
        )
        for symbol in ("A", "B")
    ]
    session = LiveSession(
        runners,
        SimulatedClock(minute(5)),
        options=LiveOptions(settle_ms=0),
        ends={"A": minute(17), "B": minute(17)},
    )
    a, b = runners
    close_minute = minute(15)  # A's signal expires 10 minutes after it opened at minute 5

    async def scenario() -> list[str]:
        events = asyncio.create_task(collect())
        await until(lambda: a.signal is not None, "A opened")
        ledger.held.add(a.signal.id)
        await until(ledger.hold.entered.is_set, "A's close is being written")
        await until(lambda: b.last_tick == close_minute, "B ticked the same minute")
        assert ledger.hold.waiting  # ... while A's commit was still in progress
        ledger.hold.release.set()
        return await events

    async def collect() -> list[str]:
        return [f"{e.symbol} {e.action}" async for e in session.events()]

    try:
        stream = asyncio.run(scenario())
    finally:
        ledger.hold.release.set()
        ledger.close()
    assert stream[:2] == ["A opened", "A closed"]
