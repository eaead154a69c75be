"""PaperBroker and its wallet: book walks, replay fills, lazy OCO, restarts, crashes."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from btkit.adapters.brokers.paper_broker import PaperBroker, PaperCosts
from btkit.adapters.brokers.paper_fills import split_symbol, walk_book
from btkit.adapters.brokers.paper_wallet import (
    UnusableWalletError,
    WalletFile,
    WalletState,
    read_wallet,
)
from btkit.domain.errors import (
    InsufficientFundsError,
    OrderRejectedError,
    StateLockedError,
    StorageError,
)
from btkit.domain.model import Candle
from btkit.domain.orders import (
    MarketRules,
    OrderBook,
    OrderRequest,
    ProtectionRequest,
    client_order_id,
)
from btkit.market.service import ExchangeMarket
from btkit.settings import Settings
from btkit.wiring.paper import paper_broker
from tests.conftest import REPO
from tests.fakes import FakeClock, ListExchange, flat_candle, minute
from tests.trading_fakes import FixedOrderBook

SYMBOL = "ETHUSDT"
START = {"USDT": 10_000.0, "ETH": 10.0}
BOOK = OrderBook(
    SYMBOL,
    bids=((99.0, 1.0), (98.5, 1.0), (97.0, 5.0)),
    asks=((100.0, 1.0), (100.5, 1.0), (102.0, 5.0)),
    timestamp=0,
)


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body on a fresh event loop (the suite has no async plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        paper_balances=START,
        fee_percent=0.1,
        slippage_percent=0.2,
        paper_slippage_cap_percent=1.0,
    )


class Rules:
    """An exchange's rules for the market (what a ccxt market would give)."""

    def __init__(self, **changes: object) -> None:
        self.value = dataclasses.replace(
            MarketRules(SYMBOL, "ETH", "USDT", 0.001, 0.01, 0.001, 5.0, 0.00075), **changes
        )

    async def rules(self, symbol: str) -> MarketRules:
        return self.value


def broker(
    tmp_path: Path,
    candles: list[Candle] | None = None,
    *,
    now: int = minute(10),
    books: object = None,
    rules: object = None,
) -> tuple[PaperBroker, FakeClock]:
    clock = FakeClock(now)
    market = ExchangeMarket(ListExchange(candles or [flat_candle(n, 50.0) for n in range(10)]))
    made = paper_broker(
        settings(tmp_path),
        exchange_name="replay",
        label="replay",
        strategy="s1",
        market=market,
        clock=clock,
        books=books,  # type: ignore[arg-type]
        rules=rules,  # type: ignore[arg-type]
    )
    assert isinstance(made, PaperBroker)
    return made, clock


def buy(amount: float, n: int = 1, side: str = "buy") -> OrderRequest:
    role = "entry" if side == "buy" else "exit"
    cid = client_order_id(f"sig-{n}", role)  # type: ignore[arg-type]
    return OrderRequest(f"sig-{n}", role, SYMBOL, side, "market", amount, cid)  # type: ignore[arg-type]


def sell(amount: float, n: int = 1) -> OrderRequest:
    return buy(amount, n, "sell")


def assert_books_balance(state: WalletState) -> None:
    """Balances are exactly the starting balances plus every fill minus its fee."""
    assert state.balances == state.replayed()
    assert state.problems() == []


def on_disk(tmp_path: Path) -> WalletState:
    return read_wallet(tmp_path / "data" / "paper" / "replay-s1.json")


# --- book walks -----------------------------------------------------------------------


@sync
async def test_market_buy_walks_the_book_with_the_taker_fee_and_stops_at_the_cap(tmp_path):
    paper, _ = broker(tmp_path, books=FixedOrderBook(BOOK), rules=Rules())
    order = await paper.place(buy(3.0))
    # 100 and 100.5 are within 1 % of the best ask; 102 is beyond: the rest expires.
    assert (order.status, order.filled, order.amount) == ("expired", 2.0, 3.0)
    assert order.average == pytest.approx(100.25)
    assert order.fee == pytest.approx((100.0 + 100.5) * 0.00075)
    assert "walked 2 level(s)" in order.message
    assert "1 % slippage cap" in order.message
    fills = await paper.fills(SYMBOL, 0)
    assert [(f.price, f.amount) for f in fills] == [(100.0, 1.0), (100.5, 1.0)]
    balances = await paper.balances()
    assert balances["ETH"].total == 12.0
    assert balances["USDT"].total == pytest.approx(10_000 - 200.5 - order.fee)
    assert_books_balance(paper.state)
    assert on_disk(tmp_path) == paper.state  # written before place returned


