"""The run store (backtest results apart from the ledger), `btkit runs` use cases, retention."""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
import stat

import numpy as np
import pytest

from btkit.adapters.store.ledger import ALL_RUNS, Query, SqliteLedger
from btkit.adapters.store.run_store import RunStore, encode_run
from btkit.adapters.store.sweep_store import JobRecord, SweepStore, pack_trades
from btkit.app.backtest_jobs import plan, run_all
from btkit.app.runs import list_runs, prune_runs
from btkit.domain.errors import ConfigError, StorageError
from btkit.domain.model import ClosedResult, OpenSignal, Pnl
from btkit.engine.retention import DAY_MS, Retention, RunStamp, runs_to_prune
from btkit.engine.statistics import Trade
from btkit.engine.step import signal_id
from btkit.settings import Settings
from btkit.wiring.runs import (
    open_run_store,
    read_backtest_events,
    record_backtest_run,
    sweep_store_path,
)
from tests.fakes import minute


def _signal(n: int, symbol: str = "ETHBTC", **changes: object) -> OpenSignal:
    fields: dict[str, object] = {
        "id": signal_id("replay", "strat", symbol, minute(n)),
        "position": "long",
        "price_open": 100.0 + n / 7,
        "price_take_profit": 110.0,
        "price_stop_loss": 95.0,
        "minute_estimated_time": 60,
        "symbol": symbol,
        "strategy_name": "strat",
        "exchange_name": "replay",
        "timestamp": minute(n),
        "note": "",
    }
    fields.update(changes)
    return OpenSignal(**fields)  # type: ignore[arg-type]


def _closed(signal: OpenSignal, after: int = 30, reason: str = "take_profit") -> ClosedResult:
    when = signal.timestamp + after * 60_000
    price = signal.price_open * 1.0123456789
    return ClosedResult(
        strategy_name=signal.strategy_name,
        exchange_name=signal.exchange_name,
        symbol=signal.symbol,
        timestamp=when,
        current_price=price,
        signal=signal,
        close_reason=reason,  # type: ignore[arg-type]
        close_timestamp=when,
        pnl=Pnl(1.0 / 3, signal.price_open, price),
    )


def _settings(root) -> Settings:
    return Settings(
        strategies_dir=root / "strategies", data_dir=root / "data", logs_dir=root / "logs"
    )


def test_a_run_reads_back_exactly_and_is_owner_only(tmp_path):
    closed = [
        _closed(_signal(0)),
        _closed(_signal(5, "LTCBTC", position="short", price_take_profit=90.0), 7, "stop_loss"),
        _closed(_signal(9, id="my-own-id", note="crossed ↑", minute_estimated_time=math.inf)),
        _closed(_signal(50), 60, "time_expired"),
    ]
    still_open = [_signal(200, "LTCBTC", minute_estimated_time=math.inf, note="open")]
    store = RunStore(tmp_path / "data" / "runs")
    info = store.write(
        run_id="backtest-0123456789ab",
        strategy="strat",
        exchange="replay",
        created_at=123,
        frames=[("ETHBTC", minute(0), minute(300)), ("LTCBTC", minute(1), minute(299))],
        closed=list(reversed(closed)),
        still_open=still_open,
    )
    assert (info.trades, info.still_open, info.symbols) == (4, 1, ("ETHBTC", "LTCBTC"))
    assert (info.start, info.end, info.created_at) == (minute(0), minute(300), 123)
    run = store.read(info.run_id)
    assert run.closed == sorted(closed, key=lambda c: (c.close_timestamp, c.symbol, c.signal.id))
    assert run.still_open == still_open
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(info.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in info.path.parent.iterdir()] == [info.path.name]  # no temp left


