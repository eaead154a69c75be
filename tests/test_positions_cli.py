"""`btkit positions`: the real CLI on a ledger filled through the OrderLog API."""

from __future__ import annotations

import asyncio
import json

import pytest

from btkit.adapters.store.ledger import SqliteLedger
from btkit.domain.orders import Fill, OrderState, ProtectionState, client_order_id

pytestmark = pytest.mark.system  # every test runs the real CLI in a process

ENTRY = client_order_id("sig-eth", "entry")


def leg(role: str, kind: str, price: float, status: str = "open") -> OrderState:
    return OrderState(
        client_id=client_order_id("sig-eth", role),  # type: ignore[arg-type]
        symbol="ETHBTC",
        side="sell",
        type=kind,  # type: ignore[arg-type]
        role=role,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        amount=2.0,
        filled=0.0,
        average=None,
        fee=0.0,
        timestamp=2_000,
        price=price,
        stop_price=price if role == "stop_loss" else None,
        list_client_id=client_order_id("sig-eth", "protection"),
    )


def fill(trade: str, client: str, symbol: str, side: str, amount: float, price: float) -> Fill:
    return Fill(trade, client, symbol, side, amount, price, amount * price * 0.001, 1_000)  # type: ignore[arg-type]


async def trade(ledger: SqliteLedger) -> None:
    """A paper ETHBTC position with its OCO protection, a closed LTCBTC trade, a halt."""
    paper = ledger.order_log("my-strategy", "binance", "paper")
    entry = OrderState(ENTRY, "ETHBTC", "buy", "market", "entry", "new", 2.0, 0.0, None, 0.0, 900)
    await paper.record_order("sig-eth", entry)
    await paper.record_fills(
        "sig-eth",
        [
            fill("t1", ENTRY, "ETHBTC", "buy", 1.5, 0.09),
            fill("t2", ENTRY, "ETHBTC", "buy", 0.5, 0.094),
        ],
    )
    done = OrderState(ENTRY, "ETHBTC", "buy", "market", "entry", "closed", 2.0, 2.0, 0.091, 0.0, 1)
    await paper.record_order("sig-eth", done)
    legs = (leg("take_profit", "limit_maker", 0.1), leg("stop_loss", "stop_loss_limit", 0.085))
    listed = ProtectionState(client_order_id("sig-eth", "protection"), "ETHBTC", "open", legs)
    await paper.record_protection("sig-eth", listed)
    ltc = client_order_id("sig-ltc", "entry")
    await paper.record_fills(
        "sig-ltc",
        [
            fill("t3", ltc, "LTCBTC", "buy", 3.0, 0.016),
            fill("t4", client_order_id("sig-ltc", "exit"), "LTCBTC", "sell", 3.0, 0.017),
        ],
    )
    live = ledger.order_log("my-strategy", "binance", "live")
    await live.record_halt("XLMBTC", "the exchange holds 5 XLM the ledger does not know", 1_000)


@pytest.fixture
def traded(project):
    ledger = SqliteLedger(project.root / "data" / "btkit.sqlite")
    try:
        asyncio.run(trade(ledger))
    finally:
        ledger.close()
    return project


def last_close(project, symbol: str) -> float:
    last = (project.root / "data" / "candles" / f"{symbol}-1m.csv").read_text().splitlines()[-1]
    return float(last.split(",")[4])


def test_positions_json_shows_the_open_position_its_orders_pnl_and_halts(traded):
    done = traded.run("positions", "--json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    (eth,) = view["positions"]  # the LTCBTC trade is closed: not a position
    price = last_close(traded, "ETHBTC")
    entry = (1.5 * 0.09 + 0.5 * 0.094) / 2.0
    fees = (1.5 * 0.09 + 0.5 * 0.094) * 0.001
    assert (eth["symbol"], eth["mode"], eth["signal_id"]) == ("ETHBTC", "paper", "sig-eth")
    assert eth["amount"] == pytest.approx(2.0)
    assert eth["entry_price"] == pytest.approx(entry)
    assert eth["price"] == pytest.approx(price)
    assert eth["price_source"].startswith("last close in data/candles/ETHBTC-1m.csv (2018-")
    assert eth["unrealised_pnl"] == pytest.approx(2.0 * (price - entry) - fees)
    assert [(o["role"], o["status"]) for o in eth["orders"]] == [
        ("entry", "closed"),
        ("take_profit", "open"),
        ("stop_loss", "open"),
    ]
    assert view["halts"] == [
        {
            "strategy": "my-strategy",
            "exchange": "binance",
            "mode": "live",
            "symbol": "XLMBTC",
            "reason": "the exchange holds 5 XLM the ledger does not know",
            "since": 1_000,
        }
    ]


def test_positions_table_names_the_price_source_and_the_halt(traded):
    done = traded.run("positions")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "Open positions" in text
    assert "take_profit limit_maker open @ 0.1" in text
    assert "TP 0.1 + SL 0.085" in text
    assert "stop_loss stop_loss_limit open @ 0.085" in text
    assert "ETHBTC (sig-eth): price from last close in data/candles/ETHBTC-1m.csv" in text
    assert "Halted symbols" in text
    assert "the exchange holds 5 XLM the ledger does not know" in text
    assert "LTCBTC" not in text


def test_no_ledger_or_no_positions_say_so(project):
    done = project.run("positions")
    assert done.returncode == 0, done.stderr
    assert "No open positions: there is no ledger at data/btkit.sqlite yet" in done.stdout
    assert not (project.root / "data" / "btkit.sqlite").exists()  # reading never creates it
    SqliteLedger(project.root / "data" / "btkit.sqlite").close()
    done = project.run("positions")
    assert "No open positions in data/btkit.sqlite." in done.stdout
    assert "No halted symbols." in done.stdout
    assert json.loads(project.run("positions", "--json").stdout)["positions"] == []


def test_a_position_without_candles_says_why_it_has_no_price(traded):
    (traded.root / "data" / "candles" / "ETHBTC-1m.csv").unlink()
    view = json.loads(traded.run("positions", "--json").stdout)
    (eth,) = view["positions"]
    assert eth["price"] is None
    assert eth["unrealised_pnl"] is None
    assert eth["price_source"].startswith("no price: No candle file for ETHBTC")


def test_a_damaged_ledger_is_an_error_and_left_alone(project):
    path = project.root / "data" / "btkit.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    done = project.run("positions")
    assert done.returncode == 1
    assert "Cannot read the ledger" in done.stderr
    assert path.read_bytes() == b"not a database at all" * 100


def test_status_shows_halted_symbols_and_their_reason(traded):
    done = traded.run("status")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "No open signals" in text  # the state files, as before
    assert (
        "trading halted: my-strategy on binance (live) XLMBTC since 1970-01-01 00:00 UTC: "
        "the exchange holds 5 XLM the ledger does not know. No new positions open there"
    ) in text


def test_a_resumed_symbol_is_no_longer_halted(traded):
    ledger = SqliteLedger(traded.root / "data" / "btkit.sqlite")
    try:
        live = ledger.order_log("my-strategy", "binance", "live")
        asyncio.run(live.record_halt("XLMBTC", None, 2_000))
    finally:
        ledger.close()
    assert "trading halted" not in traded.run("status").stdout
    assert json.loads(traded.run("positions", "--json").stdout)["halts"] == []
