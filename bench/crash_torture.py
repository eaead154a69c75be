"""Crash torture: SIGKILL `btkit live` at random moments, restart, compare with an unbroken run.

    python bench/crash_torture.py [--kills 50] [--days 10] [--seed 7]

Runs `btkit live ETHBTC LTCBTC XLMBTC --exchange replay --speed max` (the
shipped candles, cut to --days) once without interruption, then again with a
SIGKILL at a random moment (from the moment it handles SIGTERM, its first line),
--kills times, restarting after each; every fifth round sends SIGTERM instead
and times the clean exit. Then it compares the two
ledgers: the same signals opened (each once) and the same closes to the last
digit, and no temporary or corrupt file left. Every run's `--json` stdout is
kept: every ledger event must have reached some run's stream at least once,
nothing the ledger lacks may appear, and per symbol the first appearances must
be in sequence order (bench/delivery_check.py). Exits 1 on any difference.
`--point NAME` kills at that crash point (btkit/faults.py), the n-th pass at
random, instead of at a random moment.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from delivery_check import check_delivery

REPO = Path(__file__).resolve().parents[1]
SYMBOLS = ("ETHBTC", "LTCBTC", "XLMBTC")


def make_project(root: Path, days: int) -> None:
    (root / "strategies").mkdir(parents=True)
    shutil.copy(REPO / "strategies" / "my_strategy.py", root / "strategies")
    for folder in ("data", "reference"):
        candles = root / folder / "candles"
        candles.mkdir(parents=True)
        for symbol in SYMBOLS:
            lines = (REPO / "data" / "candles" / f"{symbol}-1m.csv").read_text().splitlines(True)
            (candles / f"{symbol}-1m.csv").write_text("".join(lines[: days * 1440 + 1]))


def command(data: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "btkit",
        "live",
        *SYMBOLS,
        "-s",
        "my-strategy",
        "--speed",
        "max",
        "--json",
        "--data-dir",
        data,
    ]


def ledger(path: Path) -> tuple[list[str], list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        opened = [
            r[0]
            for r in db.execute(
                "SELECT signal_id FROM events WHERE action = 'opened' ORDER BY signal_id"
            )
        ]
        closed = db.execute(
            "SELECT signal_id, symbol, closed_at, close_reason, pnl_percentage FROM events "
            "WHERE action = 'closed' ORDER BY closed_at, signal_id"
        ).fetchall()
    finally:
        db.close()
    return opened, closed


def catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def wait_until_catching_sigterm(process: subprocess.Popen[bytes], timeout: float = 120) -> bool:
    """Wait until btkit handles SIGTERM (its first line), however slow the machine is.

    False if the process ended first. Before that moment only Python itself is loading.
    """
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        try:
            if catches_sigterm(process.pid):
                return True
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("btkit never installed its SIGTERM handler")
        time.sleep(0.002)
    return False


def run_output(root: Path, number: int) -> Path:
    """Where run `number` writes its stdout (a file: a killed process loses no line)."""
    return root / "streams" / f"{number:05d}.jsonl"


def torture(
    root: Path, kills: int, seed: int, run_seconds: float, point: str | None = None
) -> dict[str, float]:
    rng = random.Random(seed)
    figures = {"kills": 0, "sigterms": 0, "slowest_sigterm_s": 0.0, "restarts": 0}
    (root / "streams").mkdir(exist_ok=True)
    for round_number in range(1, kills + 1):
        env = None
        if point is not None:  # the n-th pass of the point, n at random
            env = {**os.environ, "BTKIT_FAULT_KILL_AT": f"{point}:{rng.randint(1, 40)}"}
        with run_output(root, round_number).open("w") as out:
            process = subprocess.Popen(
                command("data"), cwd=root, stdout=out, stderr=subprocess.DEVNULL, env=env
            )
        figures["restarts"] += 1
        if point is not None:
            if process.wait() == -signal.SIGKILL:
                figures["kills"] += 1
                continue
            break  # it ended without passing the point that often: the replay is complete
        if not wait_until_catching_sigterm(process):
            break  # the replay was already complete
        # At most one uninterrupted run's time in all, so the replay cannot end before the
        # last kill unless the machine got faster than during the reference run.
        time.sleep(rng.uniform(0.0, run_seconds / kills))
        if process.poll() is not None:
            break  # the replay was already complete
        if round_number % 5 == 0:
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=120)
            stop_time = time.monotonic() - started
            if code != 0:  # the time is a figure to print, not a pass mark (machines differ)
                raise SystemExit(f"SIGTERM: exit {code} after {stop_time:.2f} s (want 0)")
            figures["sigterms"] += 1
            figures["slowest_sigterm_s"] = max(figures["slowest_sigterm_s"], stop_time)
        else:
            process.kill()
            process.wait()
            figures["kills"] += 1
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--point", help="kill at this crash point instead of at random")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="btkit-torture-") as folder:
        root = Path(folder)
        make_project(root, args.days)
        started = time.monotonic()
        subprocess.run(command("reference"), cwd=root, check=True, capture_output=True)
        run_seconds = time.monotonic() - started
        figures = torture(root, args.kills, args.seed, run_seconds, args.point)
        final = subprocess.run(command("data"), cwd=root, capture_output=True, text=True)
        if final.returncode != 0:
            print(final.stderr)
            return 1
        streams = [p.read_text() for p in sorted((root / "streams").iterdir())]
        delivery = check_delivery(root / "data" / "btkit.sqlite", [*streams, final.stdout])
        expected = ledger(root / "reference" / "btkit.sqlite")
        got = ledger(root / "data" / "btkit.sqlite")
        leftovers = [
            p.name
            for p in (root / "data" / "signal").iterdir()
            if p.name.endswith(".tmp") or ".corrupt-" in p.name
        ]
        identical = got == expected and len(set(got[0])) == len(got[0])
        print(
            f"uninterrupted run: {run_seconds:.1f} s, {len(expected[0])} opened, "
            f"{len(expected[1])} closed, symbols {' '.join(SYMBOLS)}, {args.days} day(s)"
        )
        print(
            f"tortured run: {figures['kills']:.0f} SIGKILLs and {figures['sigterms']:.0f} "
            f"SIGTERMs (slowest clean exit {figures['slowest_sigterm_s']:.2f} s) over "
            f"{figures['restarts']:.0f} starts + 1 final; {len(got[0])} opened, "
            f"{len(got[1])} closed"
        )
        print(
            f"closed signals identical: {'yes' if identical else 'NO'}; "
            f"temporary or corrupt files left: {len(leftovers)}"
        )
        kills = max(figures["kills"], 1)
        print(
            f"delivery: {delivery.ledger_events} ledger events, {delivery.streamed} streamed "
            f"lines; never delivered: {len(delivery.lost)} ({delivery.lost_closed} closed); "
            f"not in the ledger: {len(delivery.unknown)}; symbols out of order: "
            f"{len(delivery.out_of_order)}; repeats: {delivery.repeats} "
            f"({delivery.repeats / kills:.2f} per kill), flagged redelivered: {delivery.flagged}"
        )
        return 0 if identical and not leftovers and delivery.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