def test_a_trade_costs_tens_of_bytes_not_hundreds(tmp_path):
    closed = [_closed(_signal(n * 40, note="fast MA crossed above slow MA")) for n in range(5000)]
    data = encode_run(
        run_id="backtest-0",
        strategy="strat",
        exchange="replay",
        created_at=1,
        frames=[("ETHBTC", 0, minute(300_000))],
        closed=closed,
        still_open=[],
    )
    assert len(data) / len(closed) < 80  # the ledger took ~770 bytes per signal


def test_a_nan_price_or_a_foreign_signal_is_refused_and_nothing_is_written(tmp_path):
    store = RunStore(tmp_path / "runs")
    bad = _closed(_signal(0))
    nan = dataclasses.replace(bad, pnl=Pnl(math.nan, 100.0, 101.0))
    foreign = _closed(_signal(0, strategy_name="other"))
    for closed in (nan, foreign):
        with pytest.raises(StorageError, match="Refusing to store run"):
            store.write(
                run_id="backtest-1",
                strategy="strat",
                exchange="replay",
                created_at=1,
                frames=[("ETHBTC", 0, 1)],
                closed=[closed],
                still_open=[],
            )
    assert store.run_ids() == []


def _real_backtest(project, symbols=("ETHBTC", "LTCBTC")):
    settings = _settings(project.root)
    planned = plan(settings, list(symbols), "my-strategy", "replay")
    outcomes = run_all(planned, workers=1)
    return settings, planned.strategy.name, outcomes


def test_reports_read_the_same_trades_from_the_store_as_from_the_old_ledger_rows(project):
    settings, name, outcomes = _real_backtest(project)
    opened = [r for o in outcomes for r in o.opened]
    closed = [c for o in outcomes for c in o.closed]
    still = [o.still_open for o in outcomes if o.still_open is not None]
    assert len(closed) > 20
    opened_at = sorted(c.signal.timestamp for c in closed)
    old = SqliteLedger(project.root / "old.sqlite")
    frames = {o.job.symbol: [o.job.frame.start, o.job.frame.end] for o in outcomes}
    old_id = old.record_backtest(name, "replay", 1, opened, closed, frames)
    info = record_backtest_run(
        settings,
        strategy=name,
        exchange="replay",
        frames=[(o.job.symbol, o.job.frame.start, o.job.frame.end) for o in outcomes],
        closed=closed,
        still_open=still,
    )
    for query in (
        Query(name, mode="backtest"),
        Query(name, mode="backtest", symbol="LTCBTC"),
        Query(name, mode="backtest", since=opened_at[5], until=opened_at[-5]),
    ):
        want = old.read(query)
        got = read_backtest_events(settings, query)
        assert got.trades == want.trades  # every field, bit for bit
        assert got.still_open == want.still_open
        assert (want.run_id, got.run_id) == (old_id, info.run_id)
    old.close()
    assert not settings.ledger_path.exists()  # a backtest report never creates a ledger


def _old_ledger_with_a_backtest(settings: Settings) -> tuple[str, int]:
    """A ledger as an older btkit left it: a live event and a backtest run; its row count."""
    ledger = SqliteLedger(settings.ledger_path)
    ledger.write_opened(_signal(0, id="live-signal"))
    run_id = ledger.record_backtest(
        "strat", "replay", 5, [], [_closed(_signal(n)) for n in range(0, 400, 40)],
        {"ETHBTC": [0, 1]},
    )  # fmt: skip
    ledger.close()
    with sqlite3.connect(settings.ledger_path) as db:
        rows = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    return run_id, rows


