"""Reports as GitHub-renderable Markdown: summary, breakdowns, every event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from btkit.domain import OpenSignal
from btkit.report.statistics import Summary, Trade, breakdown, summarize


@dataclass
class ReportInput:
    title: str
    trades: Sequence[Trade]
    still_open: Sequence[OpenSignal] = ()
    context: dict[str, str] = field(default_factory=dict)


def _number(value: float | None, digits: int = 4, suffix: str = "") -> str:
    return "N/A" if value is None else f"{value:.{digits}f}{suffix}"


def _signed(value: float | None) -> str:
    return "N/A" if value is None else f"{value:+.4f}%"


def summary_rows(summary: Summary) -> list[tuple[str, str]]:
    s = summary
    return [
        ("Closed signals", str(s.trades)),
        ("Win rate", f"{_number(s.win_rate, 2, '%')} ({s.wins}W / {s.losses}L)"),
        ("Average PnL", _signed(s.average_pnl)),
        ("Total PnL", _signed(s.total_pnl)),
        ("Standard deviation", _number(s.stdev, 4, "%")),
        ("Sharpe ratio", _number(s.sharpe)),
        ("Annualized Sharpe ratio", _number(s.annualized_sharpe)),
        ("Sortino ratio", _number(s.sortino)),
        ("Certainty ratio", _number(s.certainty_ratio)),
        ("Expected yearly returns", _signed(s.expected_yearly_returns)),
        ("Max drawdown", _number(s.max_drawdown, 4, "%")),
        ("Calmar ratio", _number(s.calmar)),
        ("Profit factor", _number(s.profit_factor)),
        ("Expectancy", _signed(s.expectancy)),
        ("Average duration", _number(s.average_duration_minutes, 1, " min")),
        ("Best trade", _signed(s.best)),
        ("Worst trade", _signed(s.worst)),
        ("Longest win streak", str(s.longest_win_streak)),
        ("Longest loss streak", str(s.longest_loss_streak)),
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
            _number(s.max_drawdown, 4, "%"),
        ]
        for name, s in groups.items()
    ]
    return _table([label, "Signals", "Win rate", "Average PnL", "Total PnL", "Max drawdown"], rows)


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


def render(report: ReportInput) -> str:
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
        return "\n".join(lines)
    lines += ["## Summary", ""]
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
    lines += ["", "## Events", ""]
    header = [
        "Time",
        "Action",
        "Symbol",
        "Signal ID",
        "Position",
        "Open",
        "TP",
        "SL",
        "PnL %",
        "Close reason",
        "Duration",
    ]
    lines += _table(header, [])
    lines += _event_lines(report.trades, report.still_open)
    lines.append("")
    return "\n".join(lines)
