"""`btkit report`'s "Trades (fills)" section: realised PnL, fees and the model-vs-fill gap."""

from __future__ import annotations

import asyncio
import json

import pytest

from btkit.adapters.store.ledger import SqliteLedger
from btkit.domain.model import ClosedResult, OpenSignal, Pnl
from btkit.domain.orders import Fill, client_order_id

HOUR = 3_600_000


def signal(n: int, strategy: str = "x") -> OpenSignal:
    return OpenSignal(
        f"s{n}", "long", 100.0, 110.0, 90.0, 60, "ETHBTC", strategy, "binance", n * HOUR
    )


def close(sig: OpenSignal, price: float) -> ClosedResult:
    at = sig.timestamp + HOUR // 2
    return ClosedResult(
        strategy_name=sig.strategy_name,
        exchange_name="binance",
        symbol="ETHBTC",
        timestamp=at,
        current_price=price,
        signal=sig,
        close_reason="take_profit",
        close_timestamp=at,
        pnl=Pnl((price / 100.0 - 1) * 100 - 0.4, 100.0, price),
    )


def fills(sig: OpenSignal, buy: float, sell: float | None) -> list[Fill]:
    entry = client_order_id(sig.id, "entry")
    found = [
        Fill(f"{sig.id}-b", entry, "ETHBTC", "buy", 2.0, buy, 2.0 * buy * 0.001, sig.timestamp)
    ]
    if sell is not None:
        exit_ = client_order_id(sig.id, "exit")
        fee = 2.0 * sell * 0.001
        found.append(
            Fill(f"{sig.id}-s", exit_, "ETHBTC", "sell", 2.0, sell, fee, sig.timestamp + 1)
        )
    return found


@pytest.fixture
def ledger_with_events(project):
    """Two closed signals and an open one of strategy x; no fills yet."""
    ledger = SqliteLedger(project.root / "data" / "btkit.sqlite")
    for n, price in ((1, 110.0), (2, 95.0)):
        ledger.write_opened(signal(n))
        ledger.write_closed(close(signal(n), price))
    ledger.write_opened(signal(3))
    yield ledger
    ledger.close()


def report(cli, *args: str) -> str:
    done = cli.run("report", "x", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_fills_the_report_is_unchanged(cli, ledger_with_events):
    before_json = report(cli, "--format", "json")
    before_md = report(cli)
    log = ledger_with_events.order_log("other", "binance", "paper")  # another strategy's fills
    asyncio.run(log.record_fills("s1", fills(signal(1, "other"), 100.0, 110.0)))
    assert report(cli, "--format", "json") == before_json
    assert report(cli) == before_md
    assert "trades" not in json.loads(before_json)
    assert "Trades (fills)" not in before_md


def test_fills_give_realised_pnl_fees_and_the_gap_per_trade(cli, ledger_with_events):
    log = ledger_with_events.order_log("x", "binance", "paper")
    asyncio.run(log.record_fills("s1", fills(signal(1), 100.5, 109.0)))
    asyncio.run(log.record_fills("s2", fills(signal(2), 100.0, 95.5)))
    asyncio.run(log.record_fills("s3", fills(signal(3), 101.0, None)))
    document = json.loads(report(cli, "--format", "json"))
    section = document["trades"]
    first, second, third = section["trades"]
    assert (first["signal_id"], first["status"], first["mode"]) == ("s1", "closed", "paper")
    assert first["entry_gap_percent"] == pytest.approx(0.5)  # paid 100.5 for a 100 model price
    assert first["exit_gap_percent"] == pytest.approx((109.0 / 110.0 - 1) * 100)
    fees1 = 2.0 * 100.5 * 0.001 + 2.0 * 109.0 * 0.001
    assert first["fees"] == pytest.approx(fees1)
    assert first["realised"] == pytest.approx(2.0 * (109.0 - 100.5) - fees1)
    fees2 = 2.0 * 100.0 * 0.001 + 2.0 * 95.5 * 0.001
    assert second["realised"] == pytest.approx(2.0 * (95.5 - 100.0) - fees2)
    assert second["exit_gap_percent"] == pytest.approx((95.5 / 95.0 - 1) * 100)
    assert (third["status"], third["realised"], third["exit_model"]) == ("open", None, None)
    totals = section["totals"]
    assert (totals["trades"], totals["closed"]) == (3, 2)
    assert totals["realised"] == pytest.approx(first["realised"] + second["realised"])
    assert totals["fees"] == pytest.approx(fees1 + fees2 + 2.0 * 101.0 * 0.001)
    assert totals["average_entry_gap_percent"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert document["summary"]["trades"] == 2  # the model's figures are untouched

    assert "Trades (fills)" in report(cli)  # on the terminal too
    markdown = (cli.project.root / "logs" / "live" / "x.md").read_text()
    assert "| Trades with fills | 3 (2 closed, 1 open) |" in markdown
    assert "| s1 | ETHBTC | paper | closed | 2 | 100 | 100.5 | +0.5000% |" in markdown
    assert markdown.index("## Trades (fills)") < markdown.index("## Events")


def test_the_report_filters_apply_to_the_trades(cli, ledger_with_events):
    log = ledger_with_events.order_log("x", "binance", "paper")
    asyncio.run(log.record_fills("s1", fills(signal(1), 100.5, 109.0)))
    asyncio.run(log.record_fills("s2", fills(signal(2), 100.0, 95.5)))
    since = "1970-01-01T01:30"  # s2 and s3 opened after it
    document = json.loads(report(cli, "--format", "json", "--since", since))
    assert [t["signal_id"] for t in document["trades"]["trades"]] == ["s2"]