@sync
async def test_market_sell_walks_the_bids(tmp_path):
    paper, _ = broker(tmp_path, books=FixedOrderBook(BOOK), rules=Rules())
    order = await paper.place(sell(1.5))
    assert (order.status, order.filled) == ("closed", 1.5)
    assert order.average == pytest.approx((99.0 + 0.5 * 98.5) / 1.5)
    assert "walked 2 level(s)" in order.message
    assert "cap" not in order.message
    balances = await paper.balances()
    assert balances["ETH"].total == 8.5
    assert balances["USDT"].total == pytest.approx(10_000 + 148.25 - 148.25 * 0.00075)
    assert_books_balance(paper.state)


def test_walk_book_pure():
    walk = walk_book(BOOK, "buy", 0.5, 1.0)
    assert walk.takes == ((100.0, 0.5),)
    assert walk.filled == 0.5
    capped = walk_book(BOOK, "sell", 10.0, 1.0)
    assert capped.filled == 2.0
    assert capped.levels_beyond_cap == 1
    empty = walk_book(dataclasses.replace(BOOK, asks=()), "buy", 1.0, 1.0)
    assert empty.takes == ()


@sync
async def test_an_empty_book_side_rejects_and_keeps_nothing(tmp_path):
    paper, _ = broker(tmp_path, books=FixedOrderBook(dataclasses.replace(BOOK, asks=())))
    with pytest.raises(OrderRejectedError, match="no asks"):
        await paper.place(buy(1.0))
    assert await paper.find(SYMBOL, buy(1.0).client_id) is None


@sync
async def test_exchange_rules_are_enforced(tmp_path):
    paper, _ = broker(tmp_path, books=FixedOrderBook(BOOK), rules=Rules())
    with pytest.raises(OrderRejectedError, match="LOT_SIZE"):
        await paper.place(buy(0.0005))
    with pytest.raises(OrderRejectedError, match="LOT_SIZE"):
        await paper.place(buy(0.0015))
    with pytest.raises(OrderRejectedError, match="NOTIONAL"):
        await paper.place(buy(0.01))
    with pytest.raises(OrderRejectedError, match="PRICE_FILTER"):
        await paper.place(limit(1.0, 99.995))
    with pytest.raises(OrderRejectedError, match="PRICE_FILTER"):
        await paper.protect(protect_request(1.0, tp=110.001, sl=90.0))
    with pytest.raises(OrderRejectedError, match="LOT_SIZE"):
        await paper.protect(protect_request(1.0005, tp=110.0, sl=90.0))
    assert paper.state.trades == ()


# --- replay fills ----------------------------------------------------------------------


@sync
async def test_replay_fills_at_the_tick_price_plus_slippage(tmp_path):
    paper, _ = broker(tmp_path)
    rules = await paper.rules(SYMBOL)
    assert (rules.base, rules.quote, rules.taker_fee, rules.min_notional) == (
        "ETH",
        "USDT",
        0.001,
        None,
    )
    bought = await paper.place(buy(2.0))
    assert bought.status == "closed"
    assert bought.average == pytest.approx(50.0 * 1.002)
    assert bought.fee == pytest.approx(2 * 50.0 * 1.002 * 0.001)
    assert bought.message == "paper: replay tick price 50 + 0.2 % slippage"
    sold = await paper.place(sell(1.0, 2))
    assert sold.average == pytest.approx(50.0 * 0.998)
    assert sold.message == "paper: replay tick price 50 - 0.2 % slippage"
    balances = await paper.balances()
    assert balances["ETH"].total == 11.0
    assert_books_balance(paper.state)


@sync
async def test_replay_without_a_price_rejects(tmp_path):
    paper, clock = broker(tmp_path)
    clock.now = minute(100)  # no candle in the last five minutes
    with pytest.raises(OrderRejectedError, match="no price"):
        await paper.place(buy(1.0))


def test_split_symbol():
    assert split_symbol("ETHBTC") == ("ETH", "BTC")
    assert split_symbol("BTCUSDT") == ("BTC", "USDT")
    assert split_symbol("ETH-BTC") == ("ETH", "BTC")
    assert split_symbol("SOL/EUR") == ("SOL", "EUR")
    assert split_symbol("ABCXYZ", ["XYZ"]) == ("ABC", "XYZ")
    assert split_symbol("ABCDEF") is None


@sync
async def test_an_unsplittable_replay_symbol_says_how_to_name_it(tmp_path):
    paper, _ = broker(tmp_path)
    with pytest.raises(OrderRejectedError, match=r"BASE-QUOTE-1m\.csv"):
        await paper.rules("ABCDEF")


