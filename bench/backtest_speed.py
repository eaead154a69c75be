"""Backtest speed on one year of deterministic 1m candles (525 600).

    python bench/backtest_speed.py [--minutes N] [--repeat K]

Prints, for (a) an always-long strategy (±1 % TP/SL, 120 min, interval 5m) and
(b) my-strategy: the engine loop alone (wall time, candles/s) and the whole
`btkit backtest` command once the candle cache is built (wall time, peak RSS).
Each measurement runs in a fresh process so peak memory is its own. Goals on a
2-core machine, for (a): command < 0.5 s, engine > 2 000 000 candles/s, peak
memory < 150 MB. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SYMBOL = "BENCH"
START_MS = 1_514_764_800_000  # 2018-01-01T00:00Z

ALWAYS_LONG = """
from btkit import Signal, get_average_price, strategy

@strategy("always-long", interval="5m", warmup_minutes=5)
async def always_long(symbol):
    price = await get_average_price(symbol)
    return Signal("long", price, price * 1.01, price * 0.99, 120)
"""

ENGINE = """
import asyncio, resource, sys, time
from pathlib import Path
from btkit.app.backtest_jobs import plan, run_one
from btkit.settings import Settings
root = Path(sys.argv[1])
settings = Settings(strategies_dir=root / "strategies", data_dir=root / "data",
                    logs_dir=root / "logs")
planned = plan(settings, ["BENCH"], sys.argv[2], "replay")
jobs = planned.jobs
started = time.perf_counter()
outcome = asyncio.run(run_one(jobs[0], planned.strategy, None, planned.history["BENCH"]))
elapsed = time.perf_counter() - started
minutes = (jobs[0].frame.end - jobs[0].frame.start) // 60_000 + 1
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{elapsed:.4f} {minutes} {len(outcome.closed)} {peak:.1f}")
"""


def make_candles(path: Path, minutes: int) -> None:
    """A seeded random walk with realistic 1m ranges and volumes."""
    rng = np.random.default_rng(20180101)
    returns = rng.normal(0.0, 0.0008, minutes)
    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.r_[100.0, close[:-1]]
    spread = np.abs(rng.normal(0.0, 0.0005, minutes)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.gamma(2.0, 50.0, minutes)
    timestamps = START_MS + np.arange(minutes, dtype=np.int64) * 60_000
    with path.open("w") as handle:
        handle.write("timestamp,open,high,low,close,volume\n")
        for row in zip(timestamps.tolist(), open_, high, low, close, volume, strict=True):
            handle.write("{},{:.8f},{:.8f},{:.8f},{:.8f},{:.4f}\n".format(*row))


def run_command(root: Path, strategy: str) -> tuple[float, float]:
    btkit = Path(sys.executable).with_name("btkit")
    command = [
        str(btkit),
        "backtest",
        SYMBOL,
        "-s",
        strategy,
        "--data-dir",
        "data",
        "--strategies-dir",
        "strategies",
        "--logs-dir",
        "logs",
    ]
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"btkit backtest failed: {child.stderr.read() if child.stderr else ''}")
    if child.stderr:
        child.stderr.close()
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=525_600)
    parser.add_argument("--repeat", type=int, default=3, help="best of K runs")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="btkit-bench-"))
    try:
        (root / "strategies").mkdir()
        (root / "data" / "candles").mkdir(parents=True)
        (root / "strategies" / "always_long.py").write_text(ALWAYS_LONG)
        shutil.copy(REPO / "strategies" / "my_strategy.py", root / "strategies")
        started = time.perf_counter()
        make_candles(root / "data" / "candles" / f"{SYMBOL}-1m.csv", args.minutes)
        print(f"generated {args.minutes:,} candles in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        run_command(root, "always-long")  # parses the CSV and builds the binary cache
        print(f"first run (CSV parse + cache build): {time.perf_counter() - started:.2f} s")
        for label, strategy in (
            ("(a) always-long", "always-long"),
            ("(b) my-strategy", "my-strategy"),
        ):
            engine = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, "-c", ENGINE, str(root), strategy],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                seconds, minutes, closed, peak = out.split()
                engine.append((float(seconds), int(minutes), int(closed), float(peak)))
            seconds, minutes, closed, peak = min(engine)
            command = min(run_command(root, strategy) for _ in range(args.repeat))
            print(
                f"{label}: engine {seconds:.3f} s = {minutes / seconds:,.0f} candles/s, "
                f"{closed:,} closed signals, engine process peak {peak:.0f} MB; "
                f"whole command {command[0]:.3f} s, peak {command[1]:.0f} MB"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
