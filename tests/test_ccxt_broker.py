"""CcxtBroker: the real ccxt client against the signed Binance stand-in, in-process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from btkit.adapters.brokers.ccxt_broker import CcxtBroker
from btkit.adapters.exchanges.ccxt_exchange import CcxtExchange, CcxtOptions, Credentials
from btkit.adapters.exchanges.retry import RetryPolicy
from btkit.adapters.store.candle_csv import read_candle_csv
from btkit.domain.errors import (
    ConfigError,
    ExchangeError,
    InsufficientFundsError,
    OrderError,
    OrderRejectedError,
    OrderUncertainError,
    PermanentExchangeError,
)
from btkit.domain.orders import OrderRequest, ProtectionRequest, client_order_id
from btkit.settings import Settings
from btkit.wiring.brokers import live_broker
from tests.binance_server import TRADE_KEY, TRADE_SECRET, BinanceServer
from tests.fakes import FakeClock

REPO = Path(__file__).resolve().parent.parent
SIGNAL = "always-long:ETHBTC:1516427580000"
ENTRY = client_order_id(SIGNAL, "entry")
LIST = client_order_id(SIGNAL, "protection")
PRICE = 0.08826199
"""ETHBTC's price at the stand-in's first "now" (the open of 2018-01-20 05:53)."""


@pytest.fixture
def binance():
    files = {
        s: read_candle_csv(REPO / "data" / "candles" / f"{s}-1m.csv") for s in ("ETHBTC", "LTCBTC")
    }
    with BinanceServer(files, balances={"BTC": 1.0, "ETH": 0.0}) as server:
        yield server


def options(server: BinanceServer, *, key: str = TRADE_KEY, secret: str = TRADE_SECRET) -> Any:
    return CcxtOptions(
        base_url=server.url,
        timeout_ms=10_000,
        rate_limit_ms=1,
        retry=RetryPolicy(max_retries=3, base_seconds=0.01, cap_seconds=0.05),
        credentials=Credentials(key, secret),
    )


def run(server: BinanceServer, scenario: Callable[[CcxtBroker], Awaitable[Any]], **kw: Any) -> Any:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> Any:
        broker = CcxtBroker("binance", options(server, **kw), sleep=sleep)
        try:
            return await scenario(broker)
        finally:
            await broker.close()

    result = asyncio.run(main())
    return result, waits


def entry(amount: float = 0.5, client_id: str = ENTRY) -> OrderRequest:
    return OrderRequest(SIGNAL, "entry", "ETHBTC", "buy", "market", amount, client_id)


async def until(condition: Callable[[], bool], deadline_s: float = 60.0) -> None:
    """Wait for a condition with a deadline, never a fixed time (a busy CI machine)."""
    stop = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < stop, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


def order_posts(server: BinanceServer) -> int:
    return sum(1 for m, p, _ in server.order_requests if (m, p) == ("POST", "/api/v3/order"))


def test_a_market_entry_fills_and_the_balances_equal_the_fills(binance):
    async def scenario(broker):
        placed = await broker.place(entry())
        return (
            placed,
            await broker.find("ETHBTC", ENTRY),
            await broker.balances(),
            await broker.fills("ETHBTC", 0),
        )

    (placed, found, balances, fills), _ = run(binance, scenario)
    assert placed.status == "closed"
    assert placed.filled == pytest.approx(0.5)
    assert placed.client_id == ENTRY
    assert placed.role == "entry"
    assert placed.type == "market"
    assert placed.average == pytest.approx(PRICE)
    # Binance charges a buy's fee in the base asset; the port counts it in quote.
    assert placed.fee == pytest.approx(0.5 * 0.001 * PRICE)
    assert found == placed
    # ... and a fill's amount is what the account received: what can be protected and sold
    assert [(f.client_id, f.side) for f in fills] == [(ENTRY, "buy")]
    assert fills[0].amount == pytest.approx(0.5 - 0.0005)
    assert balances["BTC"].free == pytest.approx(1.0 - placed.filled * PRICE)
    assert balances["ETH"].total == pytest.approx(sum(f.amount for f in fills))
    assert sum(f.fee for f in fills) == pytest.approx(placed.fee)


def test_several_partial_executions_make_one_order_and_several_fills(binance):
    binance.engine.fill_parts = 3

    async def scenario(broker):
        return await broker.place(entry(0.9)), await broker.fills("ETHBTC", 0)

    (placed, fills), _ = run(binance, scenario)
    assert placed.status == "closed"
    assert placed.filled == pytest.approx(0.9)
    assert len(fills) == 3
    assert sum(f.amount for f in fills) == pytest.approx(0.9 * (1 - 0.001))  # net of fees
    assert placed.average == pytest.approx(sum(f.price for f in fills) / 3)
    assert placed.fee == pytest.approx(sum(f.fee for f in fills))


def test_an_unknown_client_id_is_none_and_rules_come_from_the_market(binance):
    async def scenario(broker):
        return (
            await broker.find("ETHBTC", "btk-e-000000000000000000000000"),
            await broker.cancel("ETHBTC", "btk-e-000000000000000000000000"),
            await broker.find_protection("ETHBTC", LIST),
            await broker.rules("ETHBTC"),
        )

    (found, cancelled, protection, rules), _ = run(binance, scenario)
    assert found is None
    assert cancelled is None
    assert protection is None
    assert (rules.base, rules.quote, rules.amount_step, rules.price_step) == (
        "ETH",
        "BTC",
        0.001,
        0.000001,
    )
    assert (rules.min_amount, rules.min_notional, rules.taker_fee, rules.has_oco) == (
        0.001,
        0.0001,
        0.001,
        True,
    )


def test_a_resting_limit_order_is_listed_then_cancelled_and_its_funds_freed(binance):
    limit = OrderRequest(SIGNAL, "entry", "ETHBTC", "buy", "limit", 1.0, ENTRY, price=0.08)

    async def scenario(broker):
        placed = await broker.place(limit)
        listed = await broker.open_orders("ETHBTC")
        locked = binance.balance("BTC")
        cancelled = await broker.cancel("ETHBTC", ENTRY)
        again = await broker.cancel("ETHBTC", ENTRY)
        return placed, listed, locked, cancelled, again, await broker.open_orders("ETHBTC")

    (placed, listed, locked, cancelled, again, after), _ = run(binance, scenario)
    assert placed.status == "open"
    assert placed.price == 0.08
    assert [o.client_id for o in listed] == [ENTRY]
    assert locked == pytest.approx((1.0 - 0.08, 0.08))
    assert cancelled is not None
    assert cancelled.status == "canceled"
    assert again == cancelled  # already final: its state, not an error
    assert after == []
    assert binance.balance("BTC") == pytest.approx((1.0, 0.0))


def protection(take_profit: float, stop_loss: float, amount: float = 0.499) -> ProtectionRequest:
    return ProtectionRequest(SIGNAL, "ETHBTC", amount, take_profit, stop_loss, LIST)


def test_an_oco_leg_fills_and_the_other_expires(binance):
    async def scenario(broker):
        await broker.place(entry())
        placed = await broker.protect(protection(0.0893, 0.087))
        binance.advance_to(binance.engine.now_ms + 60 * 60_000)
        return placed, await broker.find_protection("ETHBTC", LIST), await broker.fills("ETHBTC", 0)

    (placed, done, fills), _ = run(binance, scenario)
    assert placed.status == "open"
    assert placed.list_client_id == LIST
    assert {leg.role: leg.status for leg in placed.legs} == {
        "take_profit": "open",
        "stop_loss": "open",
    }
    stop = next(leg for leg in placed.legs if leg.role == "stop_loss")
    assert (stop.type, stop.stop_price, stop.price) == ("stop_loss_limit", 0.087, 0.086565)
    assert done is not None
    assert done.status == "done"
    assert {leg.role: leg.status for leg in done.legs} == {
        "take_profit": "closed",
        "stop_loss": "expired",
    }
    assert done.filled_leg is not None
    assert done.filled_leg.average == pytest.approx(0.0893)
    sell = fills[-1]
    assert (sell.side, sell.amount, sell.price) == ("sell", 0.499, 0.0893)
    assert sell.client_id == done.filled_leg.client_id
    assert sell.fee == pytest.approx(0.499 * 0.0893 * 0.001, abs=1e-8)  # 8 decimals
    assert binance.balance("ETH") == pytest.approx((0.4995 - 0.499, 0.0), abs=1e-9)


def test_a_stop_loss_leg_fills_when_the_price_falls(binance):
    async def scenario(broker):
        await broker.place(entry())
        await broker.protect(protection(0.0899, 0.0881))
        binance.advance_to(binance.engine.now_ms + 240 * 60_000)
        return await broker.find_protection("ETHBTC", LIST)

    done, _ = run(binance, scenario)
    assert {leg.role: leg.status for leg in done.legs} == {
        "take_profit": "expired",
        "stop_loss": "closed",
    }
    assert done.filled_leg.role == "stop_loss"


def test_cancelling_one_leg_or_the_list_cancels_the_whole_list(binance):
    async def scenario(broker):
        await broker.place(entry())
        await broker.protect(protection(0.0899, 0.087))
        leg = await broker.cancel(
            "ETHBTC", next(iter(await broker.open_orders("ETHBTC"))).client_id
        )
        listed = await broker.find_protection("ETHBTC", LIST)
        again = await broker.cancel_protection("ETHBTC", LIST)
        return leg, listed, again, await broker.open_orders("ETHBTC")

    (leg, listed, again, still_open), _ = run(binance, scenario)
    assert leg.status == "canceled"
    assert leg.list_client_id == LIST
    assert listed.status == "canceled"
    assert {x.status for x in listed.legs} == {"canceled"}
    assert again == listed  # cancelling a finished list answers its final state
    assert still_open == []
    assert binance.balance("ETH") == pytest.approx((0.4995, 0.0))


def test_cancel_protection_frees_the_amount(binance):
    async def scenario(broker):
        await broker.place(entry())
        await broker.protect(protection(0.0899, 0.087))
        locked = binance.balance("ETH")
        return locked, await broker.cancel_protection("ETHBTC", LIST)

    (locked, cancelled), _ = run(binance, scenario)
    assert locked == pytest.approx((0.4995 - 0.499, 0.499))
    assert cancelled.status == "canceled"
    assert binance.balance("ETH") == pytest.approx((0.4995, 0.0))


def test_without_oco_the_stop_loss_rests_alone(binance):
    binance.engine.no_oco.add("ETHBTC")

    async def scenario(broker):
        await broker.place(entry())
        rules = await broker.rules("ETHBTC")
        placed = await broker.protect(protection(0.0899, 0.087))
        found = await broker.find_protection("ETHBTC", LIST)
        return rules, placed, found, await broker.cancel_protection("ETHBTC", LIST)

    (rules, placed, found, cancelled), _ = run(binance, scenario)
    assert rules.has_oco is False
    assert [(leg.role, leg.type, leg.status) for leg in placed.legs] == [
        ("stop_loss", "stop_loss_limit", "open")
    ]
    assert found == placed
    assert cancelled.status == "canceled"
    assert not any(p == "/api/v3/orderList/oco" for _, p, _ in binance.order_requests)


def test_a_lost_response_is_uncertain_and_find_sees_the_executed_order(binance):
    binance.inject_orders("lost")

    async def scenario(broker):
        with pytest.raises(OrderUncertainError) as raised:
            await broker.place(entry())
        found = await broker.find("ETHBTC", ENTRY)
        posts = order_posts(binance)
        # What btkit never does: send it again blindly. Binance (and the stand-in) would
        # accept the reused client id, the first order being filled, and buy twice.
        await broker._client.create_order(
            "ETH/BTC", "market", "buy", 0.5, None, {"newClientOrderId": ENTRY}
        )
        return raised.value, found, posts, await broker.fills("ETHBTC", 0)

    (error, found, posts, fills), _ = run(binance, scenario)
    assert "look it up by its client id" in str(error).lower()
    assert found is not None
    assert found.status == "closed"
    assert found.filled == pytest.approx(0.5)
    assert posts == 1
    assert [f.client_id for f in fills] == [ENTRY, ENTRY]  # the blind resend bought twice


@pytest.mark.parametrize(
    ("fault", "executed"),
    [
        ("500", False),
        ("503", False),
        ("429", False),
        ("lost_before", False),
        ("500_after", True),
    ],
)
def test_unclear_answers_to_a_place_are_uncertain_never_retried(binance, fault, executed):
    binance.inject_orders(fault)

    async def scenario(broker):
        with pytest.raises(OrderUncertainError):
            await broker.place(entry())
        return order_posts(binance), await broker.find("ETHBTC", ENTRY)

    (posts, found), waits = run(binance, scenario)
    assert posts == (1 if executed else 0)
    assert waits == []
    assert (found is not None) == executed


def test_reads_are_retried_on_429_honouring_retry_after_and_on_5xx(binance):
    binance.faults.retry_after = 3

    async def scenario(broker):
        await broker.rules("ETHBTC")
        binance.inject_reads("429", "500", "503")
        return await broker.balances()

    balances, waits = run(binance, scenario)
    assert balances["BTC"].free == 1.0
    assert len(waits) == 3
    assert waits[0] == 3


def test_a_timeout_after_execution_is_uncertain_and_the_order_is_found(binance):
    binance.inject_orders("timeout")

    async def scenario(broker):
        await broker.rules("ETHBTC")  # markets loaded at the normal timeout
        broker._client.timeout = 300
        with pytest.raises(OrderUncertainError) as raised:
            await broker.place(entry())
        broker._client.timeout = 10_000
        await until(lambda: order_posts(binance) == 1)  # executed, its answer held
        binance.faults.release.set()
        return raised.value, await broker.find("ETHBTC", ENTRY)

    (error, found), _ = run(binance, scenario)
    assert "RequestTimeout" in str(error)
    assert found is not None
    assert found.status == "closed"


def test_an_order_held_before_execution_is_not_found_until_it_executes(binance):
    """Why "not found" right after a timeout is not proof: the order may still arrive."""
    binance.inject_orders("timeout_before")

    async def scenario(broker):
        await broker.rules("ETHBTC")
        broker._client.timeout = 300
        with pytest.raises(OrderUncertainError):
            await broker.place(entry())
        broker._client.timeout = 10_000
        early = await broker.find("ETHBTC", ENTRY)
        binance.faults.release.set()
        await until(lambda: order_posts(binance) == 1)  # the held request executes
        return early, await broker.find("ETHBTC", ENTRY)

    (early, late), _ = run(binance, scenario)
    assert early is None
    assert late is not None
    assert late.status == "closed"


def test_a_partial_fill_is_reported_as_such(binance):
    binance.inject_orders("partial")

    async def scenario(broker):
        return await broker.place(entry(1.0))

    placed, _ = run(binance, scenario)
    assert placed.status == "expired"
    assert placed.filled == pytest.approx(0.5)
    assert placed.remaining == pytest.approx(0.5)


def test_rejections_insufficient_funds_and_filters_have_clear_messages(binance):
    async def scenario(broker):
        errors = []
        binance.inject_orders("reject")
        for request in (entry(), entry(100.0), entry(0.001)):
            with pytest.raises(OrderRejectedError) as raised:
                await broker.place(request)
            errors.append(raised.value)
        with pytest.raises(OrderRejectedError) as raised:
            await broker.protect(protection(0.0899, 0.0890))  # stop above the price
        errors.append(raised.value)
        return errors

    (rejected, poor, small, stop_above), _ = run(binance, scenario)
    assert type(rejected) is OrderRejectedError
    assert "Order was rejected" in str(rejected)
    assert isinstance(poor, InsufficientFundsError)
    assert "insufficient balance" in str(poor)
    assert type(small) is OrderRejectedError
    assert "Filter failure: NOTIONAL" in str(small)
    assert "Stop price would trigger immediately" in str(stop_above)
    assert binance.balance("BTC") == (1.0, 0.0)  # nothing executed


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        (TRADE_KEY, "not-the-secret-0123456789"),
        ("unknown-key-0123456789", TRADE_SECRET),
        ("not a key!", "some-secret-0123456789"),
    ],
)
def test_bad_credentials_are_a_clear_error_without_the_secret(binance, key, secret):
    async def scenario(broker):
        with pytest.raises(PermanentExchangeError) as raised:
            await broker.balances()
        return raised.value

    error, _ = run(binance, scenario, key=key, secret=secret)
    assert "BTKIT_CREDENTIALS__BINANCE__API_KEY" in str(error)
    assert secret not in str(error)
    assert key not in str(error)


def test_no_secret_in_any_error_text_even_when_the_exchange_echoes_it(binance):
    async def scenario(broker):
        await broker.rules("ETHBTC")
        binance.faults.echo_headers = True
        binance.keys.pop(TRADE_KEY)  # now refused, with the headers echoed back
        texts = []
        for call in (broker.place(entry()), broker.find("ETHBTC", ENTRY), broker.balances()):
            with pytest.raises((OrderError, ExchangeError)) as raised:
                await call
            texts.append(f"{raised.value!r} {raised.value}")
        return texts

    texts, _ = run(binance, scenario)
    for text in texts:
        assert "X-MBX-APIKEY" in text or "credentials" in text
        assert TRADE_KEY not in text
        assert TRADE_SECRET not in text
        assert "signature=" not in text or "signature=***" in text


def test_a_skewed_clock_is_synced_before_the_signed_market_load(binance):
    binance.faults.clock_skew_ms = -30_000  # the exchange's clock 30 s behind ours

    async def plain_ccxt() -> str:
        import ccxt.async_support as ccxt_async

        client = ccxt_async.binance({"apiKey": TRADE_KEY, "secret": TRADE_SECRET})
        client.urls["api"] = {
            k: v.replace("https://api.binance.com", binance.url) if isinstance(v, str) else v
            for k, v in client.urls["api"].items()
        }
        client.options["fetchMarkets"] = {"types": ["spot"]}
        try:
            await client.load_markets()
        except Exception as exc:
            return type(exc).__name__
        finally:
            await client.close()
        return "loaded"

    assert asyncio.run(plain_ccxt()) == "InvalidNonce"  # the failure the sync prevents

    async def scenario(broker):
        return await broker.place(entry())

    placed, _ = run(binance, scenario)
    assert placed.status == "closed"


def test_live_broker_needs_credentials_and_a_real_exchange(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        live_broker(Settings(), "binance", sandbox=False)
    assert "BTKIT_CREDENTIALS__BINANCE__API_KEY" in str(raised.value)
    assert "BTKIT_CREDENTIALS__BINANCE__SECRET" in str(raised.value)
    assert raised.value.exit_code == 2
    with pytest.raises(ConfigError, match="replay"):
        live_broker(Settings(), "replay", sandbox=False)
    monkeypatch.setenv("BTKIT_CREDENTIALS__BINANCE__API_KEY", TRADE_KEY)
    monkeypatch.setenv("BTKIT_CREDENTIALS__BINANCE__SECRET", TRADE_SECRET)
    broker = live_broker(Settings(), "binance", sandbox=False)
    assert isinstance(broker, CcxtBroker)
    assert broker.mode == "live"
    asyncio.run(broker.close())


def test_the_exchange_serves_its_order_book(binance):
    async def scenario():
        exchange = CcxtExchange("binance", FakeClock(0), CcxtOptions(base_url=binance.url))
        try:
            return await exchange.order_book("ETHBTC", 5)
        finally:
            await exchange.close()

    book = asyncio.run(scenario())
    assert book.symbol == "ETHBTC"
    assert len(book.bids) == len(book.asks) == 5
    assert book.bids[0][0] < PRICE < book.asks[0][0]
    assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
    assert [p for p, _ in book.asks] == sorted(p for p, _ in book.asks)


def test_fills_page_back_by_trade_id_across_days(binance, monkeypatch):
    """Binance gives only the 24 h after a bare startTime; paging by id misses nothing."""
    monkeypatch.setattr("btkit.adapters.brokers.ccxt_broker.TRADE_PAGE", 3)
    binance.engine.fill_parts = 4
    later = client_order_id("always-long:ETHBTC:later", "entry")

    async def scenario(broker):
        await broker.place(entry(0.4))
        binance.advance_to(binance.engine.now_ms + 2 * 86_400_000)
        second = await broker.place(entry(0.4, later))
        return await broker.fills("ETHBTC", 0), await broker.fills("ETHBTC", second.timestamp)

    (every, recent), _ = run(binance, scenario)
    assert [f.client_id for f in every] == [ENTRY] * 4 + [later] * 4
    assert [f.trade_id for f in every] == [str(n) for n in range(1, 9)]
    assert [f.client_id for f in recent] == [later] * 4


def test_a_resting_limit_buy_fills_when_the_candles_cross_it(binance):
    limit = OrderRequest(SIGNAL, "entry", "ETHBTC", "buy", "limit", 1.0, ENTRY, price=0.0881)

    async def scenario(broker):
        placed = await broker.place(limit)
        duplicate = OrderRequest(SIGNAL, "entry", "ETHBTC", "buy", "limit", 1.0, ENTRY, price=0.08)
        with pytest.raises(OrderRejectedError) as raised:  # the id is taken while it is open
            await broker.place(duplicate)
        binance.advance_to(binance.engine.now_ms + 60 * 60_000)
        return placed, raised.value, await broker.find("ETHBTC", ENTRY)

    (placed, duplicate, filled), _ = run(binance, scenario)
    assert placed.status == "open"
    assert "Duplicate order sent" in str(duplicate)
    assert filled.status == "closed"
    assert filled.average == pytest.approx(0.0881)
    assert binance.balance("BTC") == pytest.approx((1.0 - 0.0881, 0.0))
    assert binance.balance("ETH") == pytest.approx((0.999, 0.0))


def test_a_stop_loss_limit_order_rests_with_its_trigger(binance):
    stop_id = client_order_id(SIGNAL, "stop_loss")
    stop = OrderRequest(
        SIGNAL, "stop_loss", "ETHBTC", "sell", "stop_loss_limit", 0.499, stop_id, 0.0875, 0.088
    )

    async def scenario(broker):
        await broker.place(entry())
        placed = await broker.place(stop)
        return placed, await broker.cancel("ETHBTC", stop_id)

    (placed, cancelled), _ = run(binance, scenario)
    assert (placed.type, placed.status, placed.role) == ("stop_loss_limit", "open", "stop_loss")
    assert (placed.price, placed.stop_price) == (0.0875, 0.088)
    assert cancelled.status == "canceled"


def test_the_stand_in_also_speaks_the_older_oco_endpoint(binance):
    async def scenario(broker):
        await broker.place(entry())
        client = broker._client
        await client.private_post_order_oco(
            {
                "symbol": "ETHBTC",
                "side": "SELL",
                "quantity": "0.499",
                "price": "0.0899",
                "stopPrice": "0.087",
                "stopLimitPrice": "0.0865",
                "stopLimitTimeInForce": "GTC",
                "listClientOrderId": LIST,
                "limitClientOrderId": client_order_id(SIGNAL, "take_profit"),
                "stopClientOrderId": client_order_id(SIGNAL, "stop_loss"),
            }
        )
        return await broker.find_protection("ETHBTC", LIST)

    found, _ = run(binance, scenario)
    assert found.status == "open"
    assert {leg.role: leg.type for leg in found.legs} == {
        "take_profit": "limit_maker",
        "stop_loss": "stop_loss_limit",
    }


def test_a_lost_protect_answer_is_uncertain_and_the_list_is_found(binance):
    async def scenario(broker):
        await broker.place(entry())
        binance.inject_orders("lost")
        with pytest.raises(OrderUncertainError):
            await broker.protect(protection(0.0899, 0.087))
        return await broker.find_protection("ETHBTC", LIST)

    found, _ = run(binance, scenario)
    assert found is not None
    assert found.status == "open"
    assert len(found.legs) == 2
