"""Finished sweep jobs in SQLite, so a sweep stopped by a crash or Ctrl-C resumes.

One row per job, keyed by everything its result depends on (strategy source,
parameters, symbol, window, candle file, costs): a job whose key is here is
never run again, by this sweep or any other. Each row is committed with
`synchronous=FULL` before the job counts as done. Kept apart from the ledger:
sweeps run thousands of backtests, and live history must not drown in them.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from btkit.adapters.store.atomic import ensure_private_dir
from btkit.domain.errors import StorageError

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
    trades TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class JobRecord:
    """What a finished job left: its trades as plain rows (see `sweep_jobs.trade_row`)."""

    key: str
    strategy: str
    params: str
    symbol: str
    start: int
    end: int
    calls: int
    failed: int
    last_error: str
    trades: tuple[tuple[object, ...], ...]


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
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(
                f"Cannot open the sweep store {path}: {exc}. Check the disk and the folder's "
                "permissions (or point --data-dir elsewhere); delete the file to start over."
            ) from exc

    def finished(self, keys: Iterable[str]) -> dict[str, JobRecord]:
        """The records of those of `keys` that are done."""
        wanted = list(keys)
        found: dict[str, JobRecord] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT * FROM jobs WHERE key IN ({marks})", chunk)
            for row in rows:
                key, strategy, params, symbol, start, end, calls, failed, error, text = row
                trades = tuple(tuple(t) for t in json.loads(text))
                record = JobRecord(
                    key, strategy, params, symbol, start, end, calls, failed, error, trades
                )
                found[record.key] = record
        return found

    def add(self, record: JobRecord) -> None:
        """Durable when it returns."""
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?)",
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
                    json.dumps(_rows(record.trades), separators=(",", ":")),
                ),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"Cannot record a finished sweep job in {self.path}: {exc}") from exc

    def close(self) -> None:
        self._db.close()


def _rows(trades: Sequence[tuple[object, ...]]) -> list[list[object]]:
    return [list(t) for t in trades]
