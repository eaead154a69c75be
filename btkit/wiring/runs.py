"""Where backtest results live: the run store under `<data>/runs/`, plus old ledger rows.

Backtests record into the run store (one compact file per run), never into the
ledger. Ledgers written by an older btkit still hold backtest runs as events; they
stay readable (`btkit report --mode backtest --run ID`, `--run all`), are listed
by `btkit runs` and can be pruned with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from btkit.adapters.store.ledger import ALL_RUNS, LedgerContents, Query, SqliteLedger
from btkit.adapters.store.ledger_errors import translated_ledger_errors
from btkit.adapters.store.run_store import RunInfo, RunStore, StoredRun, new_run_id
from btkit.adapters.store.sweep_store import SweepStore
from btkit.domain.errors import ConfigError
from btkit.domain.model import ClosedResult, OpenSignal
from btkit.engine.statistics import Trade
from btkit.settings import Settings
from btkit.wiring.clocks import wall_time_ms

__all__ = ["RunInfo", "open_run_store", "read_backtest_events", "record_backtest_run"]

RUNS_FOLDER = "runs"


def open_run_store(settings: Settings) -> RunStore:
    return RunStore(settings.data_dir / RUNS_FOLDER)


def sweep_store_path(settings: Settings) -> Path:
    return settings.data_dir / "sweeps" / "jobs.sqlite"


@contextmanager
def existing_sweep_store(settings: Settings) -> Iterator[SweepStore | None]:
    """The sweep store for `btkit runs`, None when no sweep ever ran (never created here)."""
    path = sweep_store_path(settings)
    if not path.exists():
        yield None
        return
    store = SweepStore(path)
    try:
        yield store
    finally:
        store.close()


def record_backtest_run(
    settings: Settings,
    *,
    strategy: str,
    exchange: str,
    frames: Sequence[tuple[str, int, int]],
    closed: Sequence[ClosedResult],
    still_open: Sequence[OpenSignal],
) -> RunInfo:
    """Store a finished backtest as one file; returns what `btkit runs` will list."""
    return open_run_store(settings).write(
        run_id=new_run_id(),
        strategy=strategy,
        exchange=exchange,
        created_at=wall_time_ms(),
        frames=frames,
        closed=closed,
        still_open=still_open,
    )


@contextmanager
def legacy_ledger(settings: Settings, *, write: bool = False) -> Iterator[SqliteLedger | None]:
    """The ledger, for the backtest runs an older btkit put there; None when there is none.

    Never creates a ledger; `write` opens it to prune those runs.
    """
    path = settings.ledger_path
    if not path.exists():
        yield None
        return
    ledger = SqliteLedger.open_for_reading(path)
    if write:  # checked as for reading first, so a damaged file is an error, never replaced
        ledger.close()
        ledger = SqliteLedger(path)
    try:
        with translated_ledger_errors(path):
            yield ledger
    finally:
        ledger.close()


def _matches(query: Query, symbol: str, opened_at: int) -> bool:
    return (
        (query.symbol is None or symbol == query.symbol)
        and (query.since is None or opened_at >= query.since)
        and (query.until is None or opened_at < query.until)
    )


def _contents(runs: Sequence[StoredRun], query: Query, run_id: str | None) -> LedgerContents:
    trades = [
        Trade.from_closed(c)
        for run in runs
        for c in run.closed
        if _matches(query, c.symbol, c.signal.timestamp)
    ]
    still_open = [
        s for run in runs for s in run.still_open if _matches(query, s.symbol, s.timestamp)
    ]
    return LedgerContents(trades, still_open, run_id)


def _merged(first: LedgerContents, second: LedgerContents, run_id: str) -> LedgerContents:
    trades = sorted(
        [*first.trades, *second.trades], key=lambda t: (t.closed_at, t.symbol, t.signal_id)
    )
    still_open = sorted([*first.still_open, *second.still_open], key=lambda s: (s.timestamp, s.id))
    return LedgerContents(trades, still_open, run_id)


def read_backtest_events(settings: Settings, query: Query) -> LedgerContents:
    """A backtest report's contents: the latest stored run by default, any run by id, or all.

    Runs in the run store come first; a ledger from an older btkit is opened only when
    the run asked for is not in the store (or for `--run all`).
    """
    store = open_run_store(settings)
    stored, _ = store.runs(query.strategy)
    stored_ids = [info.run_id for info in stored]
    if query.run_id is None and stored:
        latest = stored[-1].run_id
        return _contents([store.read(latest)], query, latest)
    if query.run_id in stored_ids:
        return _contents([store.read(str(query.run_id))], query, query.run_id)
    with legacy_ledger(settings) as ledger:
        old_runs = ledger.runs(query.strategy, "backtest") if ledger is not None else []
        if query.run_id == ALL_RUNS:
            fresh = _contents([store.read(i) for i in stored_ids], query, ALL_RUNS)
            if ledger is None or not old_runs:
                return fresh
            return _merged(fresh, ledger.read(query), ALL_RUNS)
        if query.run_id is None:  # nothing stored: the latest run an older btkit recorded
            if ledger is None or not old_runs:
                with_runs = sorted({info.strategy for info in store.runs()[0]})
                raise ConfigError(
                    f"No backtest runs of strategy {query.strategy!r} in {store.folder}. "
                    f"Strategies with backtest runs: {', '.join(with_runs) or 'none'}; run "
                    f"`btkit backtest SYMBOL --strategy {query.strategy}` first."
                )
            return ledger.read(query)
        if ledger is not None and query.run_id in old_runs:
            return ledger.read(query)
        every = [*stored_ids, *old_runs]
        raise ConfigError(
            f"There is no backtest run {query.run_id!r} of {query.strategy}. Its backtest runs: "
            f"{', '.join(every) or 'none'}; or --run all (`btkit runs` lists them)."
        )
