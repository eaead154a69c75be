"""Finished sweep jobs in SQLite, so a sweep stopped by a crash or Ctrl-C resumes.

One row per job, keyed by everything its result depends on (strategy source,
parameters, symbol, window, candle file, costs): a job whose key is here is
never run again, by this sweep or any other. Each row is committed with
`synchronous=FULL` before the job counts as done. Kept apart from the ledger:
sweeps run thousands of backtests, and live history must not drown in them.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from btkit.adapters.store.atomic import ensure_private_dir
from btkit.domain.errors import StorageError
from btkit.engine.statistics import Trade

_POSITIONS = ("long", "short")
_REASONS = ("take_profit", "stop_loss", "time_expired")
_COLUMNS = 9
"""opened, closed, pnl, open, close, take-profit, stop-loss prices, position, reason."""

_FIELDS = "key, strategy, params, symbol, start, end, calls, failed, last_error, trades"
_BASE = "substr(strategy, 1, instr(strategy || '+', '+') - 1)"
"""The strategy's own name: a bound parameter set is named `my-strategy+fast:10`."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key TEXT PRIMARY KEY,
    strategy TEXT NOT NULL,
    params TEXT NOT NULL,
    symbol TEXT NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    calls INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    trades BLOB NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class SweepGroup:
    """What `btkit runs` lists of a strategy's sweeps."""

    strategy: str
    jobs: int
    symbols: tuple[str, ...]
    start: int
    end: int
    created_at: int
    """When its newest job finished (0: before btkit recorded it)."""
    trades: int
    size: int
    """Bytes of its rows (the file holds them, plus SQLite's own overhead)."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What a finished job left: its closed trades."""

    key: str
    strategy: str
    params: str
    symbol: str
    start: int
    end: int
    calls: int
    failed: int
    last_error: str
    trades: tuple[Trade, ...]


class SweepStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            ensure_private_dir(path.parent)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute(_SCHEMA)
            self._add_created_column()
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(
                f"Cannot open the sweep store {path}: {exc}. Check the disk and the folder's "
                "permissions (or point --data-dir elsewhere); delete the file to start over."
            ) from exc

    def _add_created_column(self) -> None:
        """When each job finished, for `btkit runs` (older stores: 0, "unknown")."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "created_at" in columns:
            return
        try:
            self._db.execute("ALTER TABLE jobs ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0")
        except sqlite3.OperationalError as exc:
            if "duplicate column" not in str(exc):  # another sweep added it meanwhile
                raise

    def finished(self, keys: Iterable[str]) -> dict[str, JobRecord]:
        """The records of those of `keys` that are done."""
        wanted = list(keys)
        found: dict[str, JobRecord] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT {_FIELDS} FROM jobs WHERE key IN ({marks})", chunk)
            for row in rows:
                key, strategy, params, symbol, start, end, calls, failed, error, blob = row
                trades = unpack_trades(blob, symbol, key)
                record = JobRecord(
                    key, strategy, params, symbol, start, end, calls, failed, error, trades
                )
                found[record.key] = record
        return found

    def add(self, record: JobRecord) -> None:
        """Durable when it returns."""
        try:
            self._db.execute(
                f"INSERT OR REPLACE INTO jobs ({_FIELDS}, created_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    record.key,
                    record.strategy,
                    record.params,
                    record.symbol,
                    record.start,
                    record.end,
                    record.calls,
                    record.failed,
                    record.last_error,
                    pack_trades(record.trades),
                    int(time.time() * 1000),
                ),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"Cannot record a finished sweep job in {self.path}: {exc}") from exc

    def groups(self) -> list[SweepGroup]:
        """The finished jobs per strategy (every parameter set of it together), by name."""
        rows = self._db.execute(
            f"SELECT {_BASE} AS base, COUNT(*), GROUP_CONCAT(DISTINCT symbol), MIN(start), "
            "MAX(end), MAX(created_at), SUM(length(trades)), SUM(length(trades) + length(key) "
            "+ length(params) + length(symbol) + length(last_error) + length(strategy)) "
            "FROM jobs GROUP BY base ORDER BY base"
        )
        return [
            SweepGroup(
                str(base),
                int(jobs),
                tuple(sorted(str(symbols).split(","))),
                int(start),
                int(end),
                int(created),
                int(blob) // (_COLUMNS * 8),
                int(size),
            )
            for base, jobs, symbols, start, end, created, blob, size in rows
        ]

    def delete_groups(self, strategies: Sequence[str]) -> int:
        """Remove every job of these strategies, then give the space back; bytes freed."""
        before = self.path.stat().st_size
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for strategy in strategies:
                    self._db.execute(f"DELETE FROM jobs WHERE {_BASE} = ?", (strategy,))
                self._db.execute("COMMIT")
            finally:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise StorageError(
                f"Cannot prune the sweep store {self.path}: {exc}. If a sweep is running, "
                "let it finish (or stop it), then prune again."
            ) from exc
        return max(before - self.path.stat().st_size, 0)

    def close(self) -> None:
        self._db.close()


def pack_trades(trades: Sequence[Trade]) -> bytes:
    """72 bytes a trade, exact: float64 holds ms times (< 2**53) and prices bit for bit.

    A year-long sweep closes millions of trades; as JSON they took ~200 bytes each.
    """
    rows = np.array(
        [
            (
                t.opened_at,
                t.closed_at,
                t.pnl_percentage,
                t.price_open,
                t.price_close,
                t.price_take_profit,
                t.price_stop_loss,
                _POSITIONS.index(t.position),
                _REASONS.index(t.close_reason),
            )
            for t in trades
        ],
        dtype="<f8",
    ).reshape(-1, _COLUMNS)
    return rows.tobytes()


def unpack_trades(blob: bytes, symbol: str, key: str) -> tuple[Trade, ...]:
    """The trades of a job; their ids are the job's key and their place in it."""
    rows = np.frombuffer(blob, dtype="<f8").reshape(-1, _COLUMNS)
    return tuple(
        Trade(
            f"{key[:16]}-{i}",
            symbol,
            _POSITIONS[int(row[7])],  # type: ignore[arg-type]
            int(row[0]),
            int(row[1]),
            _REASONS[int(row[8])],  # type: ignore[arg-type]
            float(row[3]),
            float(row[4]),
            float(row[5]),
            float(row[6]),
            float(row[2]),
        )
        for i, row in enumerate(rows.tolist())
    )
