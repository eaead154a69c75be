"""Sweep jobs: one backtest of one parameter set, symbol and window, run anywhere.

A job carries names, paths and numbers only; the worker binds the parameters
to the strategy and runs `backtest_jobs.run_one`, the same backtest as
`btkit backtest` (no second TP/SL/PnL code). Workers keep what they load, so a
process loads each candle file and strategy once, not once per job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from btkit.adapters.store.candle_cache import load_candles
from btkit.adapters.store.sweep_store import JobRecord
from btkit.app.backtest_jobs import BacktestJob, run_one
from btkit.engine.params import Value, canonical
from btkit.engine.statistics import Trade
from btkit.market.arrays import CandleArrays
from btkit.strategies import StrategyDef, resolve_strategy


@dataclass(frozen=True, slots=True)
class SweepJob:
    key: str
    values: tuple[tuple[str, Value], ...]
    backtest: BacktestJob
    """The backtest to run (its frame is the job's window)."""
    source: str = ""
    """The strategy file's digest: a worker reloads the strategy when the file changed."""


def job_key(
    backtest: BacktestJob, values: Mapping[str, Value], source_digest: str, data_digest: str
) -> str:
    """Everything the job's result depends on, hashed: equal keys, equal results."""
    identity = {
        "strategy": backtest.strategy_name,
        "source": source_digest,
        "params": canonical(values),
        "symbol": backtest.symbol,
        "data": data_digest,
        "exchange": backtest.exchange_name,
        "frame": [backtest.frame.start, backtest.frame.end, backtest.frame.step_ms],
        "costs": dataclasses.asdict(backtest.costs),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def file_digest(path: Path) -> str:
    """A candle file's identity for job keys: its size and modification time."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


# --- the worker side -------------------------------------------------------------

_lock = threading.Lock()
_strategies: dict[tuple[Path, str, str], StrategyDef] = {}
_candles: dict[tuple[Path, str], CandleArrays] = {}
_bundles: dict[str, tempfile.TemporaryDirectory[str]] = {}


def _strategy(folder: Path, name: str, source: str) -> StrategyDef:
    with _lock:  # threads of one worker (a Dask worker) import a file once, one at a time
        found = _strategies.get((folder, name, source))
        if found is None:
            found = resolve_strategy(folder, name, warn=False)
            _strategies[(folder, name, source)] = found
        return found


def _file_candles(path: Path) -> CandleArrays:
    key = (path, file_digest(path))  # a rewritten file is loaded again
    with _lock:
        found = _candles.get(key)
        if found is None:
            found = _candles[key] = load_candles(path)
        return found


def execute(
    job: SweepJob,
    candles: CandleArrays | None = None,
    strategies: StrategyFiles | None = None,
) -> JobRecord:
    """Run one job to its record. `candles` / `strategies`: shipped by a cluster."""
    backtest = job.backtest
    folder = backtest.strategies_dir if strategies is None else strategies.materialise()
    strategy = _strategy(folder, backtest.strategy_name, job.source).bind(dict(job.values))
    if candles is None:
        candles = _file_candles(backtest.candles_file)
    outcome = asyncio.run(run_one(backtest, strategy, None, candles))
    failures = outcome.failures
    return JobRecord(
        key=job.key,
        strategy=backtest.strategy_name,
        params=canonical(dict(job.values)),
        symbol=backtest.symbol,
        start=backtest.frame.start,
        end=backtest.frame.end,
        calls=failures.calls,
        failed=failures.failed,
        last_error=failures.last_error,
        trades=tuple(Trade.from_closed(c) for c in outcome.closed),
    )


@dataclass(frozen=True, slots=True)
class StrategyFiles:
    """A strategies folder's `*.py` files as text, for workers that do not share its disk."""

    files: tuple[tuple[str, str], ...]

    @classmethod
    def read(cls, folder: Path) -> StrategyFiles:
        return cls(tuple((p.name, p.read_text("utf-8")) for p in sorted(folder.glob("*.py"))))

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.files).encode()).hexdigest()[:16]

    def materialise(self) -> Path:
        """The files in a private folder of this worker, written once per content."""
        digest = self.digest
        with _lock:
            bundle = _bundles.get(digest)
            if bundle is None:
                # removed when the worker process ends (TemporaryDirectory's finalizer)
                bundle = tempfile.TemporaryDirectory(prefix=f"btkit-strategies-{digest}-")
                for name, text in self.files:
                    (Path(bundle.name) / name).write_text(text, "utf-8")
                _bundles[digest] = bundle
            return Path(bundle.name)


def source_digest(strategy: StrategyDef) -> str:
    """The strategy file's text, hashed: an edited strategy never reuses old results."""
    if strategy.source is None:
        return ""
    return hashlib.sha256(strategy.source.read_bytes()).hexdigest()


# --- running jobs on this machine ------------------------------------------------

Done = Callable[[JobRecord], None]


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group: the parent reports it, workers just end.
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def run_local(
    jobs: Sequence[SweepJob],
    on_done: Done,
    *,
    workers: int,
    history: Mapping[str, CandleArrays] | None = None,
) -> None:
    """Run `jobs` in `workers` processes (in this one when 1); `on_done` as each ends."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            on_done(execute(job, (history or {}).get(job.backtest.symbol)))
        return
    with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
        pending: set[Future[JobRecord]] = set()
        queued = iter(jobs)
        try:
            # A bounded queue of submissions: a huge grid never sits in memory as futures.
            for job in _take(queued, workers * 4):
                pending.add(pool.submit(execute, job))
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    on_done(future.result())
                    for job in _take(queued, 1):
                        pending.add(pool.submit(execute, job))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _take(jobs: Iterator[SweepJob], count: int) -> list[SweepJob]:
    taken = []
    for job in jobs:
        taken.append(job)
        if len(taken) == count:
            break
    return taken