# --- balances and client ids -------------------------------------------------------------


@sync
async def test_insufficient_balance_is_refused_and_changes_nothing(tmp_path):
    paper, _ = broker(tmp_path)
    with pytest.raises(InsufficientFundsError, match=r"needs .* USDT \(fees included\)"):
        await paper.place(buy(200.0))  # 200 x 50.1 > 10 000
    with pytest.raises(InsufficientFundsError, match="ETH is free"):
        await paper.place(sell(10.5))
    assert await paper.find(SYMBOL, buy(200.0).client_id) is None
    assert paper.state.balances == START
    assert paper.state.trades == ()


@sync
async def test_client_ids_are_unique_among_open_orders_and_found_after_fill(tmp_path):
    paper, _ = broker(tmp_path)
    entry = await paper.place(buy(1.0))
    found = await paper.find(SYMBOL, entry.client_id)
    assert found == entry
    assert found.status == "closed"
    assert found.message.startswith("paper: replay tick price")
    protection = await paper.protect(protect_request(1.0))
    leg = protection.legs[0]
    clash = OrderRequest("x", "exit", SYMBOL, "sell", "market", 0.1, leg.client_id)
    with pytest.raises(OrderRejectedError, match="Duplicate order sent"):
        await paper.place(clash)
    with pytest.raises(OrderRejectedError, match="Duplicate order sent"):
        await paper.protect(protect_request(1.0))
    assert await paper.find(SYMBOL, leg.client_id) == leg
    assert await paper.find(SYMBOL, "btk-e-unknown") is None


# --- OCO protection ----------------------------------------------------------------------


def protect_request(amount: float, tp: float = 55.0, sl: float = 45.0) -> ProtectionRequest:
    return ProtectionRequest(
        "sig-1", SYMBOL, amount, tp, sl, client_order_id("sig-1", "protection")
    )


def candles_after(*rows: tuple[float, float]) -> list[Candle]:
    """Flat 50 for minutes 0-9 (before placing at minute 10), then (high, low) per minute."""
    history = [flat_candle(n, 50.0) for n in range(10)]
    history += [Candle(minute(10 + i), 50.0, hi, lo, 50.0, 1.0) for i, (hi, lo) in enumerate(rows)]
    return history


@sync
async def test_take_profit_fills_on_a_candle_high_and_the_stop_expires(tmp_path):
    paper, clock = broker(tmp_path, candles_after((52, 49), (56, 50), (50, 40)))
    await paper.place(buy(1.0))
    placed = await paper.protect(protect_request(1.0))
    assert placed.status == "open"
    assert (await paper.balances())["ETH"].free == 10.0  # 11 held, 1 reserved
    clock.now = minute(11)
    assert (await paper.find_protection(SYMBOL, placed.list_client_id)).status == "open"
    clock.now = minute(13)  # the candle of minute 11 reached 56 before 12's low of 40
    done = await paper.find_protection(SYMBOL, placed.list_client_id)
    assert done is not None
    assert done.status == "done"
    tp, sl = done.legs
    assert (tp.role, tp.status, tp.filled, tp.average) == ("take_profit", "closed", 1.0, 55.0)
    assert tp.timestamp == minute(12)
    assert "take-profit" in tp.message
    assert (sl.status, sl.filled) == ("expired", 0.0)
    assert done.filled_leg == tp
    fills = await paper.fills(SYMBOL, minute(11))
    assert [(f.client_id, f.price) for f in fills] == [(tp.client_id, 55.0)]
    assert (await paper.balances())["ETH"] == (await paper.balances())["ETH"].__class__(10.0, 10.0)
    assert await paper.open_orders(SYMBOL) == []
    assert_books_balance(paper.state)


@sync
async def test_stop_loss_fills_at_the_stop_minus_slippage(tmp_path):
    paper, clock = broker(tmp_path, candles_after((51, 44)))
    await paper.place(buy(1.0))
    placed = await paper.protect(protect_request(1.0))
    clock.now = minute(11)
    fills = await paper.fills(SYMBOL, minute(10))
    assert [(f.side, f.price) for f in fills][-1] == ("sell", pytest.approx(45 * 0.998))
    done = await paper.find_protection(SYMBOL, placed.list_client_id)
    assert [leg.status for leg in done.legs] == ["expired", "closed"]
    assert_books_balance(paper.state)


@sync
async def test_a_candle_reaching_both_legs_fills_the_stop(tmp_path):
    paper, clock = broker(tmp_path, candles_after((60, 40)))
    await paper.place(buy(1.0))
    placed = await paper.protect(protect_request(1.0))
    clock.now = minute(11)
    done = await paper.find_protection(SYMBOL, placed.list_client_id)
    assert done.filled_leg is not None
    assert done.filled_leg.role == "stop_loss"


