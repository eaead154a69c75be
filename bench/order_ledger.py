"""How fast the ledger records orders and fills, durable (fsync'd) on every await.

    python bench/order_ledger.py [--symbols 50] [--rounds 20]

Each round, every symbol records what one trade writes through the `OrderLog`
port of a fresh `data/btkit.sqlite` in a temporary folder: the entry intent
(`new`), its fills, the filled state, the OCO legs, then `open_trades` and
`realised_since` (the reads a trader makes each tick). The symbols run side by
side on one event loop, as `btkit live` does, so writes queued together share a
commit (group commit on the writer thread). Prints writes per second, the
latency of one awaited write (p50 / p99 / max, ms), the commits made, and the
loop's longest blocking read. Figures, no assertions.

Measured with `python bench/order_ledger.py --symbols 50 --rounds 20` on the 2-core
machine shared with other jobs (load average 4.6): 4 000 awaited writes, 104
writes/s in 38 s, 131 commits (about 30 writes per commit); write latency p50 32 ms,
p99 2.5 s, max 3.5 s (fsync on a busy disk); longest read on the loop 353 ms. The
reads share the writer's connection and its lock, so a read waits for a commit in
progress: a read connection of their own (WAL readers never wait) would remove that.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from btkit.adapters.store.ledger import SqliteLedger
from btkit.adapters.store.order_ledger import SqliteOrderLog
from btkit.domain.orders import (
    Fill,
    OrderState,
    ProtectionState,
    client_order_id,
)


def _order(signal: str, symbol: str, role: str, status: str, filled: float) -> OrderState:
    return OrderState(
        client_order_id(signal, role),  # type: ignore[arg-type]
        symbol,
        "buy" if role == "entry" else "sell",
        "market" if role == "entry" else "limit_maker",
        role,  # type: ignore[arg-type]
        status,  # type: ignore[arg-type]
        1.0,
        filled,
        100.0 if filled else None,
        0.1 * filled,
        1,
    )


async def _trade(log: SqliteOrderLog, symbol: str, n: int, waits: list[float]) -> float:
    signal = f"{symbol}-{n}"
    entry = client_order_id(signal, "entry")
    fills = [Fill(f"{signal}-t{k}", entry, symbol, "buy", 0.5, 100.0, 0.05, n) for k in (1, 2)]
    legs = (
        _order(signal, symbol, "take_profit", "open", 0.0),
        _order(signal, symbol, "stop_loss", "open", 0.0),
    )
    writes = (
        log.record_order(signal, _order(signal, symbol, "entry", "new", 0.0)),
        log.record_fills(signal, fills),
        log.record_order(signal, _order(signal, symbol, "entry", "closed", 1.0)),
        log.record_protection(signal, ProtectionState("L", symbol, "open", legs)),
    )
    for write in writes:
        started = time.perf_counter()
        await write
        waits.append(time.perf_counter() - started)
    started = time.perf_counter()
    log.open_trades(symbol)
    log.realised_since(0)
    return time.perf_counter() - started


async def _run(ledger: SqliteLedger, symbols: int, rounds: int) -> tuple[list[float], float]:
    logs = [ledger.order_log("bench", "binance", "paper") for _ in range(symbols)]
    waits: list[float] = []
    longest_read = 0.0
    for n in range(rounds):
        reads = await asyncio.gather(
            *(_trade(log, f"S{i}USDT", n, waits) for i, log in enumerate(logs))
        )
        longest_read = max(longest_read, *reads)
    return waits, longest_read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ledger = SqliteLedger(Path(folder) / "btkit.sqlite")
        try:
            started = time.perf_counter()
            waits, longest_read = asyncio.run(_run(ledger, args.symbols, args.rounds))
            elapsed = time.perf_counter() - started
            commits = ledger._writer.batches
        finally:
            ledger.close()
    ms = sorted(w * 1000 for w in waits)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{len(waits)} awaited writes ({args.symbols} symbols x {args.rounds} trades x 4)")
    print(f"{len(waits) / elapsed:,.0f} writes/s in {elapsed:.2f} s, {commits} commits")
    print(f"write latency ms: p50 {statistics.median(ms):.2f}  p99 {p99:.2f}  max {ms[-1]:.2f}")
    print(f"longest open_trades + realised_since on the loop: {longest_read * 1000:.2f} ms")


if __name__ == "__main__":
    main()
