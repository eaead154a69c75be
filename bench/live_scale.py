"""One `btkit live` process ticking many symbols on the replay exchange.

    python bench/live_scale.py [--symbols 100 1000 3000] [--minutes 240]

For each size it generates deterministic 1m candles for that many symbols,
runs my-strategy on all of them in one process (a fresh one per size), and
prints CPU seconds and wall time per tick cycle (every symbol ticked once),
from the session's own cycle hook, and resident memory per symbol. Goal: 3 000
symbols with a cycle under 10 % of one core's minute (6 CPU seconds).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
START_MS = 1_514_764_800_000

RUN = """
import asyncio, resource, sys, time
from pathlib import Path
from btkit.wiring.live import open_live
from btkit.settings import Settings

root, count = Path(sys.argv[1]), int(sys.argv[2])
symbols = [f"S{n:05d}" for n in range(count)]
settings = Settings(strategies_dir=root / "strategies", data_dir=root / "data",
                    logs_dir=root / "logs", heartbeat_seconds=3600)
marks = []

def on_cycle(session):
    marks.append((time.process_time(), time.perf_counter()))

async def main():
    started = time.perf_counter()
    async with open_live(settings, symbols, "my-strategy", "replay", on_cycle=on_cycle) as setup:
        ready = time.perf_counter() - started
        rss_ready = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        events = 0
        async for _ in setup.session.events():
            events += 1
    cycles = len(marks) - 1
    cpu = (marks[-1][0] - marks[0][0]) / cycles
    wall = (marks[-1][1] - marks[0][1]) / cycles
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{count} {cycles} {cpu:.4f} {wall:.4f} {ready:.1f} {rss_ready:.1f} {peak:.1f} {events}")

asyncio.run(main())
"""


def make_symbols(candles: Path, count: int, minutes: int) -> None:
    rng = np.random.default_rng(count)
    for n in range(count):
        close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.001, minutes)))
        open_ = np.r_[100.0, close[:-1]]
        spread = np.abs(rng.normal(0, 0.0005, minutes)) * close
        volume = rng.gamma(2.0, 50.0, minutes)
        times = START_MS + np.arange(minutes, dtype=np.int64) * 60_000
        rows = [
            f"{t},{o:.6f},{max(o, c) + s:.6f},{min(o, c) - s:.6f},{c:.6f},{v:.3f}\n"
            for t, o, c, s, v in zip(times.tolist(), open_, close, spread, volume, strict=True)
        ]
        (candles / f"S{n:05d}-1m.csv").write_text(
            "timestamp,open,high,low,close,volume\n" + "".join(rows)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--minutes", type=int, default=240)
    args = parser.parse_args()
    print(
        "symbols  cycles  CPU s/cycle  wall s/cycle  %core-minute  start-up s  "
        "MB ready  MB peak  KB/symbol  events"
    )
    print("(KB/symbol: growth of peak memory per added symbol since the previous size)")
    previous: tuple[int, float] | None = None
    for count in args.symbols:
        with tempfile.TemporaryDirectory(prefix="btkit-scale-") as folder:
            root = Path(folder)
            (root / "strategies").mkdir()
            shutil.copy(REPO / "strategies" / "my_strategy.py", root / "strategies")
            candles = root / "data" / "candles"
            candles.mkdir(parents=True)
            make_symbols(candles, count, args.minutes)
            out = subprocess.run(
                [sys.executable, "-c", RUN, str(root), str(count)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            n, cycles, cpu, wall, ready, rss_ready, peak, events = out
            if previous is None:
                per_symbol = float("nan")
            else:
                per_symbol = (float(peak) - previous[1]) * 1024 / (int(n) - previous[0])
            previous = (int(n), float(peak))
            print(
                f"{int(n):7d}  {int(cycles):6d}  {float(cpu):11.4f}  {float(wall):12.4f}  "
                f"{float(cpu) / 60 * 100:11.2f}%  {float(ready):10.1f}  {float(rss_ready):8.0f}"
                f"  {float(peak):7.0f}  {per_symbol:9.1f}  {int(events):6d}"
            )


if __name__ == "__main__":
    main()
