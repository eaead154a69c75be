"""What a sweep runs: parameter sets x windows x symbols, as keyed backtest jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from btkit.app.backtest_jobs import BacktestJob, plan
from btkit.app.sweep_jobs import SweepJob, file_digest, job_key, source_digest
from btkit.domain.errors import ConfigError
from btkit.engine.frames import Frame
from btkit.engine.params import Value, grid, grid_size, sample
from btkit.engine.walk_forward import Window, split
from btkit.market.arrays import CandleArrays
from btkit.settings import Settings
from btkit.strategies import StrategyDef

GRID_LIMIT = 20_000
"""Above this many parameter sets, --grid is refused in favour of --samples."""


@dataclass(frozen=True, slots=True)
class SweepOptions:
    start: int | None = None
    end: int | None = None
    samples: int | None = None
    """None: the whole grid."""
    seed: int = 0
    folds: int = 1


@dataclass
class SweepPlan:
    strategy: StrategyDef
    symbols: list[str]
    sets: list[dict[str, Value]]
    windows: list[Window]
    jobs: list[SweepJob]
    where: dict[str, tuple[int, int, str]]
    """Job key -> (set index, window index, symbol)."""
    history: dict[str, CandleArrays]
    files: dict[str, Path]
    skipped: int = 0
    """Grid sets the strategy's constraint left out."""


def plan_sweep(
    settings: Settings, symbols: Sequence[str], strategy_name: str, options: SweepOptions
) -> SweepPlan:
    """Check everything, then list the jobs (one backtest per set, window and symbol)."""
    checked = plan(settings, symbols, strategy_name, "replay", start=options.start, end=options.end)
    strategy = checked.strategy
    sets, skipped = _parameter_sets(strategy, options)
    start = max(job.frame.start for job in checked.jobs)
    end = min(job.frame.end for job in checked.jobs)
    if end <= start:
        raise ConfigError(
            "The symbols' candle files share no period to sweep; choose symbols with "
            "overlapping history or set --start/--end inside it."
        )
    try:
        windows = split(start, end, options.folds, least_minutes=strategy.interval_ms // 60_000)
    except ValueError as exc:
        raise ConfigError(f"{exc}.") from None
    source = source_digest(strategy)
    digests = {job.symbol: file_digest(job.candles_file) for job in checked.jobs}
    jobs: list[SweepJob] = []
    where: dict[str, tuple[int, int, str]] = {}
    for s, values in enumerate(sets):
        frozen = tuple(values.items())
        for w, window in enumerate(windows):
            for base in checked.jobs:
                backtest = _windowed(base, window)
                key = job_key(backtest, values, source, digests[base.symbol])
                if key in where:
                    continue  # the same set drawn twice cannot happen; be safe anyway
                where[key] = (s, w, base.symbol)
                jobs.append(SweepJob(key, frozen, backtest, source))
    return SweepPlan(
        strategy,
        [job.symbol for job in checked.jobs],
        sets,
        windows,
        jobs,
        where,
        checked.history,
        {job.symbol: job.candles_file for job in checked.jobs},
        skipped,
    )


def _parameter_sets(
    strategy: StrategyDef, options: SweepOptions
) -> tuple[list[dict[str, Value]], int]:
    """The sets to run (the grid or a sample, as the constraint allows) and how many of
    the grid's the constraint left out."""
    space = strategy.space
    if not space:
        raise ConfigError(
            f"Strategy {strategy.name!r} declares no parameters to sweep. Declare them next "
            'to its code, e.g. @strategy("name", params={"fast": IntRange(5, 50, step=5)}), '
            'and read them with param("fast").'
        )
    size = grid_size(space)
    if options.samples is None and size > GRID_LIMIT:
        raise ConfigError(
            f"The grid of {strategy.name!r} has {size:,} parameter sets (more than "
            f"{GRID_LIMIT:,}); sample it with --samples N instead."
        )
    if options.samples is not None and options.samples < 1:
        raise ConfigError("--samples must be at least 1.")
    keep = strategy.allows if strategy.constraint is not None else None
    if options.samples is None:
        sets = grid(space, keep)
        skipped = size - len(sets)
    else:
        sets, skipped = sample(space, options.samples, options.seed, keep), 0
    if not sets:
        raise ConfigError(
            f"The constraint of {strategy.name!r} allows none of its declared parameter sets; "
            "fix the constraint or the declared ranges."
        )
    return sets, skipped


def _windowed(job: BacktestJob, window: Window) -> BacktestJob:
    frame = Frame(window.start, window.end, job.frame.step_ms, job.frame.name)
    return BacktestJob(
        job.symbol,
        job.strategy_name,
        job.strategies_dir,
        job.exchange_name,
        job.candles_file,
        frame,
        job.costs,
    )