@sync
async def test_candles_before_placing_never_trigger(tmp_path):
    history = [flat_candle(n, 50.0) for n in range(10)]
    spike = Candle(minute(10), 50, 60, 40, 50, 1)  # reached both legs, partly before placing
    paper, clock = broker(tmp_path, [*history, spike, flat_candle(11, 50.0)])
    clock.now = minute(10) + 5_000  # placed 5 s into minute 10: that candle does not count
    await paper.place(buy(1.0))
    placed = await paper.protect(protect_request(1.0))
    clock.now = minute(12)
    assert (await paper.find_protection(SYMBOL, placed.list_client_id)).status == "open"
    assert len(await paper.open_orders(SYMBOL)) == 2


@sync
async def test_a_list_fills_after_a_long_stop_and_a_stretch_without_candles(tmp_path):
    day = 24 * 60
    late = Candle(minute(10 + 9 * day), 50, 56, 50, 50, 1)  # nine days on, after a gap
    paper, clock = broker(tmp_path, [*candles_after((51, 49), (51, 49)), late])
    await paper.place(buy(1.0))
    placed = await paper.protect(protect_request(1.0))
    clock.now = minute(12 + 9 * day)
    done = await paper.find_protection(SYMBOL, placed.list_client_id)  # one call: all weeks
    assert done.filled_leg is not None
    assert done.filled_leg.timestamp == late.timestamp + 60_000


@sync
async def test_cancel_protection_frees_the_base_and_cancel_of_a_leg_cancels_the_list(tmp_path):
    paper, _ = broker(tmp_path)
    await paper.place(buy(1.0))
    placed = await paper.protect(protect_request(1.0))
    canceled = await paper.cancel(SYMBOL, placed.legs[1].client_id)
    assert canceled is not None
    assert canceled.status == "canceled"
    listed = await paper.find_protection(SYMBOL, placed.list_client_id)
    assert listed.status == "canceled"
    assert [leg.status for leg in listed.legs] == ["canceled", "canceled"]
    assert (await paper.balances())["ETH"].free == 11.0
    again = await paper.cancel_protection(SYMBOL, placed.list_client_id)
    assert again == listed
    assert await paper.cancel_protection(SYMBOL, "btk-p-none") is None
    # a new list with the same id may rest once the old one is final
    assert (await paper.protect(protect_request(1.0))).status == "open"


@sync
async def test_protection_needs_free_base(tmp_path):
    paper, _ = broker(tmp_path)
    with pytest.raises(InsufficientFundsError, match="ETH is free"):
        await paper.protect(protect_request(11.0))
    await paper.protect(protect_request(10.0))
    with pytest.raises(InsufficientFundsError):
        await paper.place(sell(0.5))  # everything is reserved by the list


# --- limit orders ----------------------------------------------------------------------------


def limit(amount: float, price: float, n: int = 1, side: str = "buy") -> OrderRequest:
    return dataclasses.replace(buy(amount, n, side), type="limit", price=price)


@sync
async def test_a_limit_buy_below_the_market_rests_reserves_and_fills_on_a_candle(tmp_path):
    paper, clock = broker(tmp_path, candles_after((51, 49), (50, 47.5), (50, 40)))
    order = await paper.place(limit(2.0, 48.0))
    assert (order.status, order.filled, order.average) == ("open", 0.0, None)
    assert "rests until" in order.message
    free = (await paper.balances())["USDT"].free
    assert free == pytest.approx(10_000 - 2 * 48 * 1.001)
    assert await paper.open_orders(SYMBOL) == [order]
    with pytest.raises(InsufficientFundsError):
        await paper.place(buy(199.0, 2))  # the reserved quote is not spendable
    clock.now = minute(13)
    balances = await paper.balances()  # settles resting orders too
    assert balances["ETH"].total == 12.0
    done = await paper.find(SYMBOL, order.client_id)
    assert done is not None
    assert (done.status, done.filled, done.average) == ("closed", 2.0, 48.0)
    assert done.timestamp == minute(12)  # the candle of minute 11 reached 48
    assert done.fee == pytest.approx(2 * 48 * 0.001)
    balances = await paper.balances()
    assert balances["USDT"].free == balances["USDT"].total
    assert balances["ETH"].total == 12.0
    assert await paper.open_orders(SYMBOL) == []
    assert_books_balance(paper.state)


