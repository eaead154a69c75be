"""The SQLite ledger, and the runner's reconciliation of state file and ledger."""

from __future__ import annotations

import asyncio
import sqlite3
import stat

import pytest

from btkit import Signal, strategy
from btkit.adapters.store.ledger import Query, SqliteLedger
from btkit.adapters.store.signal_state import MemorySignalStore
from btkit.domain.errors import StorageError
from btkit.domain.model import ClosedResult, OpenSignal, PersistedState, Pnl
from btkit.drivers.runner import SymbolRunner
from btkit.engine.pnl import Costs
from btkit.market.service import ExchangeMarket
from tests.fakes import ListExchange, flat_candle, minute

SIGNAL = OpenSignal("sig-1", "long", 100.0, 110.0, 95.0, 60, "ETHBTC", "strat", "replay", minute(5))


def closed(signal=SIGNAL, when=None, pnl=1.5):
    when = minute(20) if when is None else when
    return ClosedResult(
        strategy_name=signal.strategy_name,
        exchange_name=signal.exchange_name,
        symbol=signal.symbol,
        timestamp=when,
        current_price=110.0,
        signal=signal,
        close_reason="take_profit",
        close_timestamp=when,
        pnl=Pnl(pnl, signal.price_open, 110.0),
    )


def test_events_are_recorded_once_and_read_back(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    for _ in range(3):  # a crash replay records the same events again
        ledger.write_opened(SIGNAL)
        ledger.write_closed(closed())
    contents = ledger.read(Query("strat"))
    assert len(contents.trades) == 1
    assert contents.trades[0].pnl_percentage == 1.5
    assert contents.still_open == []
    assert ledger.closed_at("sig-1", SIGNAL.timestamp) == minute(20)
    assert ledger.closed_at("sig-1", SIGNAL.timestamp + 60_000) is None  # a reused id
    assert stat.S_IMODE((tmp_path / "btkit.sqlite").stat().st_mode) == 0o600


def test_open_signals_and_filters(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    other = OpenSignal("sig-2", "short", 1.0, 0.9, 1.1, 30, "LTCBTC", "strat", "replay", minute(50))
    ledger.write_opened(SIGNAL)
    ledger.write_closed(closed())
    ledger.write_opened(other)
    everything = ledger.read(Query("strat"))
    assert [s.id for s in everything.still_open] == ["sig-2"]
    assert ledger.read(Query("strat", symbol="LTCBTC")).trades == []
    assert len(ledger.read(Query("strat", since=minute(0), until=minute(10))).trades) == 1
    assert ledger.read(Query("strat", since=minute(10))).trades == []


def test_backtest_runs_are_kept_apart_from_live(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    ledger.write_opened(SIGNAL)
    first = ledger.record_backtest("strat", "replay", 1, [], [closed(pnl=1.0)], {})
    second = ledger.record_backtest("strat", "replay", 2, [], [closed(pnl=2.0)], {})
    assert first != second
    latest = ledger.read(Query("strat", mode="backtest"))
    assert latest.run_id == second
    assert [t.pnl_percentage for t in latest.trades] == [2.0]
    assert ledger.read(Query("strat", mode="backtest", run_id=first)).trades[0].pnl_percentage == 1
    assert ledger.read(Query("strat")).trades == []  # live has only the open signal


def test_schema_version_is_recorded_and_newer_schemas_refused(tmp_path):
    path = tmp_path / "btkit.sqlite"
    SqliteLedger(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 3  # 3: orders, fills, halts
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StorageError, match="newer btkit"):
        SqliteLedger(path)


def test_a_damaged_ledger_is_a_clear_error(tmp_path):
    path = tmp_path / "btkit.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="move it aside"):
        SqliteLedger(path)


async def no_signal(symbol):
    return None


def runner_with(ledger, state):
    definition = strategy("strat")(no_signal)
    runner = SymbolRunner(
        symbol="ETHBTC",
        strategy=definition,
        exchange_name="replay",
        market=ExchangeMarket(ListExchange([])),
        store=MemorySignalStore(state),
        costs=Costs(),
        ledger=ledger,
    )
    asyncio.run(runner.restore())
    return runner


def test_reconcile_records_an_open_the_crash_kept_from_the_ledger(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    runner = runner_with(ledger, PersistedState(SIGNAL, minute(5), minute(5)))
    assert runner.signal == SIGNAL
    assert [s.id for s in ledger.read(Query("strat")).still_open] == ["sig-1"]


def test_reconcile_clears_a_signal_the_ledger_already_closed(tmp_path, caplog):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    ledger.write_opened(SIGNAL)
    ledger.write_closed(closed())
    runner = runner_with(ledger, PersistedState(SIGNAL, minute(5), minute(19)))
    assert runner.signal is None
    assert runner._store.state.signal is None
    assert runner.last_tick == minute(20)  # the replay resumes after the close
    assert "was closed in the ledger just before a crash" in caplog.text


def test_a_reused_signal_id_never_lets_an_old_close_clear_a_new_open_signal(tmp_path):
    """A strategy that gives its own ids may reuse one: the ledger's close of the old
    signal must not make restore() drop the new one (an open position unwatched)."""
    import dataclasses

    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    ledger.write_opened(SIGNAL)
    ledger.write_closed(closed())
    again = dataclasses.replace(SIGNAL, timestamp=minute(30))
    store = MemorySignalStore(PersistedState(again, minute(30), minute(31)))
    runner = SymbolRunner(
        symbol="ETHBTC",
        strategy=strategy("strat")(no_signal),
        exchange_name="replay",
        market=ExchangeMarket(ListExchange([])),
        store=store,
        costs=Costs(),
        ledger=ledger,
    )
    with pytest.raises(StorageError, match="already holds a different opened event"):
        asyncio.run(runner.restore())  # loud, never a silent guess
    assert store.state.signal == again  # the open signal is kept
    assert runner.signal == again


def test_the_runner_writes_both_in_order(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    candles = [flat_candle(n, 100.0) for n in range(5)] + [flat_candle(5, 110.0)]

    async def once(symbol, calls=[]):  # noqa: B006 - a counter across calls
        calls.append(symbol)
        return Signal("long", 100.0, 102.0, 99.0, 10) if len(calls) == 1 else None

    definition = strategy("strat")(once)
    runner = SymbolRunner(
        symbol="ETHBTC",
        strategy=definition,
        exchange_name="replay",
        market=ExchangeMarket(ListExchange(candles)),
        store=MemorySignalStore(),
        costs=Costs(),
        ledger=ledger,
    )
    asyncio.run(runner.tick(minute(5)))
    assert len(ledger.read(Query("strat")).still_open) == 1
    asyncio.run(runner.tick(minute(6)))
    contents = ledger.read(Query("strat"))
    assert len(contents.trades) == 1
    assert contents.still_open == []


def test_several_processes_can_create_the_ledger_at_once(tmp_path):
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from btkit.adapters.store.ledger import SqliteLedger\n"
        "while time.time() < float(sys.argv[2]):\n"
        "    pass\n"
        "SqliteLedger(Path(sys.argv[1])).close()\n"
    )
    for _ in range(3):
        path = tmp_path / f"race-{time.monotonic_ns()}.sqlite"
        go = str(time.time() + 0.5)
        starts = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(path), go], stderr=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        for process in starts:
            _, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
        assert SqliteLedger(path).read(Query("any")).trades == []
