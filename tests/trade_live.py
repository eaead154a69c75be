"""Live trading against the Binance stand-in with the real CLI: the server runs in
the test process (it outlives every btkit it kills) and follows btkit's simulated
time; `check_account` asserts what must hold after any run, crash or restart."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from btkit.adapters.store.candle_csv import read_candle_csv
from tests.binance_server import TRADE_KEY, TRADE_SECRET, BinanceServer
from tests.conftest import REPO, Project

QUICK_LONG = """
from btkit import Signal, get_average_price, strategy

@strategy("quick-long", interval="5m", warmup_minutes=10)
async def quick_long(symbol):
    price = await get_average_price(symbol)
    return Signal("long", price, price * 1.003, price * 0.997, 6)
"""
"""Tight take-profit and stop-loss, 6 minutes to expiry: every exit path in a short run."""

START = "2018-01-20T06:00"
QUOTE_START = 1.0


@contextmanager
def stand_in(balances: dict[str, float] | None = None) -> Iterator[BinanceServer]:
    files = {"ETHBTC": read_candle_csv(REPO / "data" / "candles" / "ETHBTC-1m.csv")}
    with BinanceServer(files, balances=balances or {"BTC": QUOTE_START}) as server:
        server.follow_klines = True
        yield server


def trade_env(server: BinanceServer, **extra: str) -> dict[str, str]:
    return {
        "BTKIT_EXCHANGE_URL": server.url,
        "BTKIT_EXCHANGE_RATE_LIMIT_MS": "1",
        "BTKIT_EXCHANGE_TIMEOUT_SECONDS": "5",
        "BTKIT_RETRY_BASE_SECONDS": "0.05",
        "BTKIT_CREDENTIALS__BINANCE__API_KEY": TRADE_KEY,
        "BTKIT_CREDENTIALS__BINANCE__SECRET": TRADE_SECRET,
        **extra,
    }


def live_args(
    end: str, *extra: str, start: str = START, stake: str = "0.01", confirm: bool = True
) -> tuple[str, ...]:
    return (
        "live",
        "ETHBTC",
        "-s",
        "quick-long",
        "-e",
        "binance",
        "--trade",
        "live",
        *(("--confirm-live",) if confirm else ()),
        "--stake",
        stake,
        "--json",
        "--speed",
        "max",
        "--start",
        start,
        "--end",
        end,
        *extra,
    )


def prepare(project: Project) -> None:
    project.write_strategy("quick_long.py", QUICK_LONG)


@dataclass(frozen=True)
class LedgerFill:
    trade_id: str
    client_id: str
    side: str
    amount: float
    price: float
    fee: float


def ledger_fills(project: Project) -> list[LedgerFill]:
    path = project.root / "data" / "btkit.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT trade_id, client_id, side, amount, price, fee FROM fills WHERE mode = 'live'"
        ).fetchall()
    return [LedgerFill(*row) for row in rows]


def halts(project: Project) -> list[tuple[str, str | None]]:
    path = project.root / "data" / "btkit.sqlite"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT symbol, reason FROM halts ORDER BY id").fetchall()
    latest = {symbol: reason for symbol, reason in rows}
    return [(s, r) for s, r in latest.items() if r is not None]


def digest(client_id: str) -> str:
    return client_id.rsplit("-", 1)[-1]


def check_account(
    server: BinanceServer,
    project: Project,
    *,
    halted: bool = False,
    quote_start: float = QUOTE_START,
) -> None:
    """One entry per signal, every position protected or closed, no orphan btk- order,
    the ledger's fills are the exchange's trades, the balances are what the fills say."""
    engine = server.engine
    with server._lock:
        trades = list(engine.trades)
        orders = list(engine.orders.values())
        lists = list(engine.lists.values())
        balances = {a: sum(v) for a, v in engine.balances.items()}
    entries = Counter(o.client_id for o in orders if o.client_id.startswith("btk-e-"))
    assert all(n == 1 for n in entries.values()), f"an entry sent twice: {entries}"
    bought: Counter[str] = Counter()
    sold: Counter[str] = Counter()
    for t in trades:
        (bought if t.order.side == "BUY" else sold)[digest(t.order.client_id)] += t.qty
    open_lists = {digest(item.client_id) for item in lists if item.status == "EXECUTING"}
    for signal, amount in bought.items():
        held = amount * (1 - 0.001) - sold[signal]
        if held >= 0.001:  # more than dust: the exchange must be holding its stop
            assert signal in open_lists, f"position {signal} ({held:g}) without protection"
    resting = {digest(o.client_id) for o in orders if o.open and o.client_id.startswith("btk-")}
    orphans = {s for s in resting if sold[s] > 0 and s not in open_lists}
    assert not orphans, f"orphan orders for closed signals: {orphans}"
    fills = ledger_fills(project)
    assert sorted((f.trade_id, f.client_id, f.side) for f in fills) == sorted(
        (str(t.trade_id), t.order.client_id, t.order.side.lower()) for t in trades
    )
    for f in fills:
        trade = trades[int(f.trade_id) - 1]
        assert abs(f.price - trade.price) < 1e-12
    cost = sum(f.amount * f.price + f.fee for f in fills if f.side == "buy")
    proceeds = sum(f.amount * f.price - f.fee for f in fills if f.side == "sell")
    held = sum(f.amount if f.side == "buy" else -f.amount for f in fills)
    quote = quote_start - cost + proceeds
    slack = 1e-8 * (len(fills) + 1)  # the stand-in answers fees to 8 decimals, keeps all
    assert abs(balances.get("BTC", 0.0) - quote) < slack, (balances, quote, held)
    assert abs(balances.get("ETH", 0.0) - held) < 1e-9, (balances, quote, held)
    assert bool(halts(project)) == halted, halts(project)
