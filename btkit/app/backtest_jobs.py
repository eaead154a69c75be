"""Backtests of several symbols: planned and checked up front, run one per process.

Each symbol is independent, so they run in a process pool when there are
several (both cores); results do not depend on the number of workers. A job
carries names and paths only, and each worker loads the strategy and candles
itself (from the binary cache, in milliseconds).
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from btkit.adapters.store.candle_cache import load_candles
from btkit.adapters.store.candle_files import SUFFIX, find_candle_file
from btkit.domain.errors import ConfigError, DataError
from btkit.domain.model import ClosedResult, OpenedResult, OpenSignal
from btkit.drivers.backtest import BacktestRun, Progress
from btkit.drivers.runner import StrategyFailures
from btkit.engine.frames import Frame, default_start, frame_for
from btkit.engine.intervals import SIGNAL_INTERVALS, interval_ms
from btkit.engine.params import Value, Values
from btkit.engine.pnl import Costs
from btkit.market.arrays import CandleArrays
from btkit.settings import Settings
from btkit.strategies import StrategyDef, resolve_strategy
from btkit.wiring.backtest import ScreenUse, open_backtest_run

if TYPE_CHECKING:
    import multiprocessing

ProgressReport = Callable[[str, int], None]
"""(symbol, simulated time reached)."""


@dataclass(frozen=True, slots=True)
class BacktestJob:
    symbol: str
    strategy_name: str
    strategies_dir: Path
    exchange_name: str
    candles_file: Path
    frame: Frame
    costs: Costs
    params: tuple[tuple[str, Value], ...] = ()
    """Parameter values bound to the strategy (`--params NAME`); none: as declared."""
    screen: ScreenUse = "use"
    """The strategy's screen: used, ignored (`--no-screen`) or checked (`--check-screen`)."""


@dataclass
class SymbolOutcome:
    job: BacktestJob
    closed: list[ClosedResult] = field(default_factory=list)
    opened: list[OpenedResult] = field(default_factory=list)
    still_open: OpenSignal | None = None
    failures: StrategyFailures = field(default_factory=StrategyFailures)

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run formats the main task (and so this result) on exit.
        return f"SymbolOutcome({self.job.symbol}, {len(self.closed)} closed)"


def _candles(path: Path) -> CandleArrays:
    candles = load_candles(path)
    if len(candles) == 0:
        raise DataError(f"{path} has no candles.")
    return candles


@dataclass
class Plan:
    strategy: StrategyDef
    jobs: list[BacktestJob]
    history: dict[str, CandleArrays]
    """Candles already loaded while checking, reused by in-process runs."""


def plan(
    settings: Settings,
    symbols: Sequence[str],
    strategy_name: str,
    exchange_name: str,
    *,
    start: int | None = None,
    end: int | None = None,
    step: str = "1m",
    params: Values | None = None,
    screen: ScreenUse = "use",
) -> Plan:
    """Check strategy, files and ranges before any work starts.

    `step` spaces the frame's ticks (default 1m, as live). Open signals are
    still followed minute by minute, as the live loop does.
    """
    if step not in SIGNAL_INTERVALS:
        raise ConfigError(f"--step must be one of {', '.join(SIGNAL_INTERVALS)}, not {step!r}.")
    strategy = resolve_strategy(settings.strategies_dir, strategy_name)
    if params is not None:
        strategy = strategy.bind(params)
    paths = [find_candle_file(settings.candles_dir, symbol) for symbol in symbols]
    files = {path.name.removesuffix(SUFFIX): path for path in paths}  # ETH/BTC -> ETH-BTC
    if len(files) < len(paths):
        raise ConfigError(f"Two of the symbols {' '.join(symbols)} name one candle file.")
    history = {symbol: _candles(path) for symbol, path in files.items()}
    if start is None:
        start = default_start(
            (int(c.timestamp[0]) for c in history.values()), strategy.warmup_minutes
        )
    jobs = []
    for symbol, candles in history.items():
        frame = frame_for(
            symbol,
            data_first=int(candles.timestamp[0]),
            data_last_finish=int(candles.timestamp[-1]) + 60_000,
            start=start,
            end=end,
            step_ms=interval_ms(step),
        )
        jobs.append(
            BacktestJob(
                symbol,
                strategy.declared_name or strategy.name,
                settings.strategies_dir,
                exchange_name,
                files[symbol],
                frame,
                settings.costs,
                tuple(params.items()) if params is not None else (),
                screen,
            )
        )
    return Plan(strategy, jobs, history)


def prepare(
    job: BacktestJob, strategy: StrategyDef, candles: CandleArrays | None = None
) -> BacktestRun:
    if candles is None:
        candles = _candles(job.candles_file)
    return open_backtest_run(
        symbol=job.symbol,
        strategy=strategy,
        exchange_name=job.exchange_name,
        frame=job.frame,
        costs=job.costs,
        candles=candles,
        screen=job.screen,
    )


async def run_one(
    job: BacktestJob,
    strategy: StrategyDef,
    progress: Progress | None = None,
    candles: CandleArrays | None = None,
) -> SymbolOutcome:
    run = prepare(job, strategy, candles)
    run.progress = progress
    outcome = SymbolOutcome(job)
    outcome.closed = [closed async for closed in run.results()]
    outcome.opened = run.opened
    outcome.still_open = run.still_open
    outcome.failures = run.runner.failures
    return outcome


_progress_queue: multiprocessing.Queue[tuple[str, int]] | None = None


def _init_worker(progress: multiprocessing.Queue[tuple[str, int]]) -> None:
    global _progress_queue
    _progress_queue = progress
    # Ctrl-C reaches the whole process group: the parent reports it, workers just end.
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def _run_in_worker(job: BacktestJob) -> SymbolOutcome:
    strategy = resolve_strategy(job.strategies_dir, job.strategy_name, warn=False)
    if job.params:
        strategy = strategy.bind(dict(job.params))
    sink = _progress_queue

    def report(when: int) -> None:
        if sink is not None:
            sink.put((job.symbol, when))

    return asyncio.run(run_one(job, strategy, report))


def run_all(
    planned: Plan, *, workers: int | None = None, on_progress: ProgressReport | None = None
) -> list[SymbolOutcome]:
    """Run every job, in parallel processes when several; outcomes in job order."""
    jobs, strategy = planned.jobs, planned.strategy
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        outcomes = []
        for job in jobs:
            symbol = job.symbol

            def report(when: int, symbol: str = symbol) -> None:
                if on_progress is not None:
                    on_progress(symbol, when)

            candles = planned.history.get(symbol)
            outcomes.append(asyncio.run(run_one(job, strategy, report, candles)))
        return outcomes
    import multiprocessing  # only when a pool is used: it costs start-up time
    from concurrent.futures import Future, ProcessPoolExecutor

    progress: multiprocessing.Queue[tuple[str, int]] = multiprocessing.Queue()
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(progress,)) as pool:
        futures: list[Future[SymbolOutcome]] = [pool.submit(_run_in_worker, j) for j in jobs]
        while not all(f.done() for f in futures):
            _drain(progress, on_progress, timeout=0.1)
        _drain(progress, on_progress, timeout=0)
        return [f.result() for f in futures]


def _drain(
    progress: multiprocessing.Queue[tuple[str, int]],
    on_progress: ProgressReport | None,
    timeout: float,
) -> None:
    try:
        item = progress.get(timeout=timeout) if timeout else progress.get_nowait()
        while True:
            if on_progress is not None:
                on_progress(*item)
            item = progress.get_nowait()
    except queue.Empty:
        pass
