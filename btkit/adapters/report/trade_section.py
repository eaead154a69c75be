"""The report's "Trades" section: what the fills made, beside what the model said.

Only when the ledger has fills for the strategy (`--trade paper|live`); a report
without fills is unchanged. Per trade: the amounts bought and sold, the model's
price and the average fill price at entry (signal `price_open`) and exit (the
close price), their gap in percent, the fees, and the realised PnL of closed
trades in quote currency.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from btkit.adapters.store.order_ledger import TradeRecord
from btkit.domain.model import OpenSignal
from btkit.engine import fill_math
from btkit.engine.statistics import Trade

BASIS = (
    "From the orders' fills (`--trade paper|live`), quote currency, after fees. Gap: the "
    "average fill price against the model's price (entry: the signal's open price; exit: "
    "its close price), percent; positive means the fill was higher (for a long, a positive "
    "entry gap and a negative exit gap cost money)."
)


@dataclass(frozen=True, slots=True)
class TradeRow:
    signal_id: str
    symbol: str
    mode: str
    status: str
    """`closed` (all sold) or `open`."""
    bought: float
    entry_model: float | None
    entry_fill: float | None
    entry_gap_percent: float | None
    sold: float
    exit_model: float | None
    exit_fill: float | None
    exit_gap_percent: float | None
    fees: float
    realised: float | None
    """Quote currency, closed trades only."""


@dataclass(frozen=True, slots=True)
class TradeTotals:
    trades: int
    closed: int
    realised: float
    fees: float
    average_entry_gap_percent: float | None
    average_exit_gap_percent: float | None


def trade_rows(
    records: Sequence[TradeRecord], trades: Sequence[Trade], still_open: Sequence[OpenSignal]
) -> list[TradeRow]:
    """A row per signal with fills among the report's signals (its filters apply)."""
    closes = {t.signal_id: t for t in trades}
    opens = {s.id: s.price_open for s in still_open} | {t.signal_id: t.price_open for t in trades}
    rows = []
    for record in records:
        if record.signal_id not in opens or not record.fills:
            continue
        fills = record.fills
        entry_fill = fill_math.average_price(fills, "buy")
        exit_fill = fill_math.average_price(fills, "sell")
        closed = fill_math.is_closed(fills)
        model_close = closes.get(record.signal_id)
        exit_model = model_close.price_close if model_close is not None else None
        rows.append(
            TradeRow(
                signal_id=record.signal_id,
                symbol=record.symbol,
                mode=record.mode,
                status="closed" if closed else "open",
                bought=fill_math.bought(fills),
                entry_model=opens[record.signal_id],
                entry_fill=entry_fill,
                entry_gap_percent=fill_math.gap_percent(entry_fill, opens[record.signal_id]),
                sold=fill_math.sold(fills),
                exit_model=exit_model,
                exit_fill=exit_fill,
                exit_gap_percent=fill_math.gap_percent(exit_fill, exit_model),
                fees=fill_math.fees(fills),
                realised=fill_math.realised(fills) if closed else None,
            )
        )
    return rows


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def totals(rows: Sequence[TradeRow]) -> TradeTotals:
    return TradeTotals(
        trades=len(rows),
        closed=sum(r.status == "closed" for r in rows),
        realised=sum(r.realised for r in rows if r.realised is not None),
        fees=sum(r.fees for r in rows),
        average_entry_gap_percent=_mean([r.entry_gap_percent for r in rows]),
        average_exit_gap_percent=_mean([r.exit_gap_percent for r in rows]),
    )


def _n(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.8g}"


def _gap(value: float | None) -> str:
    return "N/A" if value is None else f"{value:+.4f}%"


def markdown_lines(rows: Sequence[TradeRow]) -> list[str]:
    """The section's Markdown lines; none without rows (the report stays as it was)."""
    if not rows:
        return []
    t = totals(rows)
    lines = ["## Trades (fills)", "", BASIS, ""]
    lines += [
        "| Figure | Value |",
        "|---|---|",
        f"| Trades with fills | {t.trades} ({t.closed} closed, {t.trades - t.closed} open) |",
        f"| Realised PnL of closed trades (after fees) | {t.realised:+.8g} |",
        f"| Fees paid | {t.fees:.8g} |",
        f"| Average entry gap | {_gap(t.average_entry_gap_percent)} |",
        f"| Average exit gap | {_gap(t.average_exit_gap_percent)} |",
        "",
    ]
    header = (
        "| Signal ID | Symbol | Mode | Status | Bought | Entry model | Entry fill | Entry gap "
        "| Sold | Exit model | Exit fill | Exit gap | Fees | Realised PnL |"
    )
    lines += [header, "|" + "---|" * 14]
    for r in rows:
        lines.append(
            f"| {r.signal_id} | {r.symbol} | {r.mode} | {r.status} | {r.bought:.8g} | "
            f"{_n(r.entry_model)} | {_n(r.entry_fill)} | {_gap(r.entry_gap_percent)} | "
            f"{r.sold:.8g} | {_n(r.exit_model)} | {_n(r.exit_fill)} | "
            f"{_gap(r.exit_gap_percent)} | {r.fees:.8g} | "
            f"{'N/A' if r.realised is None else f'{r.realised:+.8g}'} |"
        )
    return [*lines, ""]


def json_section(rows: Sequence[TradeRow]) -> dict[str, Any]:
    return {
        "basis": BASIS,
        "totals": dataclasses.asdict(totals(rows)),
        "trades": [dataclasses.asdict(r) for r in rows],
    }
