"""Backtest speed on one year of deterministic 1m candles (525 600).

    python bench/backtest_speed.py [--minutes N] [--repeat K]
    python bench/backtest_speed.py --minutes 1576800      # three years

Prints, for (a) an always-long strategy (±1 % TP/SL, 120 min, interval 5m),
(b) my-strategy and (c) my-strategy without its screen (`--no-screen`: every
due tick calls get_signal): the engine loop alone (wall and CPU time, candles/s, peak RSS)
and the whole `btkit backtest` command once the candle cache is built; then
(b)/(a), the CPU time of each phase of the always-long command (imports, plan,
engine, ledger, report with its picture), and the first (cold: CSV parse +
cache build) run against a warm one.
Each measurement runs in a fresh process so peak memory is its own. CPU time
is printed beside wall time because a shared machine's wall time says more
about the neighbours than about btkit. Goals on a 2-core machine: (a) command
< 0.5 s, engine > 2 000 000 candles/s; (b) engine within 2x of (a); peak memory
flat in the length of history; cold within 1.5x of warm. Figures are printed,
never asserted.
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
import asyncio, dataclasses, sys, time
from pathlib import Path
from btkit.app.backtest_jobs import plan, run_one
from btkit.settings import Settings
root = Path(sys.argv[1])
settings = Settings(strategies_dir=root / "strategies", data_dir=root / "data",
                    logs_dir=root / "logs")
planned = plan(settings, ["BENCH"], sys.argv[2], "replay")
jobs = [dataclasses.replace(job, screen=sys.argv[3]) for job in planned.jobs]
started, cpu = time.perf_counter(), time.process_time()
outcome = asyncio.run(run_one(jobs[0], planned.strategy, None, planned.history["BENCH"]))
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
minutes = (jobs[0].frame.end - jobs[0].frame.start) // 60_000 + 1
# VmHWM, not ru_maxrss: Linux carries the parent's RSS at fork into ru_maxrss across exec
peak = next(int(line.split()[1]) for line in open("/proc/self/status")
            if line.startswith("VmHWM")) / 1024
print(f"{elapsed:.4f} {cpu:.4f} {minutes} {len(outcome.closed)} {peak:.1f}")
"""


SPLIT = """
import resource, sys
from pathlib import Path
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
marks = [("interpreter", cpu())]
from btkit.cli import backtest_command as command
from btkit.settings import Settings
marks.append(("imports", cpu()))
root = Path(sys.argv[1])
settings = Settings(strategies_dir=root / "strategies", data_dir=root / "data",
                    logs_dir=root / "logs")
planned = command.plan(settings, ["BENCH"], sys.argv[2], "replay")
marks.append(("plan (open the cache)", cpu()))
outcomes = command.run_all(planned, workers=1)
marks.append(("engine", cpu()))
command.record_run(settings, planned.strategy.name, "replay", outcomes)
marks.append(("run store", cpu()))
command.write_results_report("split", outcomes[0].closed, [], {}, root / "logs" / "split.md")
marks.append(("report + picture", cpu()))
print(" ".join(f"{name.replace(' ', '_')}={now - before:.3f}"
               for (_, before), (name, now) in zip(marks, marks[1:])))
"""
"""CPU seconds of each phase of a `btkit backtest`, in the command's order, in one process."""


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


def run_command(root: Path, strategy: str, screen: str = "use") -> tuple[float, float, float]:
    """(wall s, CPU s, peak MB) of one `btkit backtest` process."""
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
        *(["--no-screen"] if screen == "off" else []),
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
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=525_600)
    parser.add_argument("--repeat", type=int, default=3, help="best of K runs")
    parser.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_into is not None:  # in a child: the parent stays small (see below)
        make_candles(args.generate_into, args.minutes)
        return
    root = Path(tempfile.mkdtemp(prefix="btkit-bench-"))
    try:
        (root / "strategies").mkdir()
        (root / "data" / "candles").mkdir(parents=True)
        (root / "strategies" / "always_long.py").write_text(ALWAYS_LONG)
        shutil.copy(REPO / "strategies" / "my_strategy.py", root / "strategies")
        started = time.perf_counter()
        # In a child process: a child's ru_maxrss starts at its parent's RSS when it
        # forked, so a parent holding the generated arrays would inflate every peak.
        csv = root / "data" / "candles" / f"{SYMBOL}-1m.csv"
        subprocess.run(
            [sys.executable, __file__, "--minutes", str(args.minutes), "--generate-into", str(csv)],
            check=True,
        )
        print(f"generated {args.minutes:,} candles in {time.perf_counter() - started:.1f} s")
        cold = run_command(root, "always-long")  # parses the CSV and builds the binary cache
        print(
            f"first run (CSV parse + cache build + backtest): {cold[0]:.2f} s, "
            f"CPU {cold[1]:.2f} s, peak {cold[2]:.0f} MB"
        )
        engines = {}
        commands = {}
        for label, strategy, screen in (
            ("(a) always-long", "always-long", "use"),
            ("(b) my-strategy", "my-strategy", "use"),
            ("(c) my-strategy --no-screen", "my-strategy", "off"),
        ):
            engine = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, "-c", ENGINE, str(root), strategy, screen],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                seconds, cpu, minutes, closed, peak = out.split()
                engine.append((float(seconds), float(cpu), int(minutes), int(closed), float(peak)))
            seconds, cpu, minutes, closed, peak = min(engine)
            cpu = min(run[1] for run in engine)
            command = min(run_command(root, strategy, screen) for _ in range(args.repeat))
            engines[label], commands[label] = (seconds, cpu), command
            print(
                f"{label}: engine {seconds:.3f} s (CPU {cpu:.3f} s) = "
                f"{minutes / seconds:,.0f} candles/s, {closed:,} closed signals, engine process "
                f"peak {peak:.0f} MB; whole command {command[0]:.3f} s (CPU {command[1]:.2f} s), "
                f"peak {command[2]:.0f} MB"
            )
        split = subprocess.run(
            [sys.executable, "-c", SPLIT, str(root), "always-long"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        print("always-long command, CPU s by phase:", ", ".join(split))
        fast = engines["(a) always-long"]
        warm = commands["(a) always-long"]
        for label in ("(b) my-strategy", "(c) my-strategy --no-screen"):
            slow = engines[label]
            print(
                f"{label} / always-long engine: {slow[0] / fast[0]:.2f}x wall, "
                f"{slow[1] / fast[1]:.2f}x CPU (goal for (b): within 2x)"
            )
        print(
            f"cold / warm always-long command: {cold[0] / warm[0]:.2f}x wall, "
            f"{cold[1] / warm[1]:.2f}x CPU (goal: within 1.5x)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
