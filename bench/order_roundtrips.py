"""Order round trips per minute that CcxtBroker sustains against the Binance stand-in.

    python bench/order_roundtrips.py [--trips 100]

A round trip is what trading does per signal: a market entry (signed POST), `find`
by client id, and a market exit; with `--oco` rows also an OCO protection placed
and cancelled in between. Each runs with ccxt's own rate limiter for Binance (what
a user gets) and with it at 1 ms (the adapter's own cost). The real ccxt client
signs every request; the stand-in runs in this process on 127.0.0.1, so the
figures are the adapter's and ccxt's overhead, not an exchange's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from btkit.adapters.brokers.ccxt_broker import CcxtBroker  # noqa: E402
from btkit.adapters.exchanges.ccxt_exchange import CcxtOptions, Credentials  # noqa: E402
from btkit.adapters.store.candle_csv import read_candle_csv  # noqa: E402
from btkit.domain.orders import (  # noqa: E402
    OrderRequest,
    ProtectionRequest,
    client_order_id,
)
from tests.binance_server import TRADE_KEY, TRADE_SECRET, BinanceServer  # noqa: E402

AMOUNT = 0.5
NET = 0.499
"""What is left to sell after the buy's fee (charged in ETH), on the 0.001 lot grid."""


async def trips(
    server: BinanceServer, count: int, *, oco: bool, rate_limit_ms: int | None
) -> float:
    options = CcxtOptions(
        base_url=server.url,
        rate_limit_ms=rate_limit_ms,
        credentials=Credentials(TRADE_KEY, TRADE_SECRET),
    )
    broker = CcxtBroker("binance", options)
    try:
        await broker.rules("ETHBTC")  # markets and clock sync: once per process, not timed
        started = time.perf_counter()
        for n in range(count):
            signal = f"bench:{oco}:{rate_limit_ms}:{n}"
            entry = client_order_id(signal, "entry")
            await broker.place(
                OrderRequest(signal, "entry", "ETHBTC", "buy", "market", AMOUNT, entry)
            )
            found = await broker.find("ETHBTC", entry)
            if found is None or found.status != "closed":
                raise SystemExit(f"entry {entry} not found filled: {found}")
            if oco:
                protection = client_order_id(signal, "protection")
                await broker.protect(
                    ProtectionRequest(signal, "ETHBTC", NET, 0.0899, 0.087, protection)
                )
                await broker.cancel_protection("ETHBTC", protection)
            exit_id = client_order_id(signal, "exit")
            await broker.place(
                OrderRequest(signal, "exit", "ETHBTC", "sell", "market", NET, exit_id)
            )
        return time.perf_counter() - started
    finally:
        await broker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=100)
    args = parser.parse_args()
    candles = {"ETHBTC": read_candle_csv(REPO / "data" / "candles" / "ETHBTC-1m.csv")}
    print(
        f"{'round trip':<28} {'rate limit':>12} {'trips':>6} {'seconds':>8} {'trips/min':>10} "
        f"{'requests/trip':>14}"
    )
    for oco in (False, True):
        for rate_limit_ms in (None, 1):
            with BinanceServer(candles, balances={"BTC": 1_000.0}) as server:
                elapsed = asyncio.run(
                    trips(server, args.trips, oco=oco, rate_limit_ms=rate_limit_ms)
                )
                signed = [
                    p
                    for p in server.paths
                    if p.startswith("/api/v3/")
                    and p not in ("/api/v3/exchangeInfo", "/api/v3/time")
                ]
            name = "entry+find+exit" + (" +OCO+cancel" if oco else "")
            limit = "ccxt default" if rate_limit_ms is None else f"{rate_limit_ms} ms"
            print(
                f"{name:<28} {limit:>12} {args.trips:>6} {elapsed:>8.2f} "
                f"{args.trips / elapsed * 60:>10.0f} {len(signed) / args.trips:>14.1f}"
            )


if __name__ == "__main__":
    main()
