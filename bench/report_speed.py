"""Time to build a report from a ledger of 100 000 closed signals.

    python bench/report_speed.py [--signals N]

Fills a temporary ledger with deterministic closed signals (one batch insert),
then times each step of `btkit report`: reading the ledger, the statistics,
the Markdown, the JSON document, the equity picture (stake and drawdown
panels), and what `btkit report` does: the file, the picture and the
terminal form. Printed, not asserted (goal: the Markdown report well under
a second).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from btkit.adapters.report.builder import json_report, markdown_report, write_report_forms
from btkit.adapters.report.picture import draw_equity_curve
from btkit.adapters.store.ledger import Query, SqliteLedger
from btkit.domain.model import ClosedResult, OpenedResult, OpenSignal, Pnl
from btkit.engine.statistics import summarize

START = 1_514_764_800_000


def fill(ledger: SqliteLedger, count: int) -> None:
    rng = random.Random(7)
    opened, closed = [], []
    for n in range(count):
        when = START + n * 3_600_000
        signal = OpenSignal(
            f"sig-{n}",
            "long" if n % 2 else "short",
            100.0,
            101.0,
            99.0,
            60,
            ("BTCUSDT", "ETHUSDT", "SOLUSDT")[n % 3],
            "bench",
            "binance",
            when,
        )
        price = 100.0 + rng.uniform(-1, 1)
        result = ClosedResult(
            strategy_name="bench",
            exchange_name="binance",
            symbol=signal.symbol,
            timestamp=when + 1_800_000,
            current_price=price,
            signal=signal,
            close_reason="time_expired",
            close_timestamp=when + 1_800_000,
            pnl=Pnl(rng.uniform(-1, 1), 100.0, price),
        )
        opened.append(
            OpenedResult(
                strategy_name="bench",
                exchange_name="binance",
                symbol=signal.symbol,
                timestamp=when,
                current_price=100.0,
                signal=signal,
            )
        )
        closed.append(result)
    # record_backtest writes one batch; rewrite its run as the live one for the report.
    run_id = ledger.record_backtest("bench", "binance", START, opened, closed, {})
    ledger._db.execute(
        "UPDATE events SET run_id = 'live', mode = 'live' WHERE run_id = ?", (run_id,)
    )


def timed(label: str, action):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = action()
    print(f"{label:<44} {time.perf_counter() - started:8.3f} s")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ledger = SqliteLedger(Path(folder) / "btkit.sqlite")
        timed(f"fill {args.signals:,} signals", lambda: fill(ledger, args.signals))
        query = Query("bench")
        total = time.perf_counter()
        contents = timed("read ledger", lambda: ledger.read(query))
        timed("statistics", lambda: summarize(contents.trades))
        text = timed("markdown", lambda: markdown_report(contents, query))
        markdown_seconds = time.perf_counter() - total
        timed(
            "btkit report: file, picture, terminal form",
            lambda: write_report_forms(contents, query, Path(folder) / "report.md"),
        )
        timed("json document", lambda: json.dumps(json_report(contents, query)))
        timed(
            "equity picture (png)",
            lambda: draw_equity_curve(contents.trades, "bench", Path(folder) / "bench.png"),
        )
        print(
            f"{'markdown report, end to end':<44} {markdown_seconds:8.3f} s "
            f"({len(text) / 1e6:.1f} MB of Markdown)"
        )
        ledger.close()


if __name__ == "__main__":
    main()
