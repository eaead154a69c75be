"""`btkit report` and `btkit status`: read-only views for another shell, any time."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table

from btkit.adapters.report.builder import (
    default_report_path,
    fill_rows,
    json_report,
    write_report_forms,
)
from btkit.adapters.store.atomic import write_private
from btkit.adapters.store.ledger import LedgerContents, Query
from btkit.app.positions import read_halts
from btkit.app.status import open_positions
from btkit.domain.errors import BtkitError
from btkit.domain.timefmt import format_time
from btkit.engine.statistics import without_invalid
from btkit.settings import Settings
from btkit.wiring.clocks import wall_time_ms
from btkit.wiring.ledger import read_strategy_events, read_trade_records

log = logging.getLogger(__name__)


def _read(settings: Settings, query: Query) -> LedgerContents:
    """The query's events, without trades that have no valid PnL (named in a warning)."""
    contents = read_strategy_events(settings, query)
    trades, invalid = without_invalid(contents.trades)
    if invalid:
        names = ", ".join(t.signal_id for t in invalid[:5]) + (", ..." if len(invalid) > 5 else "")
        log.warning(
            "%d closed signal(s) in the ledger have no valid PnL (a NaN price) and are left "
            "out of the report: %s",
            len(invalid),
            names,
        )
    return dataclasses.replace(contents, trades=trades)


def run_report(
    settings: Settings, query: Query, *, out: Path | None, as_json: bool, console: Console
) -> int:
    contents = _read(settings, query)
    fills = []
    if query.mode == "live":  # backtests place no orders
        records = read_trade_records(settings, query.strategy, contents.run_id)
        fills = fill_rows(contents, records)
    if as_json:
        text = json.dumps(json_report(contents, query, fills), indent=2, allow_nan=False)
        if out is not None:
            write_private(out, (text + "\n").encode())
            console.print(f"report written to {out}", highlight=False, soft_wrap=True)
        else:
            console.print(text, markup=False, highlight=False, soft_wrap=True)
        return 0
    target = out or default_report_path(settings.logs_dir, query)
    console.print(Markdown(write_report_forms(contents, query, target, fills=fills)))
    console.print(f"report written to {target}", highlight=False, soft_wrap=True)
    return 0


def run_status(settings: Settings, console: Console) -> int:
    positions, problems = open_positions(settings.signal_dir, wall_time_ms)
    if not positions:
        console.print(f"No open signals in {settings.signal_dir}.", highlight=False)
    else:
        table = Table(title=f"Open signals ({settings.signal_dir})")
        for name in (
            "Strategy",
            "Exchange",
            "Symbol",
            "Position",
            "Open",
            "TP",
            "SL",
            "Opened",
            "Age",
            "Time left",
            "Daemon",
        ):
            table.add_column(name)
        for p in positions:
            s = p.signal
            left = f"{p.minutes_left:.0f} min" if p.minutes_left >= 0 else "expired"
            if math.isinf(p.minutes_left):
                left = "until TP/SL"
            table.add_row(
                s.strategy_name,
                s.exchange_name,
                s.symbol,
                s.position,
                f"{s.price_open:.8g}",
                f"{s.price_take_profit:.8g}",
                f"{s.price_stop_loss:.8g}",
                format_time(s.timestamp),
                f"{p.age_minutes:.0f} min",
                left,
                "running" if p.owned else "[yellow]none[/yellow]",
            )
        console.print(table)
    for p in positions:
        if p.stale:
            console.print(
                f"[yellow]warning:[/yellow] {p.path.name}: no daemon runs it and its lifetime "
                f"ended {-p.minutes_left:.0f} min ago; it closes at the next `btkit live` of "
                f"{p.signal.strategy_name} on {p.signal.symbol}.",
                highlight=False,
            )
    for bad in problems:
        console.print(f"[red]unreadable:[/red] {bad.problem}", highlight=False, soft_wrap=True)
    _print_halts(settings, console)
    return 0


def _print_halts(settings: Settings, console: Console) -> None:
    """Trading halts from the ledger: no new positions on these symbols until resolved."""
    try:
        halts = read_halts(settings.ledger_path)
    except BtkitError as exc:  # the signals above came from the state files: still shown
        console.print(f"[red]ledger:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return
    for h in halts:
        console.print(
            f"[bold yellow]trading halted:[/bold yellow] {escape(h.strategy)} on "
            f"{escape(h.exchange)} ({h.mode}) {escape(h.symbol)} since {format_time(h.since)}: "
            f"{escape(h.reason)}. No new positions open there; open signals are still monitored.",
            highlight=False,
            soft_wrap=True,
        )