@sync
async def test_a_marketable_limit_fills_at_once_at_the_market(tmp_path):
    paper, _ = broker(tmp_path)
    order = await paper.place(limit(1.0, 60.0))
    assert (order.status, order.average) == ("closed", pytest.approx(50.0 * 1.002))
    assert order.message.startswith("paper: limit 60; 1 taken at once (replay tick price")


@sync
async def test_a_limit_takes_the_book_up_to_its_price_and_rests_the_rest(tmp_path):
    paper, _ = broker(tmp_path, books=FixedOrderBook(BOOK), rules=Rules())
    order = await paper.place(limit(3.0, 100.2))
    assert (order.status, order.filled, order.average) == ("open", 1.0, 100.0)
    assert "walked 1 level(s)" in order.message
    sell_order = await paper.place(limit(1.0, 101.0, 2, "sell"))
    assert sell_order.status == "open"
    assert (await paper.balances())["ETH"].free == 10.0  # 11 held, 1 reserved by the sell
    assert_books_balance(paper.state)


@sync
async def test_cancel_a_resting_limit_frees_its_reservation_and_survives_restart(tmp_path):
    paper, _ = broker(tmp_path)
    order = await paper.place(limit(2.0, 48.0))
    other = await paper.place(limit(1.0, 47.0, 2))
    canceled = await paper.cancel(SYMBOL, order.client_id)
    assert canceled is not None
    assert canceled.status == "canceled"
    assert await paper.cancel(SYMBOL, order.client_id) == canceled
    await paper.close()
    again, _ = broker(tmp_path)
    assert await again.find(SYMBOL, order.client_id) == canceled
    assert await again.open_orders(SYMBOL) == [other]
    assert (await again.balances())["USDT"].free == pytest.approx(10_000 - 47 * 1.001)


@sync
async def test_stop_orders_are_refused_with_what_paper_supports(tmp_path):
    paper, _ = broker(tmp_path)
    stop = dataclasses.replace(buy(1.0), type="stop_loss_limit", price=45.0, stop_price=45.0)
    with pytest.raises(OrderRejectedError, match="market and limit orders"):
        await paper.place(stop)
    with pytest.raises(OrderRejectedError, match="needs a price"):
        await paper.place(dataclasses.replace(buy(1.0), type="limit"))


@sync
async def test_without_oco_only_the_stop_rests(tmp_path):
    paper, clock = broker(tmp_path, candles_after((60, 49), (50, 44)), rules=Rules(has_oco=False))
    await paper.place(buy(1.0))
    placed = await paper.protect(protect_request(1.0))
    assert [leg.role for leg in placed.legs] == ["stop_loss"]
    clock.now = minute(12)  # the high of 60 does not matter: there is no take-profit
    done = await paper.find_protection(SYMBOL, placed.list_client_id)
    assert done.filled_leg is not None
    assert done.filled_leg.timestamp == minute(12)


@pytest.mark.parametrize("seed", range(6))
@sync
async def test_random_sessions_keep_the_books_balanced_across_restarts(tmp_path, seed):
    """Random orders, lists, cancels and candles: balances always equal the starting
    balances plus the fills minus fees, nothing goes negative, restarts change nothing."""
    rng = random.Random(seed)
    price, rows = 50.0, []
    for n in range(200):
        price *= 1 + rng.uniform(-0.01, 0.01)
        high, low = price * (1 + rng.uniform(0, 0.02)), price * (1 - rng.uniform(0, 0.02))
        rows.append(Candle(minute(n), price, high, low, price, rng.uniform(0.5, 2)))
    paper, clock = broker(tmp_path, rows)
    for step in range(60):
        clock.now = minute(10 + step * 3)
        kind = rng.choice(["buy", "sell", "limit", "protect", "cancel", "restart"])
        n = rng.randrange(8)
        try:
            if kind in ("buy", "sell"):
                await paper.place(buy(round(rng.uniform(0.1, 3), 3), n, kind))
            elif kind == "limit":
                side = rng.choice(["buy", "sell"])
                await paper.place(limit(1.0, round(price * rng.uniform(0.97, 1.03), 2), n, side))
            elif kind == "protect":
                tp, sl = price * rng.uniform(1.0, 1.05), price * rng.uniform(0.95, 1.0)
                request = protect_request(round(rng.uniform(0.1, 2), 3), tp, sl)
                await paper.protect(dataclasses.replace(request, list_client_id=f"btk-p-{n}"))
            elif kind == "cancel":
                await paper.cancel_protection(SYMBOL, f"btk-p-{n}")
                await paper.cancel(SYMBOL, buy(1.0, n, "buy").client_id)
                await paper.cancel(SYMBOL, buy(1.0, n, "sell").client_id)
            else:
                before = paper.state
                await paper.close()
                paper, clock = broker(tmp_path, rows, now=clock.now)
                assert paper.state == before
        except OrderRejectedError:
            pass  # insufficient balance, duplicates: refused and nothing changed
        balances = await paper.balances()
        assert_books_balance(paper.state)
        assert all(b.free >= -1e-9 and b.total >= -1e-9 for b in balances.values())
        assert on_disk(tmp_path) == paper.state
    assert len(paper.state.trades) >= 10, "the session must really trade"


