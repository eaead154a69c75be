"""Paper order round trips per second, and how the wallet's size slows them.

    python bench/paper_orders.py [--round-trips N] [--symbols K]

Each round trip is what the order flow does per signal: a market buy walking a
20-level book, an OCO list resting, its cancel, a market sell. Every call appends
its change to the wallet's journal and fsyncs it before it returns; every 500
changes the whole snapshot is rewritten, so the cost still grows slowly with the
wallet's history. Prints round trips per second per block of trips, the
snapshot's size, and CPU time beside wall time
(a shared machine's wall time says more about the neighbours). K symbols trade
concurrently on one event loop. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from btkit.domain.candles import Candles
from btkit.domain.orders import (
    OrderBook,
    OrderRequest,
    ProtectionRequest,
    client_order_id,
)
from btkit.settings import Settings
from btkit.wiring.paper import paper_broker


class Book:
    async def order_book(self, symbol: str, limit: int) -> OrderBook:
        asks = tuple((100.0 + i * 0.05, 0.4) for i in range(min(limit, 20)))
        bids = tuple((99.95 - i * 0.05, 0.4) for i in range(min(limit, 20)))
        return OrderBook(symbol, bids, asks, 0)


class NoCandles:
    async def candles(self, symbol: str, interval: str, limit: int, when: int) -> Candles:
        return Candles.from_rows(())

    async def average_price(self, symbol: str, when: int) -> float | None:
        return 100.0


class Clock:
    def now_ms(self) -> int:
        return 1_700_000_000_000

    async def sleep_until(self, when_ms: int) -> None:
        pass

    def join(self) -> None:
        pass

    def leave(self) -> None:
        pass


async def round_trip(paper: object, symbol: str, n: int) -> None:
    sid = f"{symbol}-{n}"
    place = paper.place  # type: ignore[attr-defined]
    await place(
        OrderRequest(sid, "entry", symbol, "buy", "market", 1.0, client_order_id(sid, "entry"))
    )
    lid = client_order_id(sid, "protection")
    await paper.protect(ProtectionRequest(sid, symbol, 1.0, 120.0, 80.0, lid))  # type: ignore[attr-defined]
    await paper.cancel_protection(symbol, lid)  # type: ignore[attr-defined]
    await place(
        OrderRequest(sid, "exit", symbol, "sell", "market", 1.0, client_order_id(sid, "exit"))
    )


async def main(trips: int, symbols: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), paper_balances={"USDT": 1e12})
        paper = paper_broker(
            settings,
            exchange_name="bench",
            label="bench",
            strategy="s",
            market=NoCandles(),
            clock=Clock(),
            books=Book(),
        )
        path = Path(folder) / "paper" / "bench-s.json"
        names = [f"C{i}USDT" for i in range(symbols)]
        block = max(trips // 5, 1)
        done = 0
        print(f"{symbols} symbol(s), round trip = buy (3 levels) + OCO + cancel + sell (3 levels)")
        while done < trips:
            wall, cpu = time.perf_counter(), time.process_time()
            count = min(block, trips - done)
            for n in range(done, done + count, symbols):
                await asyncio.gather(*(round_trip(paper, s, n) for s in names))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            done += count
            print(
                f"trips {done - count:5d}-{done:5d}: {count / wall:7.1f} round trips/s "
                f"(wall {wall:6.2f} s, cpu {cpu:6.2f} s), "
                f"wallet {path.stat().st_size / 1e6:6.2f} MB, "
                f"{len(paper.state.trades)} fills"  # type: ignore[attr-defined]
            )
        await paper.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--symbols", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.round_trips, args.symbols))
