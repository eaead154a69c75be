"""How closely `btkit live --speed N` keeps its schedule: N simulated minutes per wall second.

    python bench/speed_schedule.py [--minutes 120] [--speed 60]

Replays the shipped ETHBTC candles for --minutes at --speed and at max speed
in a temporary project and prints both wall times; the paced run should take
about minutes / speed seconds more than the unpaced one (start-up is common to
both), not minutes / speed plus every tick's work.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
START = "2018-01-20T06:00"


def run(root: Path, speed: str, minutes: int, data: str) -> float:
    end_hour, end_minute = divmod(6 * 60 + minutes - 1, 60)
    command = [
        sys.executable,
        "-m",
        "btkit",
        "live",
        "ETHBTC",
        "-s",
        "my-strategy",
        "--speed",
        speed,
        "--start",
        START,
        "--end",
        f"2018-01-20T{end_hour:02d}:{end_minute:02d}",
        "--data-dir",
        data,
    ]
    started = time.monotonic()
    subprocess.run(command, cwd=root, check=True, capture_output=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=120)
    parser.add_argument("--speed", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="btkit-speed-") as folder:
        root = Path(folder)
        (root / "strategies").mkdir()
        strategy = (REPO / "strategies" / "my_strategy.py").read_text()
        (root / "strategies" / "my_strategy.py").write_text(strategy)
        lines = (REPO / "data" / "candles" / "ETHBTC-1m.csv").read_text().splitlines(True)
        for data in ("paced", "unpaced"):
            (root / data / "candles").mkdir(parents=True)
            # One day is plenty, and keeps the (common) start-up short.
            (root / data / "candles" / "ETHBTC-1m.csv").write_text("".join(lines[:1441]))
        unpaced = run(root, "max", args.minutes, "unpaced")
        paced = run(root, f"{args.speed:g}", args.minutes, "paced")
    target = args.minutes / args.speed
    print(
        f"{args.minutes} simulated minutes at --speed {args.speed:g}: {paced:.2f} s wall; "
        f"at --speed max: {unpaced:.2f} s; pacing added {paced - unpaced:.2f} s "
        f"(schedule: {target:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
