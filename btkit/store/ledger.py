"""The durable event ledger (SPEC §5 beyond): every `opened` and `closed`, in SQLite.

`<data>/btkit.sqlite`, WAL mode with a busy timeout, so several daemons write
at once and `btkit report` reads while they run; `synchronous=FULL`, so a
committed event survives power loss. Inserts are idempotent on
(run, signal, action): replaying a crashed step never duplicates an event.
The schema version is `PRAGMA user_version`; migrations only add.

Live events share the run id "live" until a replay is started over
(`--restart`): that starts a new live-mode run, which later starts of the same
strategy and exchange continue, so signal ids reused by the new run never meet
the old run's events. Each backtest gets its own run id.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import starmap
from pathlib import Path
from typing import Literal, Protocol

import filelock

from btkit.domain import ClosedResult, OpenedResult, OpenSignal
from btkit.errors import StorageError
from btkit.report.statistics import Trade

LIVE_RUN = "live"
ALL_RUNS = "all"
"""`Query.run_id` for every run of the mode (default: the latest run)."""
Mode = Literal["live", "backtest"]

_MIGRATIONS: list[str] = [
    # 1: runs and events
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        mode TEXT NOT NULL CHECK (mode IN ('live', 'backtest')),
        strategy TEXT NOT NULL,
        exchange TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE events (
        run_id TEXT NOT NULL,
        mode TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('opened', 'closed')),
        signal_id TEXT NOT NULL,
        strategy TEXT NOT NULL,
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        position TEXT NOT NULL,
        opened_at INTEGER NOT NULL,
        price_open REAL NOT NULL,
        price_take_profit REAL NOT NULL,
        price_stop_loss REAL NOT NULL,
        minute_estimated_time REAL NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        closed_at INTEGER,
        close_reason TEXT,
        price_close REAL,
        pnl_percentage REAL,
        PRIMARY KEY (run_id, signal_id, action)
    );
    CREATE INDEX events_by_strategy ON events (strategy, mode, action, closed_at);
    """,
]


class EventLog(Protocol):
    """What the runner needs from a ledger."""

    def record_opened(self, signal: OpenSignal) -> None: ...

    def record_closed(self, result: ClosedResult) -> None: ...

    def closed_at(self, signal_id: str) -> int | None:
        """When the signal closed, if the ledger has its close."""
        ...


class NoLedger:
    """For backtests (recorded in one batch at the end) and plain tests."""

    def record_opened(self, signal: OpenSignal) -> None:
        pass

    def record_closed(self, result: ClosedResult) -> None:
        pass

    def closed_at(self, signal_id: str) -> int | None:
        return None


@dataclass(frozen=True, slots=True)
class Query:
    strategy: str
    mode: Mode = "live"
    symbol: str | None = None
    since: int | None = None
    until: int | None = None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerContents:
    trades: list[Trade]
    still_open: list[OpenSignal]
    run_id: str | None


def _signal_row(signal: OpenSignal) -> tuple[object, ...]:
    return (
        signal.id,
        signal.strategy_name,
        signal.exchange_name,
        signal.symbol,
        signal.position,
        signal.timestamp,
        signal.price_open,
        signal.price_take_profit,
        signal.price_stop_loss,
        signal.minute_estimated_time,
        signal.note,
    )


