"""How much to buy for a signal: the stake, rounded to what the market accepts.

Pure: the market's rules, the price and the free balance in; an amount or the
reason there is none out. Rounding is done in decimals, always down, so an
order never exceeds its stake nor the balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from btkit.domain.orders import MarketRules

DEFAULT_STAKE_FRACTION = 0.10
"""Without --stake (or BTKIT_STAKE), each signal stakes this share of the free quote."""


@dataclass(frozen=True, slots=True)
class Sized:
    amount: float
    """Base currency, a multiple of the market's amount step."""
    notional: float
    """amount x price, quote currency."""


@dataclass(frozen=True, slots=True)
class CannotSize:
    reason: str
    """For the user: what is wrong and what to do."""


def round_down(value: float, step: float | None) -> float:
    """`value` down to a multiple of `step` (exactly, in decimals)."""
    if not step:
        return value
    exact, unit = Decimal(repr(value)), Decimal(repr(step))
    return float((exact / unit).to_integral_value(rounding=ROUND_DOWN) * unit)


def round_price(price: float, step: float | None) -> float:
    """A price to the market's tick (nearest)."""
    if not step:
        return price
    exact, unit = Decimal(repr(price)), Decimal(repr(step))
    return float((exact / unit).to_integral_value() * unit)


def choose_stake(stake: float | None, signal_stake: float | None, free_quote: float) -> float:
    """The signal's own stake, else --stake, else a share of the free quote balance."""
    if signal_stake is not None:
        return signal_stake
    if stake is not None:
        return stake
    return free_quote * DEFAULT_STAKE_FRACTION


def size_entry(
    stake: float, price: float, rules: MarketRules, free_quote: float, *, fee: float = 0.0
) -> Sized | CannotSize:
    """The base amount a market buy of `stake` quote at about `price` gets, or why not.

    The free balance is checked first (stake plus `fee`, a fraction), then the
    market's minimum amount and notional.
    """
    if not (price > 0):
        return CannotSize(f"{rules.symbol}: no usable price ({price!r}) to size the order")
    needed = stake * (1.0 + fee)
    if needed > free_quote:
        return CannotSize(
            f"{rules.symbol}: insufficient balance: the stake needs {needed:g} {rules.quote} "
            f"(fees included) but {free_quote:g} {rules.quote} is free. Lower --stake or "
            "add funds."
        )
    amount = round_down(stake / price, rules.amount_step)
    notional = amount * price
    minimum = _minimum_stake(price, rules)
    too_small = amount <= 0 or (rules.min_amount is not None and amount < rules.min_amount)
    if too_small or (rules.min_notional is not None and notional < rules.min_notional):
        return CannotSize(
            f"{rules.symbol}: a stake of {stake:g} {rules.quote} is below the market's "
            f"minimum order (about {minimum:g} {rules.quote} at {price:g}). Raise --stake "
            f"to at least {minimum:g}."
        )
    return Sized(amount=amount, notional=notional)


def _minimum_stake(price: float, rules: MarketRules) -> float:
    by_amount = (rules.min_amount or rules.amount_step or 0.0) * price
    by_notional = rules.min_notional or 0.0
    least = max(by_amount, by_notional)
    step = rules.amount_step
    if step:  # one more step, so rounding the amount down still clears the minimum
        least += step * price
    return float(f"{least:.6g}")
