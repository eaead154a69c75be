"""`btkit sweep` as a command: run the planned jobs (resuming), rank, report, save the best."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from btkit.adapters.store.atomic import atomic_write_bytes, check_writable, ensure_private_dir
from btkit.adapters.store.param_sets import save_param_set
from btkit.adapters.store.sweep_store import JobRecord, SweepStore
from btkit.app.sweep_jobs import StrategyFiles, execute, run_local
from btkit.app.sweep_plan import SweepOptions, SweepPlan, plan_sweep
from btkit.domain.timefmt import format_time
from btkit.engine.params import label
from btkit.engine.statistics import Summary, Trade
from btkit.engine.walk_forward import (
    Fold,
    Row,
    Window,
    leaderboard,
    walk_forward,
    walk_forward_total,
)
from btkit.settings import Settings
from btkit.wiring.runs import sweep_store_path

TOP = 10
"""Leaderboard lines shown on screen (the JSON and the report have them all... up to 100)."""
REPORT_ROWS = 100


@dataclass(frozen=True, slots=True)
class Ranking:
    metric: str
    max_drawdown: float | None = None


@dataclass(frozen=True, slots=True)
class Engine:
    workers: int | None = None
    cluster: str | None = None


def store_path(settings: Settings) -> Path:
    return sweep_store_path(settings)


def run_sweep_command(
    settings: Settings,
    symbols: Sequence[str],
    *,
    strategy_name: str,
    options: SweepOptions,
    ranking: Ranking,
    engine: Engine,
    save_as: str,
    json_output: bool,
    stdout: Console,
    stderr: Console,
) -> int:
    report_path = settings.logs_dir / "sweep" / f"{strategy_name}.md"
    planned = plan_sweep(settings, symbols, strategy_name, options)
    for folder in (settings.data_dir, report_path.parent):
        ensure_private_dir(folder)
        check_writable(folder)
    store = SweepStore(store_path(settings))
    try:
        records, ran, elapsed = _run(planned, store, engine, stderr)
    finally:
        store.close()
    trades = _trades_by_set_and_window(planned, records)
    sets, windows = len(planned.sets), planned.windows
    rows = leaderboard(windows, trades, sets, ranking.metric, ranking.max_drawdown)
    folds = walk_forward(windows, trades, sets, ranking.metric, ranking.max_drawdown)
    best = (
        rows[0]
        if rows and rows[0].in_sample.allowed and rows[0].in_sample.score is not None
        else None
    )
    saved: Path | None = None
    if best is not None:
        saved = save_param_set(
            settings.data_dir,
            planned.strategy.name,
            save_as,
            planned.sets[best.index],
            {
                "metric": ranking.metric,
                "symbols": planned.symbols,
                "tuned": [windows[0].start, windows[-2].end],
                "tested": [windows[-1].start, windows[-1].end],
            },
        )
    result = _as_json(planned, ranking, rows, folds, best, save_as if saved else None)
    result["jobs"] = {"total": len(planned.jobs), "run": ran, "reused": len(planned.jobs) - ran}
    result["sets"] = {"run": len(planned.sets), "skipped_by_constraint": planned.skipped}
    atomic_write_bytes(report_path, _markdown(planned, ranking, rows, folds, result).encode())
    out = stderr if json_output else stdout
    if json_output:
        stdout.print(json.dumps(result, indent=2), markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(_leaderboard_table(planned, ranking, rows[:TOP]))
        out.print(_folds_table(planned, ranking, folds))
    jobs_per_second = ran / elapsed if elapsed > 0 else 0.0
    out.print(
        f"{len(planned.sets):,} parameter sets{_skipped(planned)}, "
        f"{len(planned.jobs):,} jobs ({ran:,} run in {elapsed:.1f} s, {jobs_per_second:,.1f}/s; "
        f"{len(planned.jobs) - ran:,} already done); report written to {report_path}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
    if best is not None:
        out.print(
            f"best parameters {label(planned.sets[best.index])} saved as {save_as!r} in {saved}; "
            f"run them with `btkit backtest ... --strategy {planned.strategy.name} --params "
            f"{save_as}` or `btkit live ... --params {save_as}`",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    else:
        out.print(
            "no parameter set qualified (no trades, undefined metric, or every drawdown above "
            "--max-drawdown); nothing was saved",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    return _failures(records.values(), planned.strategy.name, stderr)


def _run(
    planned: SweepPlan, store: SweepStore, engine: Engine, stderr: Console
) -> tuple[dict[str, JobRecord], int, float]:
    records = store.finished(job.key for job in planned.jobs)
    todo = [job for job in planned.jobs if job.key not in records]
    progress = Progress(
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("jobs"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr,
        disable=not stderr.is_terminal,
    )
    started = time.perf_counter()
    with progress:
        task = progress.add_task("sweep", total=len(planned.jobs), completed=len(records))

        def done(record: JobRecord) -> None:
            store.add(record)  # durable first: only then does the job count as finished
            records[record.key] = record
            progress.advance(task)

        _dispatch(planned, todo, done, engine)
    return records, len(todo), time.perf_counter() - started


def _dispatch(
    planned: SweepPlan,
    todo: Sequence[Any],
    done: Callable[[JobRecord], None],
    engine: Engine,
) -> None:
    if not todo:
        return
    if engine.cluster is not None:
        from btkit.adapters.cluster.dask_engine import run_on_dask

        run_on_dask(
            engine.cluster,
            execute,
            [(job, job.backtest.symbol) for job in todo],
            planned.history,
            StrategyFiles.read(planned.strategy.source.parent)
            if planned.strategy.source is not None
            else None,
            done,
        )
        return
    workers = engine.workers or os.cpu_count() or 1
    run_local(todo, done, workers=min(workers, len(todo)), history=planned.history)


def _trades_by_set_and_window(
    planned: SweepPlan, records: dict[str, JobRecord]
) -> dict[tuple[int, int], list[Trade]]:
    trades: dict[tuple[int, int], list[Trade]] = {
        (s, w): [] for s in range(len(planned.sets)) for w in range(len(planned.windows))
    }
    for key, (s, w, _) in planned.where.items():
        trades[(s, w)].extend(records[key].trades)
    return trades


def _failures(records: Any, strategy: str, stderr: Console) -> int:
    records = list(records)
    calls = sum(r.calls for r in records)
    failed = sum(r.failed for r in records)
    if calls and failed == calls:
        last = next((r.last_error for r in records if r.last_error), "")
        stderr.print(
            f"error: {strategy} get_signal raised on every one of its {calls:,} calls "
            f"(last: {last}); these results mean nothing. Fix the strategy and run again.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 1
    if failed:
        stderr.print(
            f"warning: {strategy} get_signal raised {failed:,} of {calls:,} times",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return 0


# --- presenting ------------------------------------------------------------------

_METRIC_TITLES = {"sharpe": "Sharpe", "total-return": "Return", "profit-factor": "Profit f."}


def _span(window: Window) -> str:
    return f"{format_time(window.start)} to {format_time(window.end)}"


def _number(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "N/A"
    return f"{value:+.3f}%" if percent else f"{value:.3f}"


def _figures(summary: Summary | None, score: float | None) -> list[str]:
    if summary is None:
        return ["-", "-", "-", "-"]
    return [
        str(summary.trades),
        _number(score),
        _number(summary.compounded_return, percent=True),
        "N/A" if summary.max_drawdown is None else f"{summary.max_drawdown:.2f}%",
    ]


def _header(metric: str) -> list[str]:
    title = _METRIC_TITLES[metric]
    return ["Trades", title, "Return", "Max DD"]


def _leaderboard_lines(planned: SweepPlan, rows: Sequence[Row]) -> list[list[str]]:
    lines = []
    for place, row in enumerate(rows, 1):
        mark = "" if row.in_sample.allowed else " (DD)"
        lines.append(
            [
                str(place),
                label(planned.sets[row.index]) + mark,
                *_figures(row.in_sample.summary, row.in_sample.score),
                *_figures(row.out_of_sample, row.out_score),
            ]
        )
    return lines


def _fold_lines(planned: SweepPlan, folds: Sequence[Fold]) -> list[list[str]]:
    return [
        [
            str(i),
            f"{format_time(f.tune.start)} .. {format_time(f.test.start)}",
            "none qualified" if f.chosen is None else label(planned.sets[f.chosen]),
            *_figures(f.in_sample, f.in_score),
            *_figures(f.out_of_sample, f.out_score),
        ]
        for i, f in enumerate(folds, 1)
    ]


def _leaderboard_table(planned: SweepPlan, ranking: Ranking, rows: Sequence[Row]) -> Table:
    windows = planned.windows
    table = Table(
        title=f"Sweep {planned.strategy.name}: top {len(rows)} of {len(planned.sets)} by "
        f"{ranking.metric}",
        caption=f"in sample {format_time(windows[0].start)} to {format_time(windows[-2].end)}; "
        f"out of sample {_span(windows[-1])}",
    )
    table.add_column("#", justify="right")
    table.add_column("Parameters")
    for side in ("IS", "OOS"):
        for name in _header(ranking.metric):
            table.add_column(f"{side} {name}", justify="right")
    for line in _leaderboard_lines(planned, rows):
        table.add_row(*line)
    return table


def _folds_table(planned: SweepPlan, ranking: Ranking, folds: Sequence[Fold]) -> Table:
    table = Table(
        title="Walk-forward: tuned on one window, tested on the next",
        caption=f"out-of-sample return following each fold's choice: "
        f"{_number(walk_forward_total(folds), percent=True)}",
    )
    for name in ("Fold", "Tune .. test from", "Chosen"):
        table.add_column(name)
    for side in ("IS", "OOS"):
        for name in _header(ranking.metric):
            table.add_column(f"{side} {name}", justify="right")
    for line in _fold_lines(planned, folds):
        table.add_row(*line)
    return table


def _skipped(planned: SweepPlan) -> str:
    """What the strategy's constraint left out of the grid, if anything."""
    if not planned.skipped:
        return ""
    return f" ({planned.skipped:,} more left out by the strategy's constraint)"


