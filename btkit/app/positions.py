"""`btkit positions`: what trading holds right now, from the ledger's fills and orders.

A position is a signal whose buys are not all sold yet (or with an order still
resting); its exchange orders are their latest recorded states. Its unrealised
PnL is taken at the latest price known offline: the last finished candle in
`<data>/candles` at or before now, and the view says which file and minute that
was. Read-only: it never writes the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from btkit.adapters.store.candle_cache import load_candles
from btkit.adapters.store.candle_files import find_candle_file
from btkit.adapters.store.ledger import SqliteLedger
from btkit.adapters.store.ledger_errors import translated_ledger_errors
from btkit.adapters.store.order_ledger import Halt, TradeRecord, current_halts, held_positions
from btkit.domain.errors import BtkitError
from btkit.domain.model import MINUTE_MS
from btkit.domain.orders import OrderState
from btkit.domain.timefmt import format_time
from btkit.engine import fill_math


@dataclass(frozen=True, slots=True)
class LatestPrice:
    price: float
    at: int
    """When that candle closed, ms UTC."""
    source: str


@dataclass(frozen=True, slots=True)
class Position:
    record: TradeRecord
    amount: float
    """Base amount held (bought minus sold)."""
    entry: float | None
    """Average buy price."""
    fees: float
    price: LatestPrice | None
    price_note: str
    """Where the price came from, or why there is none."""
    unrealised: float | None
    """Quote currency, after the fees paid so far (exit fees not yet known)."""

    @property
    def orders(self) -> list[OrderState]:
        return self.record.orders

    @property
    def unrealised_percent(self) -> float | None:
        if self.unrealised is None or not self.entry or not self.amount:
            return None
        return self.unrealised / (self.entry * self.amount) * 100.0


@dataclass(frozen=True, slots=True)
class PositionsView:
    ledger: Path
    found: bool
    """False: no ledger yet (so nothing traded)."""
    positions: list[Position]
    halts: list[Halt]


def read_halts(ledger_path: Path) -> list[Halt]:
    """Symbols where trading is halted (a reconciliation mismatch, the circuit breaker)."""
    if not ledger_path.exists():
        return []
    ledger = SqliteLedger.open_for_reading(ledger_path)
    try:
        with translated_ledger_errors(ledger_path):
            return current_halts(ledger.connection)
    finally:
        ledger.close()


def latest_price(candles_dir: Path, symbol: str, now_ms: int) -> LatestPrice | str:
    """The close of the last candle finished at or before `now_ms`, or why there is none."""
    try:
        path = find_candle_file(candles_dir, symbol)
        candles = load_candles(path)
    except BtkitError as exc:
        return f"no price: {str(exc).split('. ')[0]}"
    index = int(candles.timestamp.searchsorted(now_ms - MINUTE_MS, side="right")) - 1
    if index < 0:
        return f"no price: {path} has no candle before now"
    closed_at = int(candles.timestamp[index]) + MINUTE_MS
    return LatestPrice(
        float(candles.close[index]),
        closed_at,
        f"last close in {path} ({format_time(closed_at - MINUTE_MS)})",
    )


def _position(record: TradeRecord, price: LatestPrice | str) -> Position:
    amount = fill_math.held(record.fills)
    entry = fill_math.average_price(record.fills, "buy")
    known = price if isinstance(price, LatestPrice) else None
    unrealised = None
    if known is not None and entry is not None:
        unrealised = fill_math.unrealised(record.fills, known.price)
    note = known.source if known is not None else str(price)
    return Position(record, amount, entry, fill_math.fees(record.fills), known, note, unrealised)


def read_positions(
    ledger_path: Path, candles_dir: Path, now_ms: Callable[[], int]
) -> PositionsView:
    """Every open position and halted symbol in the ledger (none if it does not exist)."""
    if not ledger_path.exists():
        return PositionsView(ledger_path, False, [], [])
    ledger = SqliteLedger.open_for_reading(ledger_path)
    try:
        with translated_ledger_errors(ledger_path):
            records = held_positions(ledger.connection)
            halts = current_halts(ledger.connection)
    finally:
        ledger.close()
    now = now_ms()
    prices: dict[str, LatestPrice | str] = {}
    for record in records:
        if record.symbol not in prices:
            prices[record.symbol] = latest_price(candles_dir, record.symbol, now)
    positions = [_position(r, prices[r.symbol]) for r in records]
    return PositionsView(ledger_path, True, positions, halts)
