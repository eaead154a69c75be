"""Disk cost of backtest results: ledger and run-store growth per one-year backtest.

    python bench/run_store_size.py [--minutes N] [--runs K] [--strategy always-long|my-strategy]

Generates one year of deterministic 1m candles (525 600, as bench/backtest_speed.py),
then runs `btkit backtest BENCH -s STRATEGY` K times in a fresh project and prints,
after each run, the size of `data/btkit.sqlite` (with its -wal) and of `data/runs/`,
and at the end the growth per run. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backtest_speed import ALWAYS_LONG, REPO, SYMBOL, make_candles


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def ledger_bytes(data: Path) -> int:
    return sum(
        p.stat().st_size for p in data.glob("btkit.sqlite*") if p.is_file() and "lock" not in p.name
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=525_600)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--strategy", default="always-long")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="btkit-bench-runs-"))
    try:
        (root / "strategies").mkdir()
        (root / "data" / "candles").mkdir(parents=True)
        (root / "strategies" / "always_long.py").write_text(ALWAYS_LONG)
        shutil.copy(REPO / "strategies" / "my_strategy.py", root / "strategies")
        make_candles(root / "data" / "candles" / f"{SYMBOL}-1m.csv", args.minutes)
        btkit = Path(sys.executable).with_name("btkit")
        data = root / "data"
        before_ledger, before_runs = ledger_bytes(data), folder_bytes(data / "runs")
        for number in range(1, args.runs + 1):
            started = time.perf_counter()
            done = subprocess.run(
                [str(btkit), "backtest", SYMBOL, "-s", args.strategy, "--json"],
                cwd=root,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"btkit backtest failed: {done.stderr}")
            closed = len(done.stdout.splitlines())
            print(
                f"run {number}: {closed:,} closed signals in {time.perf_counter() - started:.1f} s;"
                f" ledger {ledger_bytes(data) / 1e6:.2f} MB, "
                f"data/runs {folder_bytes(data / 'runs') / 1e6:.3f} MB"
            )
        ledger = (ledger_bytes(data) - before_ledger) / args.runs
        runs = (folder_bytes(data / "runs") - before_runs) / args.runs
        print(
            f"per one-year backtest ({args.minutes:,} minutes, {args.strategy}): "
            f"ledger +{ledger / 1e6:.3f} MB, run store +{runs / 1e6:.3f} MB "
            f"({closed:,} closed signals: {(ledger + runs) / max(closed, 1):.0f} bytes each)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