def _markdown(
    planned: SweepPlan,
    ranking: Ranking,
    rows: Sequence[Row],
    folds: Sequence[Fold],
    result: dict[str, Any],
) -> str:
    windows = planned.windows
    head = ["Parameters", *(f"IS {h}" for h in _header(ranking.metric))]
    head += [f"OOS {h}" for h in _header(ranking.metric)]
    lines = [
        f"# Sweep report: {planned.strategy.name}",
        "",
        f"- Symbols: {', '.join(planned.symbols)}",
        f"- Parameter sets: {len(planned.sets)}{_skipped(planned)}; jobs: {len(planned.jobs)}",
        f"- Ranked by: {ranking.metric}"
        + (f", max drawdown {ranking.max_drawdown}%" if ranking.max_drawdown is not None else ""),
        f"- In sample: {format_time(windows[0].start)} to {format_time(windows[-2].end)}",
        f"- Out of sample: {_span(windows[-1])}",
        f"- Saved as: {result['best']['saved_as'] if result['best'] else 'nothing qualified'}",
        "",
        f"## Leaderboard (top {min(len(rows), REPORT_ROWS)})",
        "",
        "| # | " + " | ".join(head) + " |",
        "|" + "---|" * (len(head) + 1),
    ]
    lines += [
        "| " + " | ".join(line) + " |" for line in _leaderboard_lines(planned, rows[:REPORT_ROWS])
    ]
    lines += [
        "",
        "## Walk-forward",
        "",
        "| Fold | Tune .. test from | Chosen | " + " | ".join(head[1:]) + " |",
        "|" + "---|" * (len(head) + 2),
    ]
    lines += ["| " + " | ".join(line) + " |" for line in _fold_lines(planned, folds)]
    total = _number(walk_forward_total(folds), percent=True)
    lines += ["", f"Out-of-sample return following each fold's choice: {total}", ""]
    return "\n".join(lines)


