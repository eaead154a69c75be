"""How fast `btkit --help` and `btkit backtest --help` answer, and which imports cost most.

    python bench/startup_speed.py [--runs N]

Runs each command N times in a fresh process and prints the best and median
wall time and CPU time (user + system), then the slowest top-level imports of
`btkit backtest --help` from `python -X importtime`. Goal: under 0.3 s. On a
shared machine the CPU time is the steadier figure. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["backtest", "--help"])


def measure(args: list[str]) -> tuple[float, float]:
    btkit = Path(sys.executable).with_name("btkit")
    started = time.perf_counter()
    child = subprocess.Popen([str(btkit), *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"btkit {' '.join(args)} failed")
    return elapsed, usage.ru_utime + usage.ru_stime


def slowest_imports(args: list[str], count: int = 8) -> list[tuple[int, str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "btkit", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        if not name.startswith(" ") and not line.split("|")[2].startswith("  "):
            rows.append((int(cumulative), name))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    for command in COMMANDS:
        runs = [measure(command) for _ in range(args.runs)]
        walls, cpus = [run[0] for run in runs], [run[1] for run in runs]
        print(
            f"btkit {' '.join(command)}: wall best {min(walls):.3f} s, median "
            f"{statistics.median(walls):.3f} s; CPU best {min(cpus):.3f} s, median "
            f"{statistics.median(cpus):.3f} s ({args.runs} runs)"
        )
    print("slowest top-level imports of `btkit backtest --help` (cumulative):")
    for micros, name in slowest_imports(["backtest", "--help"]):
        print(f"  {micros / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    main()
