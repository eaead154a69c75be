"""Sweep speed: a 100-point grid x 3 symbols x one year of 1m candles, local and on Dask.

    python bench/sweep_speed.py [--minutes N] [--workers 2] [--no-cluster]

The candles are the shipped real ETHBTC, LTCBTC and XLMBTC minutes, repeated
(detrended) until they fill `--minutes` (default a year, 525 600). The strategy
is always-long with a 10 x 10 grid of take-profit and stop-loss distances, so
the sweep's cost can be set against the always-long backtest floor: one
symbol-year of always-long through `run_one`, times the jobs' symbol-years,
shared over the cores. Prints wall time, jobs/s, peak memory per worker and
that ratio, for the local process pool and for a 2-worker Dask LocalCluster
(processes). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from btkit.adapters.store.candle_cache import load_candles
from btkit.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = ("ETHBTC", "LTCBTC", "XLMBTC")
START_MS = 1_514_764_800_000  # 2018-01-01T00:00Z

SWEEP_LONG = """
from btkit import FloatRange, Signal, get_average_price, param, strategy

@strategy(
    "sweep-long",
    interval="5m",
    warmup_minutes=5,
    params={
        "tp": FloatRange(0.5, 5.0, step=0.5, default=1.0),
        "sl": FloatRange(0.5, 5.0, step=0.5, default=1.0),
    },
)
async def sweep_long(symbol):
    price = await get_average_price(symbol)
    tp, sl = param("tp") / 100, param("sl") / 100
    return Signal("long", price, price * (1 + tp), price * (1 - sl), 120)
"""


def year_from_real(source: Path, target: Path, minutes: int) -> None:
    """Real 1m candles, as ratios to the previous close, repeated (detrended) to `minutes`."""
    data = np.loadtxt(source, delimiter=",", skiprows=1)
    close = data[:, 4]
    previous = np.r_[close[0], close[:-1]]
    ratios = data[:, 1:5] / previous[:, None]  # open, high, low, close over the previous close
    log_close = np.log(ratios[:, 3])
    ratios = ratios / np.exp(log_close.mean())  # no drift: a year stays in a sane price range
    reps = -(-minutes // len(ratios))
    tiled = np.tile(ratios, (reps, 1))[:minutes]
    volume = np.tile(data[:, 5], reps)[:minutes]
    closes = close[0] * np.exp(np.cumsum(np.log(tiled[:, 3])))
    before = np.r_[close[0], closes[:-1]]
    open_, high, low = (tiled[:, i] * before for i in range(3))
    high = np.maximum.reduce([high, open_, closes])
    low = np.minimum.reduce([low, open_, closes])
    stamps = START_MS + np.arange(minutes, dtype=np.int64) * 60_000
    with target.open("w") as handle:
        handle.write("timestamp,open,high,low,close,volume\n")
        for row in zip(stamps.tolist(), open_, high, low, closes, volume, strict=True):
            handle.write("{},{:.10g},{:.10g},{:.10g},{:.10g},{:.6g}\n".format(*row))


def floor_seconds(root: Path) -> float:
    """One symbol-year of always-long (the grid's default point) through `run_one`, best of 3."""
    from btkit.app.backtest_jobs import plan, run_one

    settings = _settings(root, "data")
    planned = plan(settings, [SYMBOLS[0]], "sweep-long", "replay")
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        asyncio.run(run_one(planned.jobs[0], planned.strategy, None, planned.history[SYMBOLS[0]]))
        best = min(best, time.perf_counter() - started)
    return best


def _settings(root: Path, data: str) -> Settings:
    return Settings(
        strategies_dir=root / "strategies", data_dir=root / data, logs_dir=root / "logs"
    )


def sweep(root: Path, data: str, workers: int, cluster: str | None) -> tuple[float, int]:
    from rich.console import Console

    from btkit.app.sweep_plan import SweepOptions
    from btkit.cli.sweep_command import Engine, Ranking, run_sweep_command

    out = io.StringIO()
    started = time.perf_counter()
    code = run_sweep_command(
        _settings(root, data),
        list(SYMBOLS),
        strategy_name="sweep-long",
        options=SweepOptions(),
        ranking=Ranking("sharpe"),
        engine=Engine(workers=workers, cluster=cluster),
        save_as="best",
        json_output=True,
        stdout=Console(file=out),
        stderr=Console(file=io.StringIO()),
    )
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit("the sweep failed")
    return elapsed, json.loads(out.getvalue())["jobs"]["run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=525_600)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-cluster", action="store_true", help="skip the Dask run")
    parser.add_argument("--no-local", action="store_true", help="skip the process-pool run")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="btkit-sweep-bench-"))
    try:
        (root / "strategies").mkdir()
        (root / "strategies" / "sweep_long.py").write_text(SWEEP_LONG)
        candles = root / "data" / "candles"
        candles.mkdir(parents=True)
        started = time.perf_counter()
        for symbol in SYMBOLS:
            year_from_real(
                REPO / "data" / "candles" / f"{symbol}-1m.csv",
                candles / f"{symbol}-1m.csv",
                args.minutes,
            )
        shutil.copytree(candles, root / "cluster-data" / "candles")
        print(
            f"{len(SYMBOLS)} x {args.minutes:,} candles from real minutes in "
            f"{time.perf_counter() - started:.1f} s"
        )

        floor = floor_seconds(root)  # also builds the binary candle caches
        for symbol in SYMBOLS:  # binary caches built up front: the sweeps time the jobs only
            load_candles(candles / f"{symbol}-1m.csv")
            load_candles(root / "cluster-data" / "candles" / f"{symbol}-1m.csv")
        symbol_years = 100 * len(SYMBOLS)
        side_by_side = floor * symbol_years / args.workers
        print(
            f"floor: one symbol-year of always-long {floor:.3f} s; {symbol_years} symbol-years "
            f"side by side on {args.workers} cores: {side_by_side:.1f} s"
        )

        if not args.no_local:
            elapsed, jobs = sweep(root, "data", args.workers, None)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(
                f"local pool, {args.workers} workers: {jobs} jobs in {elapsed:.1f} s = "
                f"{jobs / elapsed:.2f} jobs/s; peak memory of the largest worker {peak:.0f} MB; "
                f"{elapsed / side_by_side:.2f} x the floor",
                flush=True,
            )
        if args.no_cluster:
            return
        from distributed import Client, LocalCluster

        with LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as local:
            elapsed, jobs = sweep(root, "cluster-data", args.workers, local.scheduler_address)
            with Client(local.scheduler_address) as client:
                peaks = client.run(
                    lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                )
        print(
            f"Dask LocalCluster, {args.workers} worker processes: {jobs} jobs in "
            f"{elapsed:.1f} s = {jobs / elapsed:.2f} jobs/s; peak memory per worker "
            f"{', '.join(f'{p:.0f}' for p in peaks.values())} MB; "
            f"{elapsed / side_by_side:.2f} x the floor"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