# --- the wallet file ----------------------------------------------------------------------


@sync
async def test_the_wallet_survives_a_restart(tmp_path):
    paper, _ = broker(tmp_path, candles_after((51, 49), (56, 50)))
    entry = await paper.place(buy(1.0))
    placed = await paper.protect(protect_request(1.0))
    before = paper.state
    await paper.close()
    again, clock = broker(tmp_path, candles_after((51, 49), (56, 50)))
    assert again.state == before
    assert await again.find(SYMBOL, entry.client_id) == entry
    assert await again.balances() == await paper.balances()
    clock.now = minute(12)
    done = await again.find_protection(SYMBOL, placed.list_client_id)
    assert done.filled_leg.role == "take_profit"
    assert on_disk(tmp_path) == again.state


@sync
async def test_files_are_owner_only_and_locked(tmp_path):
    paper, _ = broker(tmp_path)
    await paper.place(buy(1.0))
    folder = tmp_path / "data" / "paper"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "replay-s1.json").stat().st_mode) == 0o600
    with pytest.raises(StateLockedError, match="Another btkit process already trades s1"):
        broker(tmp_path)
    await paper.close()
    broker(tmp_path)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda raw: raw[: len(raw) // 2], "Invalid JSON"),
        (lambda raw: raw.replace(b'"USDT": 10000.0', b'"USDT": 10500.0', 1), "starting balance"),
        (lambda raw: raw.replace(b'"strategy": "s1"', b'"strategy": "s2"'), "belongs to"),
    ],
    ids=["truncated", "balances-off", "foreign"],
)
@sync
async def test_an_unusable_wallet_is_refused_and_kept(tmp_path, damage, reason):
    paper, _ = broker(tmp_path)
    await paper.place(buy(1.0))
    await paper.close()
    path = tmp_path / "data" / "paper" / "replay-s1.json"
    # balances-off edits the *balances* (the first USDT after "starting" is its start)
    raw = path.read_bytes()
    if reason == "starting balance":
        head, _, tail = raw.partition(b'"balances"')
        bad = head + b'"balances"' + tail.replace(b'"ETH": 11.0', b'"ETH": 12.0', 1)
    else:
        bad = damage(raw)
    path.write_bytes(bad)
    with pytest.raises(UnusableWalletError, match=reason) as caught:
        broker(tmp_path)
    assert "left as it is" in str(caught.value)
    assert "move it (and its .journal) away" in str(caught.value)
    assert path.read_bytes() == bad
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "replay-s1.json",
        "replay-s1.json.journal",
        "replay-s1.json.lock",
    ]
    broker(tmp_path / "elsewhere")  # and the lock was released for this wallet's folder


@sync
async def test_a_new_wallet_starts_from_the_settings_balances(tmp_path):
    paper, _ = broker(tmp_path)
    assert paper.state.starting == START
    assert paper.summary().endswith("replay-s1.json: 10 ETH, 10000 USDT")
    assert (
        json.loads((tmp_path / "data" / "paper" / "replay-s1.json").read_text())["balances"]
        == START
    )


@sync
async def test_concurrent_orders_all_land_in_order(tmp_path):
    paper, _ = broker(tmp_path)
    orders = await asyncio.gather(*(paper.place(buy(0.5, n)) for n in range(20)))
    assert {o.status for o in orders} == {"closed"}
    assert (await paper.balances())["ETH"].total == 20.0
    assert len(paper.state.trades) == 20
    assert on_disk(tmp_path) == paper.state
    assert_books_balance(paper.state)


