"""`btkit backtest` as a command: progress bars, summary table, report, JSON lines."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from btkit.adapters.report.builder import TERMINAL_EVENTS, write_results_report
from btkit.adapters.report.markdown import BASIS
from btkit.adapters.store.atomic import check_writable
from btkit.app.backtest_jobs import SymbolOutcome, plan, run_all
from btkit.domain.model import MINUTE_MS, result_to_dict
from btkit.domain.timefmt import format_time
from btkit.engine.params import Value
from btkit.engine.statistics import Trade, summarize
from btkit.settings import Settings
from btkit.wiring.backtest import ScreenUse
from btkit.wiring.runs import RunInfo, record_backtest_run


def frames_text(outcomes: Sequence[SymbolOutcome]) -> str:
    return ", ".join(
        f"{o.job.symbol} {format_time(o.job.frame.start)} to {format_time(o.job.frame.end)}"
        for o in outcomes
    )


def record_run(
    settings: Settings, strategy: str, exchange: str, outcomes: Sequence[SymbolOutcome]
) -> RunInfo:
    """Keep the run in the run store, apart from live history, for `report --mode backtest`."""
    return record_backtest_run(
        settings,
        strategy=strategy,
        exchange=exchange,
        frames=[(o.job.symbol, o.job.frame.start, o.job.frame.end) for o in outcomes],
        closed=[c for o in outcomes for c in o.closed],
        still_open=[o.still_open for o in outcomes if o.still_open is not None],
    )


def run_backtest_command(
    settings: Settings,
    symbols: Sequence[str],
    *,
    strategy_name: str,
    exchange: str,
    start: int | None,
    end: int | None,
    out: Path | None,
    json_lines: bool,
    workers: int | None,
    step: str = "1m",
    params: dict[str, Value] | None = None,
    screen: ScreenUse = "use",
    stdout: Console,
    stderr: Console,
) -> int:
    report_path = out or settings.logs_dir / "backtest" / f"{strategy_name}.md"
    for folder in (settings.data_dir, report_path.parent):
        check_writable(folder)  # the ledger and the report: refuse before the work, not after
    planned = plan(
        settings,
        symbols,
        strategy_name,
        exchange,
        start=start,
        end=end,
        step=step,
        params=params,
        screen=screen,
    )
    strategy, jobs = planned.strategy, planned.jobs
    if out is None:  # bound parameters name the report too (`my-strategy+fast:10.md`)
        report_path = settings.logs_dir / "backtest" / f"{strategy.name}.md"
    started = time.perf_counter()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("candles"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=stderr,
        disable=not stderr.is_terminal,
    )
    tasks: dict[str, TaskID] = {}
    with progress:
        for job in jobs:
            minutes = (job.frame.end - job.frame.start) // MINUTE_MS + 1
            tasks[job.symbol] = progress.add_task(job.symbol, total=minutes, rate="")

        def advance(symbol: str, when: int) -> None:
            job = next(j for j in jobs if j.symbol == symbol)
            done = (when - job.frame.start) // MINUTE_MS + 1
            rate = done / max(time.perf_counter() - started, 1e-9)
            progress.update(tasks[symbol], completed=done, rate=f"{rate:,.0f}/s")

        outcomes = run_all(planned, workers=workers, on_progress=advance)
    elapsed = time.perf_counter() - started
    if json_lines:
        for outcome in outcomes:
            for closed in outcome.closed:
                stdout.print(
                    json.dumps(result_to_dict(closed), separators=(",", ":")),
                    soft_wrap=True,
                    markup=False,
                    highlight=False,
                )
    summary_console = stderr if json_lines else stdout
    if not json_lines and any(o.closed for o in outcomes):
        summary_console.print(_last_closed_table(outcomes, TERMINAL_EVENTS))
    summary_console.print(_summary_table(outcomes))
    candles = sum((o.job.frame.end - o.job.frame.start) // MINUTE_MS + 1 for o in outcomes)
    # Compressing and fsyncing release the GIL: record the run while the report renders.
    with ThreadPoolExecutor(max_workers=1) as pool:
        recording = pool.submit(record_run, settings, strategy.name, exchange, outcomes)
        path = write_results_report(
            f"Backtest report: {strategy.name}",
            [c for o in outcomes for c in o.closed],
            [o.still_open for o in outcomes if o.still_open is not None],
            {"Mode": "backtest", "Exchange": exchange, "Frames": frames_text(outcomes)},
            report_path,
        )
        stored = recording.result()
    summary_console.print(
        f"{candles:,} minutes backtested in {elapsed:.2f} s "
        f"({candles / max(elapsed, 1e-9):,.0f}/s); full report (every event, equity picture) "
        f"written to {path}; "
        f"run {stored.run_id} stored in {stored.path} ({stored.size / 1024:,.1f} KB; "
        "`btkit runs` lists and prunes runs)",
        highlight=False,
        soft_wrap=True,
    )
    return _strategy_failures(outcomes, strategy.name, stderr)


def _strategy_failures(outcomes: Sequence[SymbolOutcome], strategy: str, stderr: Console) -> int:
    """1 (with a summary) when get_signal raised on every call for some symbol; else 0."""
    broken = [o for o in outcomes if o.failures.always]
    for outcome in outcomes:
        failures = outcome.failures
        if failures.failed and not failures.always:
            stderr.print(
                f"warning: {strategy} get_signal raised {failures.failed:,} of "
                f"{failures.calls:,} times for {outcome.job.symbol} "
                f"(last: {failures.last_error})",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    for outcome in broken:
        stderr.print(
            f"error: {strategy} get_signal raised on every one of its "
            f"{outcome.failures.calls:,} calls for {outcome.job.symbol} "
            f"(last: {outcome.failures.last_error}); these results mean nothing. "
            "Fix the strategy (the first traceback is above) and run again.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return 1 if broken else 0


def _summary_table(outcomes: Sequence[SymbolOutcome]) -> Table:
    table = Table(title="Backtest summary", caption=BASIS)
    for name in (
        "Symbol",
        "Signals",
        "Win rate",
        "Sum of PnLs",
        "Compounded",
        "Max drawdown",
        "Still open",
    ):
        table.add_column(name, justify="left" if name == "Symbol" else "right")
    for outcome in outcomes:
        s = summarize([Trade.from_closed(c) for c in outcome.closed])
        win_rate = "N/A" if s.win_rate is None else f"{s.win_rate:.1f}%"
        table.add_row(
            outcome.job.symbol,
            str(s.trades),
            f"{win_rate} ({s.wins}W/{s.losses}L/{s.break_even}BE)",
            _coloured(s.total_pnl),
            _coloured(s.compounded_return),
            "N/A" if s.max_drawdown is None else f"{s.max_drawdown:.3f}%",
            "1" if outcome.still_open else "0",
        )
    return table


def _coloured(pnl: float | None) -> str:
    if pnl is None:
        return "N/A"
    colour = "green" if pnl >= 0 else "red"
    return f"[{colour}]{pnl:+.3f}%[/{colour}]"


def _last_closed_table(outcomes: Sequence[SymbolOutcome], count: int) -> Table:
    closed = sorted(
        (c for o in outcomes for c in o.closed), key=lambda c: (c.close_timestamp, c.symbol)
    )
    table = Table(title=f"Last {min(count, len(closed))} of {len(closed)} closed signals")
    for name in ("Closed", "Symbol", "Position", "Reason", "Open", "Close", "PnL"):
        table.add_column(name, justify="right" if name in ("Open", "Close", "PnL") else "left")
    for c in closed[-count:]:
        table.add_row(
            format_time(c.close_timestamp),
            c.symbol,
            c.signal.position,
            c.close_reason,
            f"{c.pnl.price_open:.8g}",
            f"{c.pnl.price_close:.8g}",
            _coloured(c.pnl.pnl_percentage),
        )
    return table
