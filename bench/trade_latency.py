"""Time from tick to entry order sent, with the real CLI trading live on the stand-in.

    python bench/trade_latency.py [--end 2018-01-20T10:00]

Runs `btkit live ETHBTC --trade live --confirm-live --speed max --start ... --end ...`
against the Binance stand-in (in this process, on 127.0.0.1, following btkit's
simulated time). The stand-in stamps, on one clock, when each klines answer left
and when each entry order (`btk-e-...`) arrived. A tick starts when btkit has the
minute's candles, so tick -> order sent is an entry's arrival minus the last klines
answer before it: the strategy's decision, the ledger's intent write, the balance
read, sizing and the signed POST. Prints p50 / p99 / max in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import _new_project  # noqa: E402
from tests.trade_live import live_args, prepare, stand_in, trade_env  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--end", default="2018-01-20T10:00")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = _new_project(Path(folder) / "p")
        prepare(project)
        with stand_in() as server:
            done = project.run(*live_args(args.end), env=trade_env(server))
            if done.returncode != 0:
                raise SystemExit(done.stderr[-2000:])
            timeline = list(server.timeline)
    delays = []
    last_klines = None
    for stamp, kind, what in timeline:
        if kind == "klines":
            last_klines = stamp
        elif what.startswith("btk-e-") and last_klines is not None:
            delays.append((stamp - last_klines) * 1000)
    if not delays:
        raise SystemExit("no entry orders were sent")
    print(f"entries: {len(delays)} (ETHBTC, 06:00 -> {args.end}, --speed max)")
    print(
        f"tick -> entry order sent: p50 {percentile(delays, 0.5):.1f} ms, "
        f"p99 {percentile(delays, 0.99):.1f} ms, max {max(delays):.1f} ms, "
        f"mean {statistics.fmean(delays):.1f} ms"
    )


if __name__ == "__main__":
    main()