class FailingWallet(WalletFile):
    """A disk that fails the next write (disk full), and notes the writing threads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail_next = False
        self.threads: list[str] = []

    def _write(self, state: WalletState) -> None:
        self.threads.append(threading.current_thread().name)
        if self.fail_next:
            self.fail_next = False
            raise StorageError("Cannot write the wallet: No space left on device.")
        super()._write(state)


@sync
async def test_a_failed_write_reports_nothing_and_loses_nothing(tmp_path):
    folder = tmp_path / "paper"
    wallet = FailingWallet(folder, exchange="replay", strategy="s1")
    wallet.acquire()
    state = wallet.load(START, minute(10))
    market = ExchangeMarket(ListExchange([flat_candle(n, 50.0) for n in range(10)]))
    costs = PaperCosts(fee_rate=0.001, slippage_percent=0.2, cap_percent=1.0)
    paper = PaperBroker(
        wallet, state, name="replay", market=market, clock=FakeClock(minute(10)), costs=costs
    )
    wallet.fail_next = True
    with pytest.raises(StorageError, match="No space left"):
        await paper.place(buy(1.0))
    assert await paper.find(SYMBOL, buy(1.0).client_id) is None  # memory never ran ahead
    assert paper.state.balances == START
    placed = await paper.place(buy(1.0))
    assert placed.status == "closed"
    assert read_wallet(wallet.path) == paper.state
    assert wallet.threads
    assert threading.current_thread().name not in wallet.threads  # written off the loop


@sync
async def test_over_the_replay_exchange_fills_follow_its_candle_file(tmp_path):
    """The real replay adapter: no book, the tick's VWAP plus slippage; the OCO list
    fills on the first candle of the file that reached a leg."""
    from btkit.adapters.clock import SimulatedClock
    from btkit.adapters.exchanges.replay import ReplayExchange
    from btkit.engine.pricing import vwap

    rows = [
        Candle(int(t), float(o), float(h), float(lo), float(c), float(v))
        for t, o, h, lo, c, v in (
            line.split(",")
            for line in (REPO / "data" / "candles" / "ETHBTC-1m.csv").read_text().splitlines()[1:]
        )
    ]
    clock = SimulatedClock(rows[10].timestamp)
    market = ExchangeMarket(ReplayExchange(REPO / "data" / "candles", clock))
    paper = paper_broker(
        settings(tmp_path).model_copy(update={"paper_balances": {"BTC": 1.0}}),
        exchange_name="replay",
        label="replay",
        strategy="s1",
        market=market,
        clock=clock,
        books=None,
    )
    order = await paper.place(
        OrderRequest("a", "entry", "ETHBTC", "buy", "market", 2.0, client_order_id("a", "entry"))
    )
    tick = vwap(rows[5:10])
    assert tick is not None
    assert order.average == pytest.approx(tick * 1.002, rel=1e-12)
    tp, sl = tick * 1.01, tick * 0.99
    lid = client_order_id("a", "protection")
    await paper.protect(ProtectionRequest("a", "ETHBTC", 2.0, tp, sl, lid))
    hit = next(i for i in range(10, len(rows)) if rows[i].low <= sl or rows[i].high >= tp)
    clock.jump_to(rows[hit].timestamp + 60_000)
    done = await paper.find_protection("ETHBTC", lid)
    assert done is not None
    leg = done.filled_leg
    assert leg is not None
    assert leg.role == ("stop_loss" if rows[hit].low <= sl else "take_profit")
    assert leg.timestamp == rows[hit].timestamp + 60_000
    assert_books_balance(paper.state)
    await paper.close()


def wallet_files(tmp_path: Path) -> tuple[Path, Path]:
    path = tmp_path / "data" / "paper" / "replay-s1.json"
    return path, path.with_name(path.name + ".journal")


@sync
async def test_changes_go_to_the_journal_and_a_torn_last_line_is_ignored(tmp_path, caplog):
    paper, _ = broker(tmp_path)
    await paper.place(buy(1.0, 1))
    await paper.place(buy(1.0, 2))
    path, journal = wallet_files(tmp_path)
    assert len(journal.read_bytes().splitlines()) == 2  # one line per change
    kept = paper.state
    paper._wallet.release()  # the process died: no close, no snapshot
    with journal.open("ab") as handle:
        handle.write(b'{"seq": 3, "balances": {"USDT": 1')  # a crash mid-append
    again, _ = broker(tmp_path)
    assert again.state == kept
    assert "torn last line" in caplog.text
    assert journal.read_bytes() == b""  # folded into the snapshot on start
    assert read_wallet(path) == kept


@sync
async def test_a_crash_between_snapshot_and_emptying_the_journal_applies_nothing_twice(tmp_path):
    paper, _ = broker(tmp_path)
    await paper.place(buy(1.0, 1))
    await paper.place(sell(0.5, 2))
    _, journal = wallet_files(tmp_path)
    lines = journal.read_bytes()
    kept = paper.state
    await paper.close()  # snapshot written, journal emptied
    journal.write_bytes(lines)  # as if the crash came before the journal was emptied
    again, _ = broker(tmp_path)
    assert again.state == kept
    assert_books_balance(again.state)


@sync
async def test_a_damaged_journal_line_is_refused_and_kept(tmp_path):
    paper, _ = broker(tmp_path)
    await paper.place(buy(1.0, 1))
    await paper.place(buy(1.0, 2))
    paper._wallet.release()
    _, journal = wallet_files(tmp_path)
    _, second = journal.read_bytes().splitlines(keepends=True)
    for bad in (b"garbage\n" + second, second):  # damaged; a change missing
        journal.write_bytes(bad)
        with pytest.raises(UnusableWalletError, match="journal's line 1"):
            broker(tmp_path)
        assert journal.read_bytes() == bad


@sync
async def test_the_journal_is_folded_into_the_snapshot_every_so_often(tmp_path):
    paper, _ = broker(tmp_path)
    paper._wallet.compact_every = 3
    for n in range(8):
        await paper.place(buy(0.5, n))
    path, journal = wallet_files(tmp_path)
    assert len(journal.read_bytes().splitlines()) < 3
    assert read_wallet(path) == paper.state
    assert paper.state.seq == 8


# --- crash: SIGKILL a process that trades in a loop ------------------------------------------

CRASH_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from btkit.domain.orders import OrderBook, OrderRequest, ProtectionRequest, client_order_id
    from btkit.market.service import ExchangeMarket
    from btkit.settings import Settings
    from btkit.wiring.paper import paper_broker
    from tests.fakes import FakeClock, ListExchange, flat_candle, minute

    class Book:
        async def order_book(self, symbol, limit):
            asks = tuple((100.0 + i * 0.1, 0.7) for i in range(limit))
            bids = tuple((99.9 - i * 0.1, 0.7) for i in range(limit))
            return OrderBook(symbol, bids, asks, 0)

    async def main(data, first):
        settings = Settings(data_dir=Path(data), paper_balances={"USDT": 1e9, "ETH": 0.0})
        market = ExchangeMarket(ListExchange([flat_candle(n, 100.0) for n in range(10)]))
        paper = paper_broker(settings, exchange_name="replay", label="replay", strategy="s1",
                             market=market, clock=FakeClock(minute(10)), books=Book())
        paper._wallet.compact_every = 7  # snapshots often, so kills land in them too
        i = first
        while True:
            sid = f"sig-{i}"
            await paper.place(OrderRequest(sid, "entry", "ETHUSDT", "buy", "market", 1.5,
                                           client_order_id(sid, "entry")))
            lid = client_order_id(sid, "protection")
            await paper.protect(ProtectionRequest(sid, "ETHUSDT", 1.5, 200.0, 50.0, lid))
            await paper.cancel_protection("ETHUSDT", lid)
            await paper.place(OrderRequest(sid, "exit", "ETHUSDT", "sell", "market", 1.0,
                                           client_order_id(sid, "exit")))
            print(i, flush=True)
            i += 1

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


@pytest.mark.system
def test_sigkill_while_trading_never_breaks_the_wallet(tmp_path):
    script = tmp_path / "trade_loop.py"
    script.write_text(CRASH_SCRIPT)
    path = tmp_path / "data" / "paper" / "replay-s1.json"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BTKIT_")}}
    env["PYTHONPATH"] = str(REPO)
    kills, trades_before = 0, 0
    for round_no in range(5):
        first = 1000 * round_no  # new signal ids each run; the wallet carries on
        command = [sys.executable, str(script), str(tmp_path / "data"), str(first)]
        with subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            assert process.stdout is not None
            assert process.stderr is not None
            for _ in range(2 + round_no):  # kill after some loops, mid-way through the next
                line = process.stdout.readline()
                if not line:
                    process.wait(timeout=120)
                    pytest.fail(f"the trading loop ended: {process.stderr.read()}")
            if round_no == 0:  # a second process cannot spend the same wallet
                with pytest.raises(StateLockedError, match="already trades s1"):
                    broker(tmp_path)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=120)
            kills += process.returncode == -signal.SIGKILL
        state = read_wallet(path)
        assert_books_balance(state)
        # every loop that returned (printed) left its 5 fills (3 book levels in, 2 out)
        assert len(state.trades) >= trades_before + 5 * (2 + round_no)
        trades_before = len(state.trades)
        ids = [t.fill.trade_id for t in state.trades]
        assert ids == [str(n) for n in range(1, len(ids) + 1)]
        assert all(o.status == "closed" for o in state.orders.values())
        assert all(r.state.status != "done" for r in state.lists.values())
    assert kills == 5
