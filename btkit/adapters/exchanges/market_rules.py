"""A market's trading rules from ccxt's market dict: shared by real and paper orders."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from btkit.domain.orders import MarketRules


def step_of(precision: float | None, mode: int) -> float | None:
    """ccxt's precision as an increment, whichever way the exchange counts it."""
    import ccxt

    if precision is None:
        return None
    if mode == ccxt.DECIMAL_PLACES:
        return float(10.0 ** -int(precision))
    return float(precision)


def market_rules(market: Mapping[str, Any], precision_mode: int, *, oco_api: bool) -> MarketRules:
    """What the exchange accepts for a market, from ccxt's market dict (paper trading on a
    real exchange sizes its orders by the same rules)."""
    limits = market.get("limits") or {}
    info = market.get("info") or {}
    return MarketRules(
        symbol=str(market["id"]),
        base=str(market["base"]),
        quote=str(market["quote"]),
        amount_step=step_of(market["precision"].get("amount"), precision_mode),
        price_step=step_of(market["precision"].get("price"), precision_mode),
        min_amount=(limits.get("amount") or {}).get("min"),
        min_notional=(limits.get("cost") or {}).get("min"),
        taker_fee=float(market.get("taker") or 0.0),
        has_oco=oco_api and bool(info.get("ocoAllowed")),
    )