def test_old_ledger_backtest_runs_are_read_listed_and_pruned_without_touching_live(project):
    settings = _settings(project.root)
    old_id, _ = _old_ledger_with_a_backtest(settings)
    report = read_backtest_events(settings, Query("strat", mode="backtest"))
    assert (report.run_id, len(report.trades)) == (old_id, 10)
    new = record_backtest_run(
        settings,
        strategy="strat",
        exchange="replay",
        frames=[("ETHBTC", 0, minute(9))],
        closed=[_closed(_signal(1000))],
        still_open=[],
    )
    assert read_backtest_events(settings, Query("strat", mode="backtest")).run_id == new.run_id
    everything = read_backtest_events(settings, Query("strat", mode="backtest", run_id=ALL_RUNS))
    assert len(everything.trades) == 11
    rows = list_runs(settings).rows
    assert [(r.run_id, r.store, r.trades) for r in rows] == [
        (old_id, "ledger", 10),
        (new.run_id, "runs", 1),
    ]
    assert rows[0].size is None
    assert rows[1].size == new.size
    pruned = prune_runs(settings, Retention(keep=1), now=10**13)
    assert [r.run_id for r in pruned.removed] == [old_id]
    assert pruned.ledger_events == 10
    with sqlite3.connect(settings.ledger_path) as db:
        left = db.execute("SELECT run_id, mode, action, signal_id FROM events").fetchall()
        runs = db.execute("SELECT run_id FROM runs").fetchall()
    assert left == [("live", "live", "opened", "live-signal")]
    assert runs == []
    assert [r.run_id for r in list_runs(settings).rows] == [new.run_id]


def test_unknown_run_ids_are_clear_errors_and_remove_nothing(project):
    settings = _settings(project.root)
    kept = record_backtest_run(
        settings, strategy="strat", exchange="replay", frames=[("ETHBTC", 0, 1)], closed=[],
        still_open=[],
    )  # fmt: skip
    with pytest.raises(ConfigError, match="No backtest run backtest-nope; nothing was removed"):
        prune_runs(settings, [kept.run_id, "backtest-nope"], now=0)
    assert kept.path.exists()
    with pytest.raises(ConfigError, match="no backtest run 'backtest-nope' of strat"):
        read_backtest_events(settings, Query("strat", mode="backtest", run_id="backtest-nope"))
    with pytest.raises(ConfigError, match="No backtest runs of strategy 'other'"):
        read_backtest_events(settings, Query("other", mode="backtest"))


def test_a_damaged_run_file_is_named_and_left_alone(project):
    settings = _settings(project.root)
    info = record_backtest_run(
        settings, strategy="strat", exchange="replay", frames=[("ETHBTC", 0, 1)], closed=[],
        still_open=[],
    )  # fmt: skip
    info.path.write_bytes(info.path.read_bytes()[:40])
    listing = list_runs(settings)
    assert listing.rows == []
    assert "Cannot read the backtest run" in listing.problems[0]
    with pytest.raises(StorageError, match="Cannot read the backtest run"):
        open_run_store(settings).read(info.run_id)
    assert len(info.path.read_bytes()) == 40


def test_temp_files_of_killed_writes_are_never_runs_and_old_ones_are_pruned(tmp_path):
    settings = _settings(tmp_path)
    store = open_run_store(settings)
    store.folder.mkdir(parents=True)
    fresh = store.folder / ".backtest-aaaaaaaaaaaa.npz.x1.tmp"
    stale = store.folder / ".backtest-bbbbbbbbbbbb.npz.x2.tmp"
    for leftover in (fresh, stale):
        leftover.write_bytes(b"PK" + bytes(100))
    os.utime(stale, (0, 0))
    assert list_runs(settings).rows == []
    now = int(os.path.getmtime(fresh) * 1000)
    dry = prune_runs(settings, Retention(keep=0), now=now, dry_run=True)
    assert dry.leftovers == [stale]
    assert stale.exists()
    done = prune_runs(settings, Retention(keep=0), now=now)
    assert (done.leftovers, done.freed_bytes) == ([stale], 102)
    assert not stale.exists()
    assert fresh.exists()


def _stamps(*runs: tuple[str, str, int]) -> list[RunStamp]:
    return [RunStamp(*run) for run in runs]