def _summary_json(summary: Summary | None) -> dict[str, Any] | None:
    return None if summary is None else asdict(summary)


def _as_json(
    planned: SweepPlan,
    ranking: Ranking,
    rows: Sequence[Row],
    folds: Sequence[Fold],
    best: Row | None,
    saved_as: str | None,
) -> dict[str, Any]:
    return {
        "strategy": planned.strategy.name,
        "symbols": planned.symbols,
        "metric": ranking.metric,
        "max_drawdown": ranking.max_drawdown,
        "windows": [{"start": w.start, "end": w.end} for w in planned.windows],
        "leaderboard": [
            {
                "params": planned.sets[row.index],
                "allowed": row.in_sample.allowed,
                "in_sample": {"score": row.in_sample.score, **asdict(row.in_sample.summary)},
                "out_of_sample": {"score": row.out_score, **asdict(row.out_of_sample)},
            }
            for row in rows[:REPORT_ROWS]
        ],
        "folds": [
            {
                "tune": {"start": f.tune.start, "end": f.tune.end},
                "test": {"start": f.test.start, "end": f.test.end},
                "params": None if f.chosen is None else planned.sets[f.chosen],
                "in_sample": _summary_json(f.in_sample),
                "out_of_sample": _summary_json(f.out_of_sample),
            }
            for f in folds
        ],
        "walk_forward_return": walk_forward_total(folds),
        "best": None
        if best is None
        else {"params": planned.sets[best.index], "saved_as": saved_as},
    }