_INSERT = """
    INSERT OR IGNORE INTO events (run_id, mode, action, signal_id, strategy, exchange, symbol,
        position, opened_at, price_open, price_take_profit, price_stop_loss,
        minute_estimated_time, note, closed_at, close_reason, price_close, pnl_percentage)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def _opened_row(run_id: str, mode: Mode, signal: OpenSignal) -> tuple[object, ...]:
    return (run_id, mode, "opened", *_signal_row(signal), None, None, None, None)


def _closed_row(run_id: str, mode: Mode, result: ClosedResult) -> tuple[object, ...]:
    return (
        run_id,
        mode,
        "closed",
        *_signal_row(result.signal),
        result.close_timestamp,
        result.close_reason,
        result.pnl.price_close,
        result.pnl.pnl_percentage,
    )


class SqliteLedger:
    def __init__(self, path: Path, *, run_id: str = LIVE_RUN, mode: Mode = "live") -> None:
        self.path = path
        self.run_id = run_id
        self.mode: Mode = mode
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Switching to WAL and migrating race between processes opening a new
            # ledger at once (tables created twice, "database is locked"): one at a time.
            with filelock.FileLock(f"{path}.init.lock", timeout=60):
                existed = path.exists()
                self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
                if not existed:
                    path.chmod(0o600)
                self._db.execute("PRAGMA busy_timeout=30000")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._migrate()
        except filelock.Timeout as exc:
            raise StorageError(
                f"Another process has been initialising the ledger {path} for a minute; "
                "check for a stuck btkit process."
            ) from exc
        except sqlite3.DatabaseError as exc:
            raise StorageError(
                f"Cannot open the ledger {path}: {exc}. If the file is damaged, move it aside "
                "(reports start empty; state files are not affected) and restart."
            ) from exc

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(_MIGRATIONS):
            raise StorageError(
                f"{self.path} was written by a newer btkit (schema {version}); upgrade btkit."
            )
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; any SQLite error rolls back and becomes a StorageError."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StorageError(
                f"Cannot write to the ledger {self.path}: {exc}. Free disk space or fix the "
                "folder's permissions, then restart; events already recorded are safe."
            ) from exc

    def _write(self, rows: Iterable[tuple[object, ...]]) -> None:
        with self._transaction() as db:
            db.executemany(_INSERT, rows)

    def record_opened(self, signal: OpenSignal) -> None:
        """Idempotent: recording a restored signal again after a crash changes nothing."""
        self._write([_opened_row(self.run_id, self.mode, signal)])

    def record_closed(self, result: ClosedResult) -> None:
        self._write([_closed_row(self.run_id, self.mode, result)])

    def closed_at(self, signal_id: str) -> int | None:
        row = self._db.execute(
            "SELECT closed_at FROM events WHERE run_id = ? AND signal_id = ? AND action = 'closed'",
            (self.run_id, signal_id),
        ).fetchone()
        return None if row is None else int(row[0])

    def record_backtest(
        self,
        strategy: str,
        exchange: str,
        created_at: int,
        opened: Sequence[OpenedResult],
        closed: Sequence[ClosedResult],
        details: dict[str, object],
    ) -> str:
        """Store a whole backtest run in one transaction; returns its run id.

        A backtest can be run again, so this batch skips the fsync of FULL
        durability (WAL keeps the ledger consistent across a crash either way).
        """
        run_id = f"backtest-{uuid.uuid4().hex[:12]}"
        self._db.execute("PRAGMA synchronous=NORMAL")
        rows = [_opened_row(run_id, "backtest", r.signal) for r in opened]
        rows += [_closed_row(run_id, "backtest", r) for r in closed]
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs VALUES (?, 'backtest', ?, ?, ?, ?)",
                (run_id, strategy, exchange, created_at, json.dumps(details)),
            )
            db.executemany(_INSERT, rows)
        self._db.execute("PRAGMA synchronous=FULL")
        return run_id

    def start_run(self, strategy: str, exchange: str, created_at: int) -> str:
        """A new live-mode run (a replay started over); this ledger records into it."""
        run_id = f"live-{uuid.uuid4().hex[:12]}"
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs VALUES (?, 'live', ?, ?, ?, '{}')",
                (run_id, strategy, exchange, created_at),
            )
        self.run_id = run_id
        return run_id

    def resume_run(self, strategy: str, exchange: str) -> str:
        """Record into the latest live-mode run of this strategy and exchange ("live" if none)."""
        row = self._db.execute(
            "SELECT run_id FROM runs WHERE mode = 'live' AND strategy = ? AND exchange = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (strategy, exchange),
        ).fetchone()
        self.run_id = LIVE_RUN if row is None else str(row[0])
        return self.run_id

    def latest_live_run(self, strategy: str) -> str | None:
        """The run of the strategy's most recently recorded live event."""
        row = self._db.execute(
            "SELECT run_id FROM events WHERE strategy = ? AND mode = 'live' "
            "ORDER BY rowid DESC LIMIT 1",
            (strategy,),
        ).fetchone()
        return None if row is None else str(row[0])

    def latest_backtest(self, strategy: str) -> str | None:
        row = self._db.execute(
            "SELECT run_id FROM runs WHERE mode = 'backtest' AND strategy = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (strategy,),
        ).fetchone()
        return None if row is None else str(row[0])

    def strategies(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT strategy FROM events ORDER BY 1")]

    def read(self, query: Query) -> LedgerContents:
        run_id = query.run_id
        if query.mode == "backtest" and run_id is None:
            run_id = self.latest_backtest(query.strategy)
            if run_id is None:
                return LedgerContents([], [], None)
        elif query.mode == "live" and run_id is None:
            run_id = self.latest_live_run(query.strategy)
        if run_id == ALL_RUNS:
            run_id = None
        where = ["strategy = ?", "mode = ?"]
        params: list[object] = [query.strategy, query.mode]
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if query.symbol is not None:
            where.append("symbol = ?")
            params.append(query.symbol)
        if query.since is not None:
            where.append("opened_at >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("opened_at < ?")
            params.append(query.until)
        filters = " AND ".join(where)
        columns = (
            "signal_id, strategy, exchange, symbol, position, opened_at, price_open, "
            "price_take_profit, price_stop_loss, minute_estimated_time, note"
        )
        # Columns in Trade's field order, so each row builds a Trade directly.
        closed_rows = self._db.execute(
            "SELECT signal_id, symbol, position, opened_at, closed_at, close_reason, "
            "price_open, price_close, price_take_profit, price_stop_loss, pnl_percentage "
            f"FROM events WHERE {filters} AND action = 'closed' "
            "ORDER BY closed_at, symbol, signal_id",
            params,
        )
        trades = list(starmap(Trade, closed_rows))
        still_open = [
            OpenSignal(
                signal_id,
                position,
                price_open,
                take_profit,
                stop_loss,
                minutes,
                symbol,
                strategy,
                exchange,
                opened_at,
                note,
            )
            for (
                signal_id,
                strategy,
                exchange,
                symbol,
                position,
                opened_at,
                price_open,
                take_profit,
                stop_loss,
                minutes,
                note,
            ) in self._db.execute(
                f"SELECT {columns} FROM events AS o WHERE {filters} AND action = 'opened' "
                "AND NOT EXISTS (SELECT 1 FROM events AS c WHERE c.run_id = o.run_id "
                "AND c.signal_id = o.signal_id AND c.action = 'closed') "
                "ORDER BY opened_at, signal_id",
                params,
            )
        ]
        return LedgerContents(trades, still_open, run_id)