def test_retention_keeps_the_newest_per_strategy_and_needs_both_rules_to_agree():
    now = 100 * DAY_MS
    runs = _stamps(
        ("a1", "a", 10 * DAY_MS),
        ("a2", "a", 95 * DAY_MS),
        ("a3", "a", 99 * DAY_MS),
        ("b1", "b", 1 * DAY_MS),
        ("b0", "b", 1 * DAY_MS),  # a tie: broken by id, the same on every call
    )
    assert runs_to_prune(runs, Retention(keep=1), now) == ["b0", "a1", "a2"]
    assert runs_to_prune(runs, Retention(keep=0), now) == ["b0", "b1", "a1", "a2", "a3"]
    assert runs_to_prune(runs, Retention(older_than_days=30), now) == ["b0", "b1", "a1"]
    assert runs_to_prune(runs, Retention(keep=1, older_than_days=30), now) == ["b0", "a1"]
    assert runs_to_prune(runs, Retention(keep=5), now) == []
    for bad in ({}, {"keep": -1}, {"older_than_days": -1.0}, {"older_than_days": math.nan}):
        with pytest.raises(ValueError, match=r"--keep|--older-than"):
            Retention(**bad)  # type: ignore[arg-type]


def test_the_store_holds_columns_not_pickles(tmp_path):
    store = RunStore(tmp_path)
    info = store.write(
        run_id="backtest-c",
        strategy="strat",
        exchange="replay",
        created_at=1,
        frames=[("ETHBTC", 0, 1)],
        closed=[_closed(_signal(0))],
        still_open=[],
    )
    with np.load(info.path, allow_pickle=False) as archive:
        assert set(archive.files) == {"header", "prices", "times", "codes", "ids", "notes"}
        assert archive["prices"].dtype == np.dtype("<f8")


def _job(key: str, strategy: str, symbol: str = "ETHBTC") -> JobRecord:
    trade = Trade.from_closed(_closed(_signal(0, symbol)))
    return JobRecord(key, strategy, "{}", symbol, minute(0), minute(100), 3, 0, "", (trade,))


def test_sweeps_are_listed_per_strategy_and_pruned_apart_from_backtests(project):
    settings = _settings(project.root)
    path = sweep_store_path(settings)
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)  # a store from before jobs were timed
    old.execute(
        "CREATE TABLE jobs (key TEXT PRIMARY KEY, strategy TEXT NOT NULL, params TEXT NOT NULL, "
        "symbol TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL, calls INTEGER NOT "
        "NULL, failed INTEGER NOT NULL, last_error TEXT NOT NULL, trades BLOB NOT NULL)"
    )
    old.execute(
        "INSERT INTO jobs VALUES ('k0', 'other', '{}', 'LTCBTC', 0, 1, 1, 0, '', ?)",
        (pack_trades([_job("x", "other").trades[0]]),),
    )
    old.commit()
    old.close()
    store = SweepStore(path)
    for key, name, symbol in (("k1", "strat+fast:1", "ETHBTC"), ("k2", "strat+fast:2", "LTCBTC")):
        store.add(_job(key, name, symbol))
    store.close()
    backtest = record_backtest_run(
        settings, strategy="strat", exchange="replay", frames=[("ETHBTC", 0, 1)], closed=[],
        still_open=[],
    )  # fmt: skip
    rows = {r.run_id: r for r in list_runs(settings).rows}
    assert set(rows) == {backtest.run_id, "sweep-strat", "sweep-other"}
    strat = rows["sweep-strat"]
    assert (strat.store, strat.jobs, strat.trades, strat.symbols) == (
        "sweeps",
        2,
        2,
        ("ETHBTC", "LTCBTC"),
    )
    assert rows["sweep-other"].created_at == 0  # unknown: shown as such, oldest for --older-than
    assert prune_runs(settings, Retention(keep=1), now=10**13).removed == []  # each its own group
    pruned = prune_runs(settings, ["sweep-strat"], now=0)
    assert [r.run_id for r in pruned.removed] == ["sweep-strat"]
    store = SweepStore(path)
    try:
        assert set(store.finished(["k0", "k1", "k2"])) == {"k0"}  # other's job still resumes
    finally:
        store.close()
    assert backtest.path.exists()
