"""Kill a live-trading btkit again and again at random order steps; check the account.

    python bench/trade_torture.py [--kills 20] [--seed 13] [--end 2018-01-20T20:00]

Each round runs the real CLI (`--trade live` on the Binance stand-in, which lives in
this process and outlives every kill) with BTKIT_FAULT_KILL_AT set to a random order
step and pass; a round whose run ends before that point finishes the replay. Then a
clean run to the end, and the checks of tests/trade_live.py::check_account: one
entry per signal, every open position protected or closed, no orphan btk- order,
the ledger's fills equal the exchange's trades, balances equal the fills, no halt.
Prints the kills survived with everything consistent.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import _new_project  # noqa: E402
from tests.test_trade_crash import ORDER_POINTS  # noqa: E402
from tests.trade_live import check_account, live_args, prepare, stand_in, trade_env  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--end", default="2018-01-20T20:00")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    kills = rounds = 0
    with tempfile.TemporaryDirectory() as folder:
        project = _new_project(Path(folder) / "p")
        prepare(project)
        with stand_in() as server:
            while kills < args.kills and rounds < args.kills * 3:
                rounds += 1
                point = f"{rng.choice(ORDER_POINTS)}:{rng.randint(1, 4)}"
                run = project.run(
                    *live_args(args.end), env=trade_env(server, BTKIT_FAULT_KILL_AT=point)
                )
                if run.returncode == -signal.SIGKILL:
                    kills += 1
                elif run.returncode != 0:
                    raise SystemExit(f"round {rounds} ({point}) failed:\n{run.stderr[-2000:]}")
                else:
                    break  # the replay reached --end: nothing left to kill
            done = project.run(*live_args(args.end), env=trade_env(server))
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            check_account(server, project)
            trades = len(server.engine.trades)
    print(
        f"kills survived: {kills} of {rounds} rounds (seed {args.seed}), account consistent: "
        f"{trades} exchange trades == ledger fills, one entry per signal, no orphan, no halt "
        f"({time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
