"""`btkit positions`: open positions, their exchange orders and unrealised PnL; halts."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from btkit.app.positions import Position, PositionsView, read_positions
from btkit.domain.orders import OrderState
from btkit.domain.timefmt import format_time
from btkit.settings import Settings
from btkit.wiring.clocks import wall_time_ms

BASIS = (
    "Unrealised PnL: the amount held at the price shown, against the average entry price, "
    "after the fees paid so far (exit fees not included), quote currency."
)


def _order_text(order: OrderState) -> str:
    at = order.stop_price if order.stop_price is not None else order.price
    price = f" @ {at:.8g}" if at is not None else ""
    filled = f" filled {order.filled:.8g}/{order.amount:.8g}" if order.filled else ""
    return f"{order.role} {order.type} {order.status}{price}{filled}"


def _order_json(order: OrderState) -> dict[str, Any]:
    return {
        "client_id": order.client_id,
        "role": order.role,
        "side": order.side,
        "type": order.type,
        "status": order.status,
        "amount": order.amount,
        "filled": order.filled,
        "average": order.average,
        "price": order.price,
        "stop_price": order.stop_price,
        "list_client_id": order.list_client_id,
        "exchange_id": order.exchange_id,
        "message": order.message,
        "timestamp": order.timestamp,
    }


def _position_json(p: Position) -> dict[str, Any]:
    r = p.record
    return {
        "strategy": r.strategy,
        "exchange": r.exchange,
        "mode": r.mode,
        "run": r.run,
        "symbol": r.symbol,
        "signal_id": r.signal_id,
        "amount": p.amount,
        "entry_price": p.entry,
        "fees": p.fees,
        "price": p.price.price if p.price else None,
        "price_time": p.price.at if p.price else None,
        "price_source": p.price_note,
        "unrealised_pnl": p.unrealised,
        "unrealised_percent": p.unrealised_percent,
        "orders": [_order_json(o) for o in p.orders],
    }


def view_json(view: PositionsView) -> dict[str, Any]:
    return {
        "ledger": str(view.ledger),
        "basis": BASIS,
        "positions": [_position_json(p) for p in view.positions],
        "halts": [
            {
                "strategy": h.strategy,
                "exchange": h.exchange,
                "mode": h.mode,
                "symbol": h.symbol,
                "reason": h.reason,
                "since": h.since,
            }
            for h in view.halts
        ],
    }


def _signed(value: float | None, suffix: str = "") -> str:
    return "N/A" if value is None else f"{value:+.8g}{suffix}"


def _positions_table(view: PositionsView) -> Table:
    table = Table(title=f"Open positions ({view.ledger})")
    for name in (
        "Strategy",
        "Exchange",
        "Mode",
        "Symbol",
        "Signal",
        "Amount",
        "Entry",
        "Price",
        "Unrealised PnL",
        "Protection",
    ):
        table.add_column(name)
    for p in view.positions:
        r = p.record
        pnl = _signed(p.unrealised)
        if p.unrealised_percent is not None:
            colour = "green" if p.unrealised_percent >= 0 else "red"
            pnl = f"[{colour}]{pnl} ({p.unrealised_percent:+.3f}%)[/{colour}]"
        mode = "[bold red]live[/bold red]" if r.mode == "live" else r.mode
        table.add_row(
            escape(r.strategy),
            escape(r.exchange),
            mode,
            escape(r.symbol),
            escape(r.signal_id[:12]),
            f"{p.amount:.8g}",
            "N/A" if p.entry is None else f"{p.entry:.8g}",
            "N/A" if p.price is None else f"{p.price.price:.8g}",
            pnl,
            _protection(p.orders) if p.amount else "",
        )
    return table


def _protection(orders: list[OrderState]) -> str:
    """The resting protective legs, or a red warning: a held position with no stop."""
    resting = [o for o in orders if o.role in ("take_profit", "stop_loss") and not o.final]
    if not resting:
        return "[bold red]none[/bold red]"
    return " + ".join(
        f"{'TP' if o.role == 'take_profit' else 'SL'} "
        f"{(o.stop_price if o.stop_price is not None else o.price) or 0:.8g}"
        for o in resting
    )


def print_view(view: PositionsView, console: Console) -> None:
    if not view.found:
        console.print(
            f"No open positions: there is no ledger at {escape(str(view.ledger))} yet "
            "(nothing has traded; `btkit live --trade paper` starts).",
            highlight=False,
        )
    elif not view.positions:
        console.print(f"No open positions in {escape(str(view.ledger))}.", highlight=False)
    else:
        console.print(_positions_table(view))
        console.print(BASIS, highlight=False, soft_wrap=True)
        for p in view.positions:
            head = f"{escape(p.record.symbol)} ({escape(p.record.signal_id[:12])})"
            console.print(
                f"{head}: price from {escape(p.price_note)}", highlight=False, soft_wrap=True
            )
            for o in p.orders:
                console.print(
                    f"  order {escape(o.client_id)}: {escape(_order_text(o))}",
                    highlight=False,
                    soft_wrap=True,
                )
    if view.halts:
        table = Table(title="Halted symbols: no new positions until resolved")
        for name in ("Strategy", "Exchange", "Mode", "Symbol", "Since", "Reason"):
            table.add_column(name)
        for h in view.halts:
            table.add_row(
                escape(h.strategy),
                escape(h.exchange),
                h.mode,
                escape(h.symbol),
                format_time(h.since),
                f"[yellow]{escape(h.reason)}[/yellow]",
            )
        console.print(table)
    elif view.found:
        console.print("No halted symbols.", highlight=False)


def run_positions(settings: Settings, *, as_json: bool, console: Console) -> int:
    view = read_positions(settings.ledger_path, settings.candles_dir, wall_time_ms)
    if as_json:
        text = json.dumps(view_json(view), indent=2, allow_nan=False)
        console.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        print_view(view, console)
    return 0
