"""The durable event ledger (SPEC §5 beyond): every `opened` and `closed`, in SQLite.

`<data>/btkit.sqlite`, WAL mode with a busy timeout, so several daemons write
at once and `btkit report` reads while they run; `synchronous=FULL`, so a
committed event survives power loss. Inserts are idempotent on
(run, signal, action): replaying a crashed step never duplicates an event.
Nothing else is skipped: a different event under that key, a NaN price, a
NOT NULL column are errors. An infinite lifetime is stored as REAL Inf. A
writer waits at most `BUSY_TIMEOUT_SECONDS` for another process's write lock,
then says who holds it.
`record_opened` / `record_closed` run on a writer thread (one per ledger), which
commits the writes queued meanwhile together (group commit); each returns once
its transaction is committed. The synchronous methods share the connection with
that thread, one thread at a time.
The schema version is `PRAGMA user_version`; migrations only add.

Live events share the run id "live" until a replay is started over
(`--restart`): that starts a new live-mode run, which later starts of the same
strategy and exchange continue, so signal ids reused by the new run never meet
the old run's events. Each backtest gets its own run id.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from itertools import starmap
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import filelock

from btkit.adapters.store.atomic import ensure_private_dir
from btkit.adapters.store.lock_holders import write_lock_holders
from btkit.adapters.store.order_ledger import ORDER_TABLES, SqliteOrderLog
from btkit.adapters.store.writer_thread import Job, SerialConnection, WriterThread
from btkit.domain.errors import StorageError
from btkit.domain.model import (
    ClosedResult,
    OpenedResult,
    OpenSignal,
    Pnl,
    StreamedResult,
)
from btkit.domain.orders import TradeMode
from btkit.engine.statistics import Trade

P = ParamSpec("P")
T = TypeVar("T")

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
    # 2: sequence numbers (existing rows in rowid order) and delivery watermarks. Events
    # recorded before this migration count as delivered: older btkit kept no record.
    """
    ALTER TABLE events ADD COLUMN seq INTEGER;
    UPDATE events SET seq = rowid;
    CREATE UNIQUE INDEX events_by_seq ON events (seq);
    CREATE INDEX events_by_stream ON events (run_id, strategy, exchange, symbol, seq);
    CREATE TABLE deliveries (
        run_id TEXT NOT NULL,
        strategy TEXT NOT NULL,
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (run_id, strategy, exchange, symbol)
    );
    INSERT INTO deliveries SELECT run_id, strategy, exchange, symbol, MAX(seq)
        FROM events WHERE mode = 'live' GROUP BY run_id, strategy, exchange, symbol;
    """,
    # 3: orders, fills and halts (btkit/adapters/store/order_ledger.py)
    ORDER_TABLES,
]


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


_COLUMNS = (
    "run_id",
    "mode",
    "action",
    "signal_id",
    "strategy",
    "exchange",
    "symbol",
    "position",
    "opened_at",
    "price_open",
    "price_take_profit",
    "price_stop_loss",
    "minute_estimated_time",
    "note",
    "closed_at",
    "close_reason",
    "price_close",
    "pnl_percentage",
)
# Only a true duplicate (the same event again) is skipped: a NOT NULL or CHECK
# failure raises, where INSERT OR IGNORE would silently drop the event, and a
# different event under the same (run, signal, action) is refused by _write.
# The sequence number is taken inside the write transaction (BEGIN IMMEDIATE holds
# the ledger's write lock), so it is unique and increasing across every process.
_INSERT = (
    f"INSERT INTO events ({', '.join(_COLUMNS)}, seq) "
    f"VALUES ({', '.join('?' * len(_COLUMNS))}, "
    "(SELECT COALESCE(MAX(seq), 0) + 1 FROM events)) "
    "ON CONFLICT (run_id, signal_id, action) DO NOTHING"
)
_STORED = (
    f"SELECT {', '.join(_COLUMNS)} FROM events WHERE run_id = ? AND signal_id = ? AND action = ?"
)

BUSY_TIMEOUT_SECONDS = 10.0
"""Longest wait for another process's write lock. btkit's own write transactions
last milliseconds (a big backtest batch, about a second); longer means a stuck
or foreign holder, which waiting on would only stall every symbol's loop."""

_PRICES = ("price_open", "price_take_profit", "price_stop_loss", "price_close", "pnl_percentage")


