"""Orders, fills and halts in the real SQLite ledger (schema 3): the `OrderLog` port."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from btkit.adapters.store.ledger import SqliteLedger
from btkit.adapters.store.order_ledger import current_halts, held_positions, strategy_trades
from btkit.domain.errors import StorageError
from btkit.domain.orders import Fill, OrderState, ProtectionState, client_order_id
from btkit.ports import OrderLog
from tests.conftest import REPO, Lines
from tests.trading_fakes import FakeOrderLog

SCHEMA2 = Path(__file__).parent / "data" / "ledger-schema2.sqlite"


def order(signal: str, role: str = "entry", status: str = "new", filled: float = 0.0, **kw):
    side = "buy" if role == "entry" else "sell"
    values = {
        "client_id": client_order_id(signal, role),  # type: ignore[arg-type]
        "symbol": "ETHBTC",
        "side": side,
        "type": "market",
        "role": role,
        "status": status,
        "amount": 1.0,
        "filled": filled,
        "average": 100.0 if filled else None,
        "fee": 0.1 * filled,
        "timestamp": 1_000,
    }
    values.update(kw)
    return OrderState(**values)  # type: ignore[arg-type]


def fill(trade_id: str, side: str, amount: float, price: float, when: int, signal: str = "s1"):
    role = "entry" if side == "buy" else "exit"
    fee = amount * price * 0.001
    return Fill(trade_id, client_order_id(signal, role), "ETHBTC", side, amount, price, fee, when)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path):
    opened = SqliteLedger(tmp_path / "btkit.sqlite")
    yield opened
    opened.close()


@pytest.fixture(params=["fake", "sqlite"])
def log(request, tmp_path) -> Iterator[OrderLog]:
    """The same script must give the same answers on the fake and on the real ledger."""
    if request.param == "fake":
        yield FakeOrderLog()
        return
    opened = SqliteLedger(tmp_path / "btkit.sqlite")
    yield opened.order_log("s", "binance", "paper")
    opened.close()


def test_an_order_reads_back_as_its_latest_state_in_the_order_first_recorded(log):
    async def script() -> None:
        await log.record_order("s1", order("s1"))
        await log.record_order("s1", order("s1", "exit"))
        await log.record_order("s1", order("s1", status="closed", filled=1.0))

    asyncio.run(script())
    entry, exit_ = log.orders("s1")
    assert (entry.role, entry.status, entry.filled, entry.average) == ("entry", "closed", 1.0, 100)
    assert (exit_.role, exit_.status) == ("exit", "new")
    assert log.orders("other") == []


def test_fills_are_recorded_once_by_trade_id(log):
    first = [fill("t1", "buy", 0.5, 100.0, 10), fill("t2", "buy", 0.5, 101.0, 11)]

    async def script() -> tuple[list[Fill], list[Fill]]:
        new = await log.record_fills("s1", first)
        again = await log.record_fills("s1", [*first, fill("t3", "sell", 1.0, 110.0, 20)])
        return new, again

    new, again = asyncio.run(script())
    assert new == first
    assert [f.trade_id for f in again] == ["t3"]
    assert [f.trade_id for f in log.fills("s1")] == ["t1", "t2", "t3"]


def test_open_trades_are_held_positions_and_orders_not_final(log):
    async def script() -> None:
        await log.record_fills("held", [fill("t1", "buy", 1.0, 100.0, 10, "held")])
        await log.record_fills(
            "done",
            [fill("t2", "buy", 0.3, 100.0, 10, "done"), fill("t3", "buy", 0.7, 100.0, 10, "done")],
        )
        await log.record_fills("done", [fill("t4", "sell", 1.0, 101.0, 20, "done")])
        await log.record_order("pending", order("pending", status="new"))
        await log.record_order("gone", order("gone", status="rejected"))

    asyncio.run(script())
    assert log.open_trades("ETHBTC") == ["held", "pending"]
    assert log.open_trades("LTCBTC") == []


def test_realised_pnl_counts_closed_trades_after_fees(log):
    async def script() -> None:
        await log.record_fills(
            "a", [fill("t1", "buy", 1.0, 100.0, 100, "a"), fill("t2", "sell", 1.0, 110.0, 200, "a")]
        )
        await log.record_fills(
            "b", [fill("t3", "buy", 2.0, 100.0, 300, "b"), fill("t4", "sell", 2.0, 95.0, 400, "b")]
        )

    asyncio.run(script())
    a = 10.0 - 0.1 - 0.11
    b = -10.0 - 0.2 - 0.19
    assert log.realised_since(0) == pytest.approx(a + b)
    assert log.realised_since(300) == pytest.approx(b)
    assert log.realised_since(500) == 0.0


def test_a_protection_records_each_leg_as_an_order(log):
    legs = (
        order("s1", "take_profit", "open", type="limit_maker", price=110.0, list_client_id="L"),
        order(
            "s1", "stop_loss", "open", type="stop_loss_limit", stop_price=95.0, list_client_id="L"
        ),
    )
    asyncio.run(log.record_protection("s1", ProtectionState("L", "ETHBTC", "open", legs)))
    assert [(o.role, o.list_client_id) for o in log.orders("s1")] == [
        ("take_profit", "L"),
        ("stop_loss", "L"),
    ]
    assert log.open_trades("ETHBTC") == ["s1"]


# --- the real ledger only ----------------------------------------------------------


def test_a_trade_opened_before_the_day_and_closed_in_it_counts_for_the_day(ledger):
    log = ledger.order_log("s", "binance", "live")
    fills = [fill("t1", "buy", 1.0, 100.0, 100), fill("t2", "sell", 1.0, 90.0, 200)]
    asyncio.run(log.record_fills("s1", fills))
    assert log.realised_since(150) == pytest.approx(-10.0 - 0.1 - 0.09)
    # an open position has realised nothing yet (the fake counts its cost)
    asyncio.run(log.record_fills("s2", [fill("t3", "buy", 1.0, 100.0, 300, "s2")]))
    assert log.realised_since(250) == 0.0


def test_the_same_state_recorded_again_adds_no_row_and_halts_keep_their_history(ledger):
    log = ledger.order_log("s", "binance", "live")

    async def script() -> None:
        for _ in range(3):  # a reconcile timer asking again and again
            await log.record_order("s1", order("s1", status="open"))
        await log.record_halt("ETHBTC", "balance differs: 0.5 ETH missing", 1_000)
        await log.record_halt("ETHBTC", "balance differs: 0.5 ETH missing", 2_000)
        await log.record_halt("LTCBTC", "circuit breaker: daily loss 51 USDT", 1_000)
        await log.record_halt("LTCBTC", None, 3_000)

    asyncio.run(script())
    db = sqlite3.connect(ledger.path)
    assert db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 1
    assert db.execute("SELECT symbol, reason FROM halts ORDER BY id").fetchall() == [
        ("ETHBTC", "balance differs: 0.5 ETH missing"),
        ("LTCBTC", "circuit breaker: daily loss 51 USDT"),
        ("LTCBTC", None),
    ]
    db.close()
    halts = current_halts(ledger.connection)
    assert [(h.symbol, h.reason, h.since) for h in halts] == [
        ("ETHBTC", "balance differs: 0.5 ETH missing", 1_000)
    ]


def test_logs_are_bound_to_strategy_mode_and_run(ledger):
    paper = ledger.order_log("s", "binance", "paper")
    live = ledger.order_log("s", "binance", "live")
    other = ledger.order_log("t", "binance", "paper")
    asyncio.run(paper.record_fills("s1", [fill("t1", "buy", 1.0, 100.0, 10)]))
    assert live.fills("s1") == other.fills("s1") == []
    # the same trade id under another strategy is its own (a paper wallet of its own)
    assert asyncio.run(other.record_fills("s1", [fill("t1", "buy", 1.0, 100.0, 10)]))
    ledger.start_run("s", "binance", 5)  # a replay started over reuses its signal ids
    assert paper.fills("s1") == []
    assert paper.open_trades("ETHBTC") == []
    assert len(held_positions(ledger.connection)) == 2  # the older run's positions still show


def test_a_nan_is_refused_and_nothing_is_written(ledger):
    log = ledger.order_log("s", "binance", "live")
    with pytest.raises(StorageError, match="average is nan"):
        asyncio.run(log.record_order("s1", order("s1", average=float("nan"))))
    with pytest.raises(StorageError, match="price is nan"):
        asyncio.run(log.record_fills("s1", [fill("t1", "buy", 1.0, float("nan"), 1)]))
    assert log.orders("s1") == []
    assert log.fills("s1") == []


def test_concurrent_writes_share_commits_and_each_is_answered(ledger):
    log = ledger.order_log("s", "binance", "live")

    async def script() -> list[list[Fill]]:
        return await asyncio.gather(
            *(
                log.record_fills(f"s{n}", [fill(f"t{n}", "buy", 1.0, 100.0, n, f"s{n}")])
                for n in range(200)
            ),
            *(
                log.record_order(f"s{n}", order(f"s{n}", status="closed", filled=1.0))
                for n in range(200)
            ),
        )

    answers = asyncio.run(script())
    assert all(len(a) == 1 for a in answers[:200])
    assert ledger._writer.batches < 400  # group commit: writes queued together share one
    assert len(log.open_trades("ETHBTC")) == 200


def test_a_schema_2_ledger_is_migrated_in_place_keeping_every_row(tmp_path):
    path = tmp_path / "btkit.sqlite"
    shutil.copy(SCHEMA2, path)
    before = sqlite3.connect(path)
    assert before.execute("PRAGMA user_version").fetchone()[0] == 2
    events = before.execute("SELECT * FROM events ORDER BY seq").fetchall()
    deliveries = before.execute("SELECT * FROM deliveries ORDER BY 1, 4").fetchall()
    runs = before.execute("SELECT * FROM runs").fetchall()
    before.close()
    assert len(events) == 32

    ledger = SqliteLedger(path)
    try:
        log = ledger.order_log("my-strategy", "replay", "paper")
        asyncio.run(log.record_fills("s1", [fill("t1", "buy", 1.0, 100.0, 10)]))
        assert [f.trade_id for f in log.fills("s1")] == ["t1"]
    finally:
        ledger.close()
    after = sqlite3.connect(path)
    assert after.execute("PRAGMA user_version").fetchone()[0] == 3
    assert after.execute("SELECT * FROM events ORDER BY seq").fetchall() == events
    assert after.execute("SELECT * FROM deliveries ORDER BY 1, 4").fetchall() == deliveries
    assert after.execute("SELECT * FROM runs").fetchall() == runs
    after.close()
    reader = SqliteLedger.open_for_reading(path)
    try:
        assert [r.signal_id for r in strategy_trades(reader.connection, "my-strategy", None)] == [
            "s1"
        ]
    finally:
        reader.close()


WRITER = """
import asyncio, sys
from pathlib import Path
from btkit.adapters.store.ledger import SqliteLedger
from btkit.domain.orders import Fill, OrderState

