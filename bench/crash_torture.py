"""Crash torture: SIGKILL `btkit live` at random moments, restart, compare with an unbroken run.

    python bench/crash_torture.py [--kills 50] [--days 10] [--seed 7]

Runs `btkit live ETHBTC LTCBTC XLMBTC --exchange replay --speed max` (the
shipped candles, cut to --days) once without interruption, then again with a
SIGKILL at a random moment, --kills times, restarting after each: nine in ten
while its loops tick (in a window sized so the replay ends near the last kill),
one in ten during start-up; every fifth round sends SIGTERM instead and times
the clean exit. Then it compares the two
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
from subprocess import Popen

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


TICKING = "first tick now"
"""Logged when the symbols' loops start: start-up is over, events may flow."""


def wait_until_ticking(process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> bool:
    """Wait until the run's log says its loops tick; False if it ended first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if TICKING in log.read_text(errors="replace"):
            return True
        if time.monotonic() > deadline:
            raise SystemExit(f"btkit never started ticking (see {log})")
        time.sleep(0.005)
    return False


def start(root: Path, data: str, number: int, env: dict[str, str] | None = None) -> Popen[bytes]:
    """Run `number`: stdout and log in files (a killed process loses no written line)."""
    streams = root / "streams"
    streams.mkdir(exist_ok=True)
    with (
        (streams / f"{number:05d}.jsonl").open("w") as out,
        log_file(root, number).open("w") as err,
    ):
        return subprocess.Popen(command(data), cwd=root, stdout=out, stderr=err, env=env)


def log_file(root: Path, number: int) -> Path:
    return root / "streams" / f"{number:05d}.log"


def timed_reference(root: Path) -> tuple[float, float]:
    """An unbroken run: (seconds of start-up, seconds of ticking)."""
    process = start(root, "reference", 0)
    wait_until_catching_sigterm(process)
    started = time.monotonic()
    wait_until_ticking(process, log_file(root, 0))
    ticking = time.monotonic()
    if process.wait() != 0:
        raise SystemExit(f"the reference run failed: {log_file(root, 0).read_text()}")
    return ticking - started, time.monotonic() - ticking


def kill_moment(
    process: Popen[bytes], log: Path, rng: random.Random, startup: bool, window: float
) -> bool:
    """Wait for a random moment to kill (False: the run ended first, the replay is done)."""
    if not wait_until_catching_sigterm(process):
        return False
    if not startup and not wait_until_ticking(process, log):
        return False
    time.sleep(rng.uniform(0.0, window))
    return process.poll() is None


def stop(process: Popen[bytes], sigterm: bool, figures: dict[str, float]) -> None:
    if sigterm:
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


def torture(
    root: Path,
    kills: int,
    seed: int,
    timing: tuple[float, float],
    point: str | None = None,
) -> dict[str, float]:
    """Kill runs until `kills` or the replay ends. Nine in ten kills land while the loops
    tick, at a random moment of a window that lets the replay end near the last kill;
    one in ten lands during start-up. Every fifth round is a SIGTERM instead."""
    startup_seconds, tick_seconds = timing
    rng = random.Random(seed)
    figures = {"kills": 0, "sigterms": 0, "slowest_sigterm_s": 0.0, "restarts": 0}
    for round_number in range(1, kills + 1):
        env = None
        if point is not None:  # the n-th pass of the point, n at random
            env = {**os.environ, "BTKIT_FAULT_KILL_AT": f"{point}:{rng.randint(1, 40)}"}
        process = start(root, "data", round_number, env)
        figures["restarts"] += 1
        if point is not None:
            if process.wait() != -signal.SIGKILL:
                break  # it ended without passing the point that often: the replay is done
            figures["kills"] += 1
            continue
        startup = round_number % 10 == 3
        window = startup_seconds if startup else 2 * tick_seconds / kills
        if not kill_moment(process, log_file(root, round_number), rng, startup, window):
            break
        stop(process, round_number % 5 == 0, figures)
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
        timing = timed_reference(root)
        run_seconds = sum(timing)
        figures = torture(root, args.kills, args.seed, timing, args.point)
        final = subprocess.run(command("data"), cwd=root, capture_output=True, text=True)
        if final.returncode != 0:
            print(final.stderr)
            return 1
        streams = [p.read_text() for p in sorted((root / "streams").glob("0*.jsonl"))][1:]
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
            f"uninterrupted run: {run_seconds:.1f} s ({timing[0]:.1f} s start-up), "
            f"{len(expected[0])} opened, "
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
