"""Profit and loss after slippage and fees (SPEC §4)."""

from __future__ import annotations

from dataclasses import dataclass

from btkit.domain.model import Pnl, Position


@dataclass(frozen=True, slots=True)
class Costs:
    """Trading costs in percent; each applies once per side."""

    fee_percent: float = 0.1
    slippage_percent: float = 0.1


def compute_pnl(position: Position, price_open: float, price_close: float, costs: Costs) -> Pnl:
    s = costs.slippage_percent / 100
    if position == "long":
        paid, received = price_open * (1 + s), price_close * (1 - s)
        gross = (received - paid) / paid * 100
    else:
        paid, received = price_open * (1 - s), price_close * (1 + s)
        gross = (paid - received) / paid * 100
    return Pnl(
        pnl_percentage=gross - 2 * costs.fee_percent,
        price_open=price_open,
        price_close=price_close,
    )
