"""Orders, fills and trading halts in the ledger (schema 3), apart from signal events.

What really happened on an exchange (or the paper wallet) is kept beside what
the model decided, never mixed with it: three append-only tables in the same
SQLite file, written on the ledger's writer thread (group commit, each write
durable when its await returns, never on the loop) and read on its connection.

- `orders`: one row per recorded state of an order (an intent `new` first, then
  what the exchange said); the latest row per client id is its state. A state
  recorded again unchanged adds no row, so a reconcile timer does not bloat it.
- `fills`: one row per execution; a known trade id is a no-op (unique per run,
  strategy, exchange, mode and symbol: Binance numbers trades per market, and
  paper wallets per strategy).
- `halts`: trading stopped on a symbol (reason) or resumed (NULL), for
  `btkit status` and `btkit positions`.

Every row carries the ledger run it was written in, so a replay started over
(`--restart`, same signal ids) never meets the old run's orders.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from btkit.domain.errors import StorageError
from btkit.domain.orders import Fill, OrderState, ProtectionState, TradeMode
from btkit.engine import fill_math

if TYPE_CHECKING:
    from btkit.adapters.store.writer_thread import SerialConnection

P = ParamSpec("P")
T = TypeVar("T")

ORDER_TABLES = """
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    strategy TEXT NOT NULL,
    exchange TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('paper', 'live')),
    symbol TEXT NOT NULL,
    signal_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('entry', 'exit', 'take_profit', 'stop_loss')),
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    type TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('new', 'open', 'closed', 'canceled', 'expired', 'rejected')),
    amount REAL NOT NULL,
    filled REAL NOT NULL,
    average REAL,
    fee REAL NOT NULL,
    price REAL,
    stop_price REAL,
    list_client_id TEXT,
    exchange_id TEXT,
    message TEXT NOT NULL DEFAULT '',
    timestamp INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX orders_by_signal ON orders (strategy, exchange, mode, run, signal_id, client_id);
CREATE INDEX orders_by_symbol ON orders (strategy, exchange, mode, run, symbol);
CREATE TABLE fills (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    strategy TEXT NOT NULL,
    exchange TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('paper', 'live')),
    symbol TEXT NOT NULL,
    signal_id TEXT NOT NULL,
    trade_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    amount REAL NOT NULL,
    price REAL NOT NULL,
    fee REAL NOT NULL,
    timestamp INTEGER NOT NULL,
    exchange_order_id TEXT,
    recorded_at INTEGER NOT NULL,
    UNIQUE (run, strategy, exchange, mode, symbol, trade_id)
);
CREATE INDEX fills_by_signal ON fills (strategy, exchange, mode, run, signal_id);
CREATE INDEX fills_by_time ON fills (strategy, exchange, mode, run, timestamp);
CREATE TABLE halts (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    strategy TEXT NOT NULL,
    exchange TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('paper', 'live')),
    symbol TEXT NOT NULL,
    reason TEXT,
    timestamp INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL
);
CREATE INDEX halts_by_symbol ON halts (strategy, exchange, mode, symbol)
"""
"""Schema 3: appended to the ledger's migrations (they only add, so old rows stay)."""

_ORDER_COLUMNS = (
    "client_id",
    "symbol",
    "side",
    "type",
    "role",
    "status",
    "amount",
    "filled",
    "average",
    "fee",
    "timestamp",
    "exchange_id",
    "price",
    "stop_price",
    "list_client_id",
    "message",
)
"""OrderState's fields, in its order: a row builds an OrderState directly."""
_FILL_COLUMNS = (
    "trade_id",
    "client_id",
    "symbol",
    "side",
    "amount",
    "price",
    "fee",
    "timestamp",
    "exchange_order_id",
)
"""Fill's fields, in its order."""
_BINDING = "strategy = ? AND exchange = ? AND mode = ? AND run = ?"


