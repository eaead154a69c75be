"""What a signal's fills add up to: the amount held, the entry price, realised PnL.

One place for this arithmetic, used by the ledger's `open_trades` and
`realised_since`, `btkit positions` and the report's trade section. Spot long
only: buys open a position, sells close it; fees are in quote currency.
"""

from __future__ import annotations

from collections.abc import Sequence

from btkit.domain.orders import Fill

DUST_FRACTION = 1e-9
"""A position smaller than this fraction of what was bought counts as closed (float sums)."""


def bought(fills: Sequence[Fill]) -> float:
    return sum(f.amount for f in fills if f.side == "buy")


def sold(fills: Sequence[Fill]) -> float:
    return sum(f.amount for f in fills if f.side == "sell")


def held(fills: Sequence[Fill]) -> float:
    """Base amount still held: bought minus sold (0 when within float noise)."""
    total = bought(fills)
    net = total - sold(fills)
    return net if net > max(total * DUST_FRACTION, 1e-12) else 0.0


def is_closed(fills: Sequence[Fill]) -> bool:
    """Bought, then sold all of it."""
    return bought(fills) > 0 and sold(fills) > 0 and held(fills) == 0.0


def average_price(fills: Sequence[Fill], side: str) -> float | None:
    """Amount-weighted price of the fills on `side`; None without any."""
    amount = sum(f.amount for f in fills if f.side == side)
    if amount <= 0:
        return None
    return sum(f.amount * f.price for f in fills if f.side == side) / amount


def fees(fills: Sequence[Fill]) -> float:
    return sum(f.fee for f in fills)


def realised(fills: Sequence[Fill]) -> float:
    """Quote proceeds of the sells minus the cost of the buys, minus every fee."""
    cash = sum(f.amount * f.price if f.side == "sell" else -f.amount * f.price for f in fills)
    return cash - fees(fills)


def unrealised(fills: Sequence[Fill], price: float) -> float:
    """What the held amount would add at `price`: its value minus its share of the entry
    cost, minus the fees paid so far (exit fees are not yet known)."""
    amount = held(fills)
    entry = average_price(fills, "buy")
    if entry is None or amount == 0.0:
        return 0.0
    sells = sum(f.amount * (f.price - entry) for f in fills if f.side == "sell")
    return amount * (price - entry) + sells - fees(fills)


def closed_at(fills: Sequence[Fill]) -> int | None:
    """When a closed trade's last fill happened; None while it is open."""
    return max(f.timestamp for f in fills) if is_closed(fills) else None


def gap_percent(fill_price: float | None, model_price: float | None) -> float | None:
    """Fill price against the model's price, percent (positive: the fill was higher)."""
    if fill_price is None or not model_price:
        return None
    return (fill_price / model_price - 1.0) * 100.0
