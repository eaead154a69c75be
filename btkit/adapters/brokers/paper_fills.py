"""How a paper order fills: pure arithmetic, no I/O, shared by the broker and its audit.

- A market order walks the book's opposite side level by level, never past
  `cap_percent` from the best price; what the capped book cannot give stays
  unfilled (a partial fill, reported).
- Without a book (the offline replay) it fills at the tick's price moved
  `slippage_percent` against the order.
- A resting OCO list fills on the first finished 1m candle that opened at or
  after it was placed and reached a leg: stop-loss when its low is at or below
  the stop, take-profit when its high is at or above the target; the stop is
  checked first when one candle reached both (the conservative reading).
- Balances change only through `apply_fill`, so replaying a wallet's trades
  from its starting balances gives exactly (bit for bit) its balances.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from btkit.domain.model import MINUTE_MS
from btkit.domain.orders import OrderBook, OrderSide

COMMON_QUOTES = (
    "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "BTC", "ETH", "BNB",
    "EUR", "USD", "GBP", "TRY", "JPY", "BRL",
)  # fmt: skip
"""Quote currencies recognised at the end of a replay symbol without separator."""


@dataclass(frozen=True, slots=True)
class BookWalk:
    """What a market order takes from the book: one (price, amount) per level."""

    takes: tuple[tuple[float, float], ...]
    filled: float
    cap_price: float | None
    """The furthest price the cap allows; None when the side was empty."""
    levels_beyond_cap: int
    """Levels the order would still have needed but the cap forbade."""

    @property
    def average(self) -> float | None:
        if not self.takes:
            return None
        return sum(p * a for p, a in self.takes) / sum(a for _, a in self.takes)


def walk_book(book: OrderBook, side: OrderSide, amount: float, cap_percent: float) -> BookWalk:
    """Take `amount` from the asks (buy) or bids (sell), best first, within the cap."""
    levels = book.asks if side == "buy" else book.bids
    if not levels:
        return BookWalk((), 0.0, None, 0)
    best = levels[0][0]
    factor = cap_percent / 100.0
    cap = best * (1.0 + factor) if side == "buy" else best * (1.0 - factor)
    takes: list[tuple[float, float]] = []
    remaining = amount
    beyond = 0
    for price, size in levels:
        if remaining <= 0.0:
            break
        if (price > cap) if side == "buy" else (price < cap):
            beyond += 1
            continue
        if size <= 0.0:
            continue
        take = remaining if size >= remaining else size
        takes.append((price, take))
        remaining = 0.0 if take == remaining else remaining - take
    return BookWalk(tuple(takes), amount - remaining, cap, beyond if remaining > 0 else 0)


def slipped_price(price: float, side: OrderSide, slippage_percent: float) -> float:
    """`price` moved against the order: up for a buy, down for a sell."""
    factor = slippage_percent / 100.0
    return price * (1.0 + factor) if side == "buy" else price * (1.0 - factor)


def fee_of(amount: float, price: float, fee_rate: float) -> float:
    return amount * price * fee_rate


def apply_fill(
    balances: Mapping[str, float],
    *,
    base: str,
    quote: str,
    side: OrderSide,
    amount: float,
    price: float,
    fee: float,
) -> dict[str, float]:
    """Balances after one fill (fee in quote); the one place a balance changes."""
    new = dict(balances)
    cost = amount * price
    if side == "buy":
        new[base] = new.get(base, 0.0) + amount
        new[quote] = new.get(quote, 0.0) - cost - fee
    else:
        new[base] = new.get(base, 0.0) - amount
        new[quote] = new.get(quote, 0.0) + cost - fee
    return new


@dataclass(frozen=True, slots=True)
class TradeLine:
    """A fill as the audit needs it."""

    base: str
    quote: str
    side: OrderSide
    amount: float
    price: float
    fee: float


def replay_balances(starting: Mapping[str, float], trades: Iterable[TradeLine]) -> dict[str, float]:
    """Starting balances plus every fill minus its fee, in the order they happened."""
    balances = dict(starting)
    for t in trades:
        balances = apply_fill(
            balances,
            base=t.base,
            quote=t.quote,
            side=t.side,
            amount=t.amount,
            price=t.price,
            fee=t.fee,
        )
    return balances


def first_open_after(placed_at: int) -> int:
    """The first 1m candle that lies wholly after the moment an order was placed."""
    return -(-placed_at // MINUTE_MS) * MINUTE_MS


@dataclass(frozen=True, slots=True)
class Trigger:
    role: str
    """`take_profit` or `stop_loss`."""
    candle_open: int


def first_trigger(
    opens: Sequence[int],
    highs: Sequence[float],
    lows: Sequence[float],
    *,
    take_profit: float | None,
    stop_loss: float,
    since: int,
) -> Trigger | None:
    """The first candle opening at or after `since` that reached a leg (stop first)."""
    for when, high, low in zip(opens, highs, lows, strict=True):
        if when < since:
            continue
        if low <= stop_loss:
            return Trigger("stop_loss", int(when))
        if take_profit is not None and high >= take_profit:
            return Trigger("take_profit", int(when))
    return None


def first_touch(
    opens: Sequence[int],
    highs: Sequence[float],
    lows: Sequence[float],
    *,
    side: OrderSide,
    price: float,
    since: int,
) -> int | None:
    """Open time of the first candle from `since` that traded at `price` or better for a
    resting limit order (a buy when the low reached it, a sell when the high did)."""
    for when, high, low in zip(opens, highs, lows, strict=True):
        if when >= since and (low <= price if side == "buy" else high >= price):
            return int(when)
    return None


def within_limit(
    takes: Sequence[tuple[float, float]], side: OrderSide, limit: float
) -> tuple[tuple[float, float], ...]:
    """The part of a walk a limit order may take: no level worse than its price."""
    return tuple((p, a) for p, a in takes if (p <= limit if side == "buy" else p >= limit))


def split_symbol(symbol: str, known: Iterable[str] = ()) -> tuple[str, str] | None:
    """(base, quote) of `ETHBTC`, `ETH-BTC`, `ETH/BTC` or `ETH_BTC`; None if unclear."""
    for separator in ("/", "-", "_"):
        if separator in symbol:
            base, _, quote = symbol.partition(separator)
            quote = quote.split(":")[0]
            return (base.upper(), quote.upper()) if base and quote else None
    upper = symbol.upper()
    quotes = sorted({*COMMON_QUOTES, *(k.upper() for k in known)}, key=len, reverse=True)
    for quote in quotes:
        if upper.endswith(quote) and len(upper) > len(quote):
            return upper[: -len(quote)], quote
    return None


def finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)