async def main() -> None:
    log = SqliteLedger(Path(sys.argv[1])).order_log("s", "binance", "live")
    n = 0
    while True:
        n += 1
        await log.record_order(f"s{n}", OrderState(f"c{n}", "ETHBTC", "buy", "market",
            "entry", "closed", 1.0, 1.0, 100.0, 0.1, n))
        await log.record_fills(f"s{n}", [Fill(f"t{n}", f"c{n}", "ETHBTC", "buy", 1.0, 100.0,
            0.1, n)])
        print(f"ack {n}", flush=True)

asyncio.run(main())
"""


def test_every_acknowledged_write_survives_a_sigkill(tmp_path):
    path = tmp_path / "btkit.sqlite"
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        try:
            lines = Lines(writer.stdout)
            lines.wait_for(lambda line: line.strip() == "ack 50")
            writer.send_signal(signal.SIGKILL)
            assert writer.wait(timeout=60) == -signal.SIGKILL
        finally:
            writer.kill()
    acked = {int(line.split()[1]) for line in lines.text().splitlines() if line.startswith("ack")}
    assert len(acked) >= 50
    ledger = SqliteLedger(path)
    try:
        log = ledger.order_log("s", "binance", "live")
        for n in acked:
            assert [f.trade_id for f in log.fills(f"s{n}")] == [f"t{n}"]
            assert [o.status for o in log.orders(f"s{n}")] == ["closed"]
    finally:
        ledger.close()


def test_the_sqlite_order_log_has_the_ports_methods_exactly(ledger):
    import inspect

    from btkit.ports import OrderLog as Port

    real = ledger.order_log("s", "binance", "live")
    names = [n for n in vars(Port) if not n.startswith("_")]
    assert {"record_order", "record_fills", "open_trades", "realised_since"} <= set(names)
    for name in names:
        wanted, found = getattr(Port, name), getattr(real, name)
        assert inspect.iscoroutinefunction(wanted) == inspect.iscoroutinefunction(found), name
        expected = list(inspect.signature(wanted).parameters)[1:]  # without self
        assert list(inspect.signature(found).parameters) == expected, name