class LedgerAccess(Protocol):
    """What the order log needs of `SqliteLedger`: its run, connection and writer."""

    @property
    def run_id(self) -> str: ...

    @property
    def connection(self) -> SerialConnection: ...

    @property
    def reader(self) -> SerialConnection: ...

    def write_transaction(self) -> AbstractContextManager[SerialConnection]: ...

    async def on_writer(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _finite(what: str, name: str, value: object, *, optional: bool = False) -> None:
    """NaN binds as NULL in SQLite: refuse it loudly, as events do."""
    if optional and value is None:
        return
    if not (isinstance(value, int | float) and math.isfinite(value)):
        raise StorageError(
            f"Refusing to record {what}: {name} is {value!r}, not a finite number. Nothing "
            "was written; this is a bug or bad data from the exchange."
        )


def _check_order(state: OrderState) -> None:
    what = f"order {state.client_id} ({state.symbol})"
    for name in ("amount", "filled", "fee"):
        _finite(what, name, getattr(state, name))
    for name in ("average", "price", "stop_price"):
        _finite(what, name, getattr(state, name), optional=True)


def _check_fill(fill: Fill) -> None:
    what = f"fill {fill.trade_id} of order {fill.client_id} ({fill.symbol})"
    for name in ("amount", "price", "fee"):
        _finite(what, name, getattr(fill, name))


class SqliteOrderLog:
    """The `OrderLog` port over the ledger, bound to one strategy, exchange and trade mode."""

    def __init__(
        self,
        ledger: LedgerAccess,
        strategy: str,
        exchange: str,
        mode: TradeMode,
        *,
        now_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        if mode not in ("paper", "live"):
            raise ValueError(f"an order log is for paper or live trading, not {mode!r}")
        self._ledger = ledger
        self.strategy = strategy
        self.exchange = exchange
        self.mode: TradeMode = mode
        self._now_ms = now_ms
        """Wall time of each write (`recorded_at`); the order's own time is `timestamp`."""

    def _binding(self) -> tuple[str, str, str, str]:
        return (self.strategy, self.exchange, self.mode, self._ledger.run_id)

    # --- writes: on the ledger's writer thread, durable when the await returns ---------

    async def record_order(self, signal_id: str, state: OrderState) -> None:
        _check_order(state)
        await self._ledger.on_writer(self.write_orders, signal_id, (state,))

    async def record_protection(self, signal_id: str, state: ProtectionState) -> None:
        for leg in state.legs:
            _check_order(leg)
        await self._ledger.on_writer(self.write_orders, signal_id, state.legs)

    async def record_fills(self, signal_id: str, fills: Sequence[Fill]) -> list[Fill]:
        for fill in fills:
            _check_fill(fill)
        return await self._ledger.on_writer(self.write_fills, signal_id, tuple(fills))

    async def record_halt(self, symbol: str, reason: str | None, when: int) -> None:
        await self._ledger.on_writer(self.write_halt, symbol, reason, when)

    def write_orders(self, signal_id: str, states: Sequence[OrderState]) -> None:
        """`record_order` / `record_protection`, synchronously (one transaction)."""
        binding = self._binding()
        with self._ledger.write_transaction() as db:
            for state in states:
                row = tuple(getattr(state, name) for name in _ORDER_COLUMNS)
                latest = db.execute(
                    f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders WHERE {_BINDING} "
                    "AND signal_id = ? AND client_id = ? ORDER BY id DESC LIMIT 1",
                    (*binding, signal_id, state.client_id),
                ).fetchone()
                if latest is not None and tuple(latest) == row:
                    continue  # the same state again: nothing happened
                db.execute(
                    f"INSERT INTO orders (run, strategy, exchange, mode, signal_id, "
                    f"{', '.join(_ORDER_COLUMNS)}, recorded_at) VALUES "
                    f"(?, ?, ?, ?, ?, {', '.join('?' * len(_ORDER_COLUMNS))}, ?)",
                    (binding[3], *binding[:3], signal_id, *row, self._now_ms()),
                )

    def write_fills(self, signal_id: str, fills: Sequence[Fill]) -> list[Fill]:
        """`record_fills`, synchronously; the fills that were new."""
        binding = self._binding()
        new: list[Fill] = []
        with self._ledger.write_transaction() as db:
            for fill in fills:
                inserted = db.execute(
                    f"INSERT INTO fills (run, strategy, exchange, mode, signal_id, "
                    f"{', '.join(_FILL_COLUMNS)}, recorded_at) VALUES "
                    f"(?, ?, ?, ?, ?, {', '.join('?' * len(_FILL_COLUMNS))}, ?) "
                    "ON CONFLICT (run, strategy, exchange, mode, symbol, trade_id) DO NOTHING",
                    (
                        binding[3],
                        *binding[:3],
                        signal_id,
                        *(getattr(fill, name) for name in _FILL_COLUMNS),
                        self._now_ms(),
                    ),
                )
                if inserted.rowcount:
                    new.append(fill)
        return new

    def write_halt(self, symbol: str, reason: str | None, when: int) -> None:
        """`record_halt`, synchronously; the same state again adds no row."""
        binding = self._binding()
        with self._ledger.write_transaction() as db:
            latest = db.execute(
                "SELECT reason FROM halts WHERE strategy = ? AND exchange = ? AND mode = ? "
                "AND symbol = ? ORDER BY id DESC LIMIT 1",
                (*binding[:3], symbol),
            ).fetchone()
            if (latest is None and reason is None) or (latest is not None and latest[0] == reason):
                return
            db.execute(
                "INSERT INTO halts (run, strategy, exchange, mode, symbol, reason, timestamp, "
                "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (binding[3], *binding[:3], symbol, reason, when, self._now_ms()),
            )

    # --- reads: on the loop, on the ledger's reader connection (never behind a commit) ---

    def orders(self, signal_id: str) -> list[OrderState]:
        rows = self._ledger.reader.execute(
            f"SELECT {', '.join('o.' + c for c in _ORDER_COLUMNS)} FROM orders AS o JOIN ("
            f"SELECT MIN(id) AS first, MAX(id) AS last FROM orders WHERE {_BINDING} "
            "AND signal_id = ? GROUP BY client_id) AS g ON o.id = g.last ORDER BY g.first",
            (*self._binding(), signal_id),
        )
        return [OrderState(*row) for row in rows]

    def fills(self, signal_id: str) -> list[Fill]:
        rows = self._ledger.reader.execute(
            f"SELECT {', '.join(_FILL_COLUMNS)} FROM fills WHERE {_BINDING} AND signal_id = ? "
            "ORDER BY timestamp, id",
            (*self._binding(), signal_id),
        )
        return [Fill(*row) for row in rows]

    def open_trades(self, symbol: str) -> list[str]:
        """Signals holding a position (by their fills), then those with an order not final."""
        db = self._ledger.reader
        binding = self._binding()
        by_signal: dict[str, list[Fill]] = {}
        for signal_id, *row in db.execute(
            f"SELECT signal_id, {', '.join(_FILL_COLUMNS)} FROM fills WHERE {_BINDING} "
            "AND symbol = ? ORDER BY id",
            (*binding, symbol),
        ):
            by_signal.setdefault(signal_id, []).append(Fill(*row))
        held = [s for s, fills in by_signal.items() if fill_math.held(fills) > 0]
        pending = db.execute(
            f"SELECT signal_id FROM orders WHERE id IN (SELECT MAX(id) FROM orders "
            f"WHERE {_BINDING} AND symbol = ? GROUP BY signal_id, client_id) "
            "AND status IN ('new', 'open') GROUP BY signal_id ORDER BY MIN(id)",
            (*binding, symbol),
        )
        return held + [str(r[0]) for r in pending if r[0] not in held]

    def realised_since(self, since_ms: int) -> float:
        """Trades closed (bought, then all sold) by a fill at or after `since_ms`."""
        binding = self._binding()
        by_signal: dict[str, list[Fill]] = {}
        for signal_id, *row in self._ledger.reader.execute(
            f"SELECT signal_id, {', '.join(_FILL_COLUMNS)} FROM fills WHERE {_BINDING} "
            f"AND signal_id IN (SELECT signal_id FROM fills WHERE {_BINDING} "
            "AND timestamp >= ?) ORDER BY id",
            (*binding, *binding, since_ms),
        ):
            by_signal.setdefault(signal_id, []).append(Fill(*row))
        total = 0.0
        for fills in by_signal.values():
            closed = fill_math.closed_at(fills)
            if closed is not None and closed >= since_ms:
                total += fill_math.realised(fills)
        return total


# --- reading across strategies: `btkit positions`, `btkit status`, `btkit report` -------


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One signal's orders and fills as the ledger holds them (any strategy and mode)."""

    run: str
    strategy: str
    exchange: str
    mode: str
    symbol: str
    signal_id: str
    fills: list[Fill]
    orders: list[OrderState]


@dataclass(frozen=True, slots=True)
class Halt:
    strategy: str
    exchange: str
    mode: str
    symbol: str
    reason: str
    since: int


def has_order_tables(db: SerialConnection) -> bool:
    return bool(
        db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fills'").fetchone()
    )


def _records(db: SerialConnection, where: str, params: Sequence[object]) -> list[TradeRecord]:
    """Every signal with a fill or an order matching `where` (on columns common to both)."""
    keys = "run, strategy, exchange, mode, symbol, signal_id"
    fills: dict[tuple[Any, ...], list[Fill]] = {}
    for row in db.execute(
        f"SELECT {keys}, {', '.join(_FILL_COLUMNS)} FROM fills WHERE {where} "
        "ORDER BY timestamp, id",
        params,
    ):
        fills.setdefault(tuple(row[:6]), []).append(Fill(*row[6:]))
    orders: dict[tuple[Any, ...], list[OrderState]] = {}
    for row in db.execute(
        f"SELECT {keys}, {', '.join(_ORDER_COLUMNS)} FROM orders WHERE id IN ("
        f"SELECT MAX(id) FROM orders WHERE {where} GROUP BY {keys}, client_id) ORDER BY id",
        params,
    ):
        orders.setdefault(tuple(row[:6]), []).append(OrderState(*row[6:]))
    return [
        TradeRecord(
            run,
            strategy,
            exchange,
            mode,
            symbol,
            signal_id,
            fills.get(key, []),
            orders.get(key, []),
        )
        for key in sorted(fills.keys() | orders.keys(), key=_first_seen(fills, orders))
        for run, strategy, exchange, mode, symbol, signal_id in [key]
    ]


def _first_seen(
    fills: dict[tuple[Any, ...], list[Fill]], orders: dict[tuple[Any, ...], list[OrderState]]
) -> Callable[[tuple[Any, ...]], tuple[int, tuple[Any, ...]]]:
    def key(k: tuple[Any, ...]) -> tuple[int, tuple[Any, ...]]:
        times = [f.timestamp for f in fills.get(k, [])] + [o.timestamp for o in orders.get(k, [])]
        return (min(times), k)

    return key


def held_positions(db: SerialConnection) -> list[TradeRecord]:
    """Every signal, of any strategy, exchange, mode and run, whose fills still hold an
    amount, or with an order not final; oldest first."""
    if not has_order_tables(db):
        return []
    candidates = _records(
        db,
        "(run, strategy, exchange, mode, signal_id) IN (SELECT run, strategy, exchange, mode, "
        "signal_id FROM fills UNION SELECT run, strategy, exchange, mode, signal_id FROM orders "
        "WHERE status IN ('new', 'open'))",
        (),
    )
    return [
        r for r in candidates if fill_math.held(r.fills) > 0 or any(not o.final for o in r.orders)
    ]


def strategy_trades(db: SerialConnection, strategy: str, run: str | None) -> list[TradeRecord]:
    """The strategy's signals with fills (in `run`, or every run when None)."""
    if not has_order_tables(db):
        return []
    where, params = "strategy = ?", [strategy]
    if run is not None:
        where, params = where + " AND run = ?", [*params, run]
    return [r for r in _records(db, where, params) if r.fills]


def current_halts(db: SerialConnection) -> list[Halt]:
    """Symbols whose latest halt row has a reason (not resumed since)."""
    if not has_order_tables(db):
        return []
    rows = db.execute(
        "SELECT strategy, exchange, mode, symbol, reason, timestamp FROM halts WHERE id IN ("
        "SELECT MAX(id) FROM halts GROUP BY strategy, exchange, mode, symbol) "
        "AND reason IS NOT NULL ORDER BY strategy, exchange, mode, symbol"
    )
    return [Halt(*row) for row in rows]