def _check_numbers(row: tuple[object, ...]) -> None:
    """NaN binds as NULL in SQLite: refuse it loudly instead of storing a hole."""
    event = dict(zip(_COLUMNS, row, strict=True))
    checked = [*_PRICES, "minute_estimated_time"]
    if event["action"] == "opened":
        checked = [name for name in checked if name not in ("price_close", "pnl_percentage")]
    for name in checked:
        value = event[name]
        usable = isinstance(value, int | float) and (
            math.isfinite(value) or (name == "minute_estimated_time" and value == math.inf)
        )
        if not usable:
            raise StorageError(
                f"Refusing to record the {event['action']} event of signal "
                f"{event['signal_id']} ({event['symbol']}): {name} is {value!r}, not a finite "
                "number. Nothing was written; this is a bug or bad data upstream (the state "
                "file still holds the signal)."
            )


def event_from_row(row: tuple[Any, ...], *, redelivered: bool) -> StreamedResult:
    """An event as it was streamed, from its ledger row (`_COLUMNS`, then seq)."""
    (
        _run_id,
        _mode,
        action,
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
        closed_at,
        reason,
        price_close,
        pnl,
        seq,
    ) = row
    signal = OpenSignal(
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
    if action == "opened":
        return OpenedResult(
            strategy_name=strategy,
            exchange_name=exchange,
            symbol=symbol,
            timestamp=opened_at,
            current_price=price_open,
            signal=signal,
            seq=seq,
            redelivered=redelivered,
        )
    return ClosedResult(
        strategy_name=strategy,
        exchange_name=exchange,
        symbol=symbol,
        timestamp=closed_at,
        current_price=price_close,
        signal=signal,
        close_reason=reason,
        close_timestamp=closed_at,
        pnl=Pnl(pnl, price_open, price_close),
        seq=seq,
        redelivered=redelivered,
    )


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


class LedgerLockedError(StorageError):
    """Another process held the ledger's write lock longer than BUSY_TIMEOUT_SECONDS."""


def _locked_message(path: Path, waited_seconds: float) -> str:
    holders = [h for h in write_lock_holders(path) if h.pid != os.getpid()]
    waited = f"for more than {waited_seconds:g} s"
    if holders:
        who = ", ".join(f"pid {h.pid} ({h.command or 'command unknown'})" for h in holders)
        found = f"{who} has held its write lock {waited}"
    else:
        found = (
            f"another process has held its write lock {waited}; find it with "
            f"`fuser -v {path} {path}-wal {path}-shm` (or `lsof {path}`)"
        )
    return (
        f"The ledger {path} is locked: {found}. btkit holds that lock for milliseconds, so "
        "this is usually a sqlite3 shell or a tool with an open transaction: end it (COMMIT, "
        "ROLLBACK or quit), then restart. Events already recorded are safe, and the state "
        "files still hold every open signal."
    )


def _is_busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED (any extended code): another connection holds a lock."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _create_private(path: Path) -> None:
    """Create an empty database file as 0600 before SQLite does, whatever the umask."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def unreadable_ledger(path: Path, reason: object) -> StorageError:
    return StorageError(
        f"Cannot read the ledger {path}: {reason}. It was left untouched. If it is damaged, "
        f"move it aside (`mv {path} {path}.damaged`): the next run starts a new ledger; "
        "state files and open signals are not affected."
    )


class SqliteLedger:
    def __init__(
        self,
        path: Path,
        *,
        run_id: str = LIVE_RUN,
        mode: Mode = "live",
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
    ) -> None:
        self.path = path
        self.run_id = run_id
        self.mode: Mode = mode
        self._busy_timeout = busy_timeout
        self._reader: SerialConnection | None = None
        self._batch_open = False
        """The writer thread holds a group-commit transaction: writes use savepoints."""
        self._batch_lost = False
        """SQLite rolled that whole transaction back (e.g. disk full)."""
        self._writer = WriterThread(f"btkit-ledger-writer {path.name}", self._run_batch)
        ensure_private_dir(path.parent)
        try:
            # Switching to WAL and migrating race between processes opening a new
            # ledger at once (tables created twice, "database is locked"): one at a time.
            with filelock.FileLock(f"{path}.init.lock", timeout=60, mode=0o600):
                _create_private(path)  # SQLite's -wal and -shm copy the database's mode
                self._db = SerialConnection(
                    sqlite3.connect(
                        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
                    )
                )
                self._db.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._migrate()
        except OSError as exc:
            raise StorageError(
                f"Cannot create the ledger {path}: {exc.strerror or exc}. Free disk space or "
                "fix the folder's permissions (or point --data-dir elsewhere), then restart."
            ) from exc
        except filelock.Timeout as exc:
            raise StorageError(
                f"Another process has been initialising the ledger {path} for a minute; "
                "check for a stuck btkit process."
            ) from exc
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc):
                raise LedgerLockedError(_locked_message(path, busy_timeout)) from exc
            raise StorageError(
                f"Cannot open the ledger {path}: {exc}. If the file is damaged, move it aside "
                "(reports start empty; state files are not affected) and restart."
            ) from exc

    @classmethod
    def open_for_reading(cls, path: Path) -> SqliteLedger:
        """For reports: an existing ledger, checked before it is opened as usual.

        Opening as usual would turn an empty or foreign file into a new ledger; here
        a file that is not a btkit ledger is a StorageError naming it, and is left
        exactly as it is.
        """
        try:
            uri = f"{path.resolve().as_uri()}?mode=rw"  # never creates the file
            probe = sqlite3.connect(uri, uri=True, timeout=30)
            try:
                version = probe.execute("PRAGMA user_version").fetchone()[0]
            finally:
                probe.close()
        except sqlite3.Error as exc:
            raise unreadable_ledger(path, exc) from exc
        if version == 0:
            raise unreadable_ledger(path, "the file is empty or is not a btkit ledger")
        return cls(path)

    def order_log(self, strategy: str, exchange: str, mode: TradeMode) -> SqliteOrderLog:
        """Orders and fills of one strategy, exchange and trade mode (the `OrderLog` port),
        on this ledger's connection and writer thread."""
        return SqliteOrderLog(self, strategy, exchange, mode)

    @property
    def connection(self) -> SerialConnection:
        """The writer's connection (its statements wait for a group commit in progress)."""
        return self._db

    @property
    def reader(self) -> SerialConnection:
        """For the order log's reads on the event loop: a connection of its own, so a read
        never waits for the writer thread's commit and fsync (WAL readers see the last
        commit; every order-log write is awaited until committed before it is read)."""
        if self._reader is None:
            db = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            db.execute(f"PRAGMA busy_timeout={round(self._busy_timeout * 1000)}")
            self._reader = SerialConnection(db)
        return self._reader

    def write_transaction(self) -> AbstractContextManager[SerialConnection]:
        """For the order log's writes: a savepoint inside the writer's group commit."""
        return self._transaction()

    async def on_writer(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """For the order log: `fn` on the writer thread, returning once committed."""
        return await self._off_loop(fn, *args, **kwargs)

    def close(self) -> None:
        """Commit every queued write, join the writer thread, close the connection."""
        self._writer.close()
        self._db.close()
        if self._reader is not None:
            self._reader.close()

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
    def _transaction(self) -> Iterator[SerialConnection]:
        """One write transaction; any SQLite error rolls back and becomes a StorageError.

        Inside the writer thread's group commit it is a savepoint instead, so a
        refused write undoes only its own rows.
        """
        with self._db.lock:
            if self._batch_open:
                with self._savepoint():
                    yield self._db
                return
            with self._own_transaction():
                yield self._db

    @contextmanager
    def _own_transaction(self) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise self._write_error(exc) from exc
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        try:
            self._db.execute("SAVEPOINT one_write")
            yield
            self._db.execute("RELEASE one_write")
        except sqlite3.Error as exc:
            self._undo_savepoint()
            raise self._write_error(exc) from exc
        except BaseException:
            self._undo_savepoint()
            raise

    def _undo_savepoint(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK TO one_write")
                self._db.execute("RELEASE one_write")
                return
        except sqlite3.Error:
            pass
        self._batch_lost = True  # SQLite ended the whole transaction: run each write alone

    def _run_batch(self, jobs: Sequence[Job[Any]]) -> None:
        """The writer thread's batch: one transaction, one savepoint per write.

        Callers are answered only after COMMIT. If the transaction as a whole
        fails (COMMIT refused, or SQLite rolled it back), every write is run
        again on its own, so each caller gets its own result or its own error.
        """
        if len(jobs) > 1:
            with self._db.lock:
                answered = self._run_together(jobs)
            if answered:
                for job in jobs:
                    job.resolve()
                return
        for job in jobs:
            with self._db.lock:
                job.run()
            job.resolve()

    def _run_together(self, jobs: Sequence[Job[Any]]) -> bool:
        """True when every job has its answer; False to run each again on its own."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # e.g. locked past the busy timeout: nothing was tried
            for job in jobs:
                job.outcome = (False, self._write_error(exc))
            return True
        self._batch_open, self._batch_lost = True, False
        committed = False
        try:
            for job in jobs:
                job.run()
                if self._batch_lost:
                    return False
            self._db.execute("COMMIT")
            committed = True
        except sqlite3.Error:
            return False
        finally:
            self._batch_open = False
            if not committed and self._db.in_transaction:
                self._db.execute("ROLLBACK")
        return True

    async def _off_loop(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a synchronous write on the writer thread; returns once it is committed.

        Every `async def` that writes routes through here; its synchronous body
        must write through `_transaction` (a savepoint inside a group commit).
        """
        return await self._writer.run(fn, *args, **kwargs)

    def _write_error(self, exc: sqlite3.Error) -> StorageError:
        """Advice that fits the failure: a held lock, a refused row, or the disk."""
        if _is_busy(exc):
            return LedgerLockedError(_locked_message(self.path, self._busy_timeout))
        if isinstance(exc, sqlite3.IntegrityError):
            return StorageError(
                f"The ledger {self.path} refused an event: {exc}. Nothing was written; "
                "this is a bug, please report it (the state file still holds the signal)."
            )
        return StorageError(
            f"Cannot write to the ledger {self.path}: {exc}. Free disk space or fix the "
            "folder's permissions, then restart; events already recorded are safe."
        )

    def _write(self, rows: Iterable[tuple[object, ...]]) -> None:
        rows = list(rows)
        for row in rows:
            _check_numbers(row)
        with self._transaction() as db:
            for row in rows:
                if db.execute(_INSERT, row).rowcount == 0:
                    self._check_duplicate(db, row)

    def _check_duplicate(self, db: SerialConnection, row: tuple[object, ...]) -> None:
        """A replayed crash step writes the same event again; anything else is refused."""
        stored = db.execute(_STORED, (row[0], row[3], row[2])).fetchone()
        changed = [
            f"{name} {old!r} -> {new!r}"
            for name, old, new in zip(_COLUMNS, stored, row, strict=True)
            if old != new
        ]
        if changed:
            raise StorageError(
                f"The ledger {self.path} already holds a different {row[2]} event for signal "
                f"{row[3]} ({row[6]}, run {row[0]}): {', '.join(changed)}. Nothing was "
                "overwritten and the new event was not recorded (the state file still holds "
                "the signal). Inspect both; to keep a separate record, use another --data-dir."
            )

    async def record_opened(self, signal: OpenSignal) -> int:
        """Idempotent: recording a restored signal again after a crash changes nothing."""
        return await self._off_loop(self.write_opened, signal)

    async def record_closed(self, result: ClosedResult) -> int:
        return await self._off_loop(self.write_closed, result)

    def write_opened(self, signal: OpenSignal) -> int:
        """`record_opened`, synchronously (tools and tests)."""
        return self._write_one(_opened_row(self.run_id, self.mode, signal))

    def write_closed(self, result: ClosedResult) -> int:
        """`record_closed`, synchronously (tools and tests)."""
        return self._write_one(_closed_row(self.run_id, self.mode, result))

    def _write_one(self, row: tuple[object, ...]) -> int:
        """Write one event; its sequence number (the stored one for a replayed duplicate)."""
        self._write([row])
        found = self._db.execute(
            "SELECT seq FROM events WHERE run_id = ? AND signal_id = ? AND action = ?",
            (row[0], row[3], row[2]),
        ).fetchone()
        return int(found[0])

    async def mark_delivered(self, result: StreamedResult) -> None:
        """The consumer has `result`: it need not be re-delivered after a restart."""
        await self._off_loop(self.write_delivered, result)

    def write_delivered(self, result: StreamedResult) -> None:
        """`mark_delivered`, synchronously. The watermark only moves forward."""
        if result.seq is None:
            return
        with self._transaction() as db:
            db.execute(
                "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, strategy, exchange, symbol) "
                "DO UPDATE SET seq = MAX(seq, excluded.seq)",
                (
                    self.run_id,
                    result.strategy_name,
                    result.exchange_name,
                    result.symbol,
                    result.seq,
                ),
            )

    def undelivered(
        self, strategy: str, exchange: str, symbols: Sequence[str]
    ) -> list[StreamedResult]:
        """This run's events of these symbols above their delivery watermark, by seq.

        Rebuilt from the rows with the ids and seq they were recorded with, flagged
        `redelivered`: a consumer may have had them before a crash.
        """
        found: list[StreamedResult] = []
        for symbol in symbols:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)}, seq FROM events WHERE run_id = ? "
                "AND strategy = ? AND exchange = ? AND symbol = ? AND seq > COALESCE(("
                "SELECT seq FROM deliveries WHERE run_id = ? AND strategy = ? "
                "AND exchange = ? AND symbol = ?), 0) ORDER BY seq",
                (self.run_id, strategy, exchange, symbol) * 2,
            )
            found.extend(event_from_row(row, redelivered=True) for row in rows)
        return sorted(found, key=lambda event: event.seq or 0)

    def events_after(
        self,
        seq: int,
        *,
        strategy: str | None = None,
        symbol: str | None = None,
        mode: Mode | None = None,
        limit: int = 1000,
    ) -> list[tuple[str, StreamedResult]]:
        """(run id, event) of every event with a sequence number above `seq`, in order."""
        where = ["seq > ?"]
        params: list[object] = [seq]
        for column, value in (("strategy", strategy), ("symbol", symbol), ("mode", mode)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)}, seq FROM events WHERE {' AND '.join(where)} "
            "ORDER BY seq LIMIT ?",
            (*params, limit),
        )
        return [(str(row[0]), event_from_row(row, redelivered=False)) for row in rows]

    def data_version(self) -> int:
        """Changes when another connection commits: a cheap "anything new?" for followers."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def closed_at(self, signal_id: str, opened_at: int) -> int | None:
        row = self._db.execute(
            "SELECT closed_at FROM events WHERE run_id = ? AND signal_id = ? "
            "AND action = 'closed' AND opened_at = ?",
            (self.run_id, signal_id, opened_at),
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
        rows = [_opened_row(run_id, "backtest", r.signal) for r in opened]
        rows += [_closed_row(run_id, "backtest", r) for r in closed]
        for row in rows:
            _check_numbers(row)
        with self._db.lock:  # no live write may commit while durability is lowered
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._transaction() as db:
                    db.execute(
                        "INSERT INTO runs VALUES (?, 'backtest', ?, ?, ?, ?)",
                        (run_id, strategy, exchange, created_at, json.dumps(details)),
                    )
                    db.executemany(_INSERT, rows)
            finally:
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

    def runs(self, strategy: str, mode: Mode) -> list[str]:
        """The strategy's run ids in `mode`: registered ones and those with events."""
        rows = self._db.execute(
            "SELECT run_id FROM runs WHERE strategy = ? AND mode = ? "
            "UNION SELECT run_id FROM events WHERE strategy = ? AND mode = ? ORDER BY 1",
            (strategy, mode, strategy, mode),
        )
        return [str(r[0]) for r in rows]

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
            event_from_row(row, redelivered=False).signal
            for row in self._db.execute(
                f"SELECT {', '.join(_COLUMNS)}, seq FROM events AS o WHERE {filters} "
                "AND action = 'opened' "
                "AND NOT EXISTS (SELECT 1 FROM events AS c WHERE c.run_id = o.run_id "
                "AND c.signal_id = o.signal_id AND c.action = 'closed') "
                "ORDER BY opened_at, signal_id",
                params,
            )
        ]
        return LedgerContents(trades, still_open, run_id)

    # Backtest runs recorded here by btkit before the run store (`btkit runs` lists and prunes
    # them); new backtests never write to the ledger. Live rows are never touched.

    def backtest_runs(self) -> list[tuple[str, str, str, int, str, int]]:
        """(run id, strategy, exchange, created at, details JSON, closed signals) per old run."""
        rows = self._db.execute(
            "SELECT run_id, strategy, exchange, created_at, details, (SELECT COUNT(*) FROM "
            "events AS e WHERE e.run_id = r.run_id AND e.action = 'closed') FROM runs AS r "
            "WHERE mode = 'backtest' ORDER BY created_at, run_id"
        )
        return [(str(a), str(b), str(c), int(d), str(e), int(f)) for a, b, c, d, e, f in rows]

    def delete_backtest_runs(self, run_ids: Sequence[str]) -> int:
        """Remove these backtest runs and their events; the number of events removed.

        One transaction per run, so live daemons sharing the ledger wait milliseconds.
        """
        removed = 0
        for run_id in run_ids:
            with self._transaction() as db:
                removed += db.execute(
                    "DELETE FROM events WHERE run_id = ? AND mode = 'backtest'", (run_id,)
                ).rowcount
                db.execute("DELETE FROM runs WHERE run_id = ? AND mode = 'backtest'", (run_id,))
        return removed

    def free_bytes(self) -> int:
        """Bytes of pages SQLite holds free for reuse (the file shrinks only by VACUUM)."""
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return int(free) * int(self._db.execute("PRAGMA page_size").fetchone()[0])
