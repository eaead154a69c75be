"""Reports as GitHub-renderable Markdown: summary, breakdowns, every event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from btkit.domain.model import OpenSignal
from btkit.engine.statistics import Summary, Trade, breakdown, summarize


@dataclass
class ReportInput:
    title: str
    trades: Sequence[Trade]
    still_open: Sequence[OpenSignal] = ()
    context: dict[str, str] = field(default_factory=dict)
    trade_lines: Sequence[str] = ()
    """The "Trades (fills)" section, when the strategy traded (`trade_section`)."""


BASIS = (
    "PnL is per trade, in % of the stake, after fees and slippage. Equity is a stake of 1 "
    "reinvested whole in each trade in close order (compounded; trades that overlapped in "
    "time are counted one after another); drawdown and yearly returns are on that stake."
)


def _number(value: float | None, digits: int = 4, suffix: str = "") -> str:
    if value is None:
        return "N/A"
    if abs(value) >= 1e9:  # compounding can outgrow fixed notation
        return f"{value:.3e}{suffix}"
    return f"{value:,.{digits}f}{suffix}"


def _signed(value: float | None) -> str:
    if value is None:
        return "N/A"
    return f"{value:+.3e}%" if abs(value) >= 1e9 else f"{value:+,.4f}%"


def summary_rows(summary: Summary) -> list[tuple[str, str]]:
    s = summary
    outcome = f"({s.wins}W / {s.losses}L / {s.break_even} break-even)"
    return [
        ("Closed signals", str(s.trades)),
        ("Win rate (of trades won or lost)", f"{_number(s.win_rate, 2, '%')} {outcome}"),
        ("Average PnL per trade", _signed(s.average_pnl)),
        ("Sum of trade PnLs (not compounded)", _signed(s.total_pnl)),
        ("Compounded return of the stake", _signed(s.compounded_return)),
        ("Standard deviation of trade PnL", _number(s.stdev, 4, "%")),
        ("Sharpe ratio (per trade: mean / standard deviation)", _number(s.sharpe)),
        ("Annualized Sharpe ratio (per-trade Sharpe x sqrt 365)", _number(s.annualized_sharpe)),
        ("Sortino ratio (per trade: mean / downside deviation)", _number(s.sortino)),
        ("Certainty ratio (average win / average loss)", _number(s.certainty_ratio)),
        (
            "Expected yearly returns (stake compounded over a year of back-to-back "
            "trades of the average duration)",
            _signed(s.expected_yearly_returns),
        ),
        ("Max drawdown (of the stake, from its peak)", _number(s.max_drawdown, 4, "%")),
        ("Calmar ratio (expected yearly returns / max drawdown)", _number(s.calmar)),
        ("Profit factor (sum of wins / sum of losses)", _number(s.profit_factor)),
        ("Expectancy per trade", _signed(s.expectancy)),
        ("Average duration", _number(s.average_duration_minutes, 1, " min")),
        ("Best trade", _signed(s.best)),
        ("Worst trade", _signed(s.worst)),
        ("Longest win streak (trades)", str(s.longest_win_streak)),
        ("Longest loss streak (trades; a break-even ends a streak)", str(s.longest_loss_streak)),
    ]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _breakdown_table(groups: dict[str, Summary], label: str) -> list[str]:
    rows = [
        [
            name,
            str(s.trades),
            _number(s.win_rate, 2, "%"),
            _signed(s.average_pnl),
            _signed(s.total_pnl),
            _signed(s.compounded_return),
            _number(s.max_drawdown, 4, "%"),
        ]
        for name, s in groups.items()
    ]
    header = [label, "Signals", "Win rate", "Average PnL", "Sum of PnLs", "Compounded", "Drawdown"]
    return _table(header, rows)


def _minutes(stamps: list[int]) -> list[str]:
    """Many ms timestamps as 'YYYY-MM-DD HH:MM UTC', vectorised."""
    text = np.datetime_as_string(np.array(stamps, dtype="datetime64[ms]"), unit="m")
    return [f"{t[:10]} {t[11:]} UTC" for t in text.tolist()]


def _event_lines(trades: Sequence[Trade], still_open: Sequence[OpenSignal]) -> list[str]:
    """One table line per opened and closed event, in time order (opens first on a tie)."""
    opened_at = _minutes([t.opened_at for t in trades] + [s.timestamp for s in still_open])
    closed_at = _minutes([t.closed_at for t in trades])
    keyed: list[tuple[int, int, str, str]] = []
    for i, t in enumerate(trades):
        head = (
            f"| {t.symbol} | {t.signal_id} | {t.position} | {t.price_open:.8g} | "
            f"{t.price_take_profit:.8g} | {t.price_stop_loss:.8g} |"
        )
        keyed.append((t.opened_at, 0, t.symbol, f"| {opened_at[i]} | opened {head}  |  |  |"))
        keyed.append(
            (
                t.closed_at,
                1,
                t.symbol,
                f"| {closed_at[i]} | closed {head} {t.pnl_percentage:+.4f}% | "
                f"{t.close_reason} | {t.duration_minutes:g} min |",
            )
        )
    for j, s in enumerate(still_open, start=len(trades)):
        keyed.append(
            (
                s.timestamp,
                0,
                s.symbol,
                f"| {opened_at[j]} | opened | {s.symbol} | {s.id} | {s.position} | "
                f"{s.price_open:.8g} | {s.price_take_profit:.8g} | "
                f"{s.price_stop_loss:.8g} |  | still open |  |",
            )
        )
    keyed.sort()  # by time, opens first, then symbol
    return [line for *_, line in keyed]


_EVENT_COLUMNS = "Time,Action,Symbol,Signal ID,Position,Open,TP,SL,PnL %,Close reason,Duration"
_EVENT_HEADER = _table(_EVENT_COLUMNS.split(","), [])


def render(report: ReportInput) -> str:
    """The whole report: summary, breakdowns and every event."""
    return render_forms(report)[0]


def render_forms(
    report: ReportInput, *, last_events: int = 10, full_report: str = ""
) -> tuple[str, str]:
    """The whole report and its terminal form, built in one pass.

    The terminal form has the summary and the last `last_events` events, with a
    line saying the full table is in `full_report`.
    """
    lines = [f"# {report.title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in report.context.items()]
    if report.context:
        lines.append("")
    if not report.trades and not report.still_open:
        lines += [
            "No events yet: no signal has opened. Run `btkit live` or `btkit backtest` "
            "with this strategy first.",
            "",
        ]
        text = "\n".join(lines)
        return text, text
    lines += ["## Summary", "", BASIS, ""]
    lines += _table(["Figure", "Value"], summary_rows(summarize(report.trades)))
    if report.trades:
        lines += ["", "## Per symbol", ""]
        lines += _breakdown_table(breakdown(report.trades, lambda t: t.symbol), "Symbol")
        lines += ["", "## Per close reason", ""]
        lines += _breakdown_table(breakdown(report.trades, lambda t: t.close_reason), "Reason")
    if report.still_open:
        lines += [
            "",
            f"Still open at the end: {len(report.still_open)} signal(s) "
            "(listed as such below, never given an invented close).",
        ]
    if report.trade_lines:
        lines += ["", *report.trade_lines]
    lines += ["", "## Events", ""]
    events = _event_lines(report.trades, report.still_open)
    full = "\n".join([*lines, *_EVENT_HEADER, *events, ""])
    if len(events) > last_events:
        where = f" in {full_report}" if full_report else " in the report file"
        lines += [f"The last {last_events} of {len(events)} events; all of them are{where}.", ""]
        events = events[len(events) - last_events :]
    return full, "\n".join([*lines, *_EVENT_HEADER, *events, ""])
