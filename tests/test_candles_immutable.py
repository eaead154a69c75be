"""Strategies get candles they cannot corrupt, the same type live and in backtests."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from btkit.adapters.store.candle_csv import read_candle_csv
from btkit.domain.candles import Candles
from btkit.market.array_market import ArrayMarket
from btkit.market.service import ExchangeMarket
from tests.conftest import REPO, json_events
from tests.fakes import ListExchange, flat_candle, minute
from tests.test_parity import closed_signals


def _markets():
    candles = [flat_candle(n, 100.0 + n) for n in range(200)]
    history = read_candle_csv(REPO / "data" / "candles" / "ETHBTC-1m.csv")
    first = int(history.timestamp[0])
    return [
        (ExchangeMarket(ListExchange(candles)), "S", minute(100)),
        (ArrayMarket("ETHBTC", history), "ETHBTC", first + 100 * 60_000),
    ]


@pytest.mark.parametrize("interval", ["1m", "5m"])
def test_candles_handed_out_cannot_be_changed_by_their_receiver(interval):
    async def check(market, symbol, when):
        first = await market.candles(symbol, interval, 3, when)
        assert isinstance(first, Candles)
        rows = tuple(first)
        with pytest.raises(AttributeError):
            first.pop()  # type: ignore[attr-defined]
        with pytest.raises(TypeError):
            first[0] = first[1]  # type: ignore[index]
        with pytest.raises(dataclasses.FrozenInstanceError):
            first[0].close = 0.0  # type: ignore[misc]
        with pytest.raises(AttributeError):
            first.close = first.open  # type: ignore[misc]
        for column in first.columns():
            with pytest.raises(ValueError, match="read-only"):
                column[0] = 0
        with pytest.raises(ValueError, match="read-only"):
            first[1:].close[0] = 0.0
        again = await market.candles(symbol, interval, 3, when)
        assert again == first
        assert again == rows
        assert tuple(again) == rows

    for market, symbol, when in _markets():
        asyncio.run(check(market, symbol, when))


MUTATOR = """
from btkit import Signal, get_average_price, get_candles, strategy

@strategy("mutator", interval="5m", warmup_minutes=30)
async def mutator(symbol):
    candles = await get_candles(symbol, "15m", 2)
    try:
        candles.pop()  # a strategy bug that must not change what later calls see
    except AttributeError:
        pass
    again = await get_candles(symbol, "15m", 2)
    if len(again) < 2 or again[-1].close <= again[-2].close:
        return None
    price = await get_average_price(symbol)
    return Signal("long", price, price * 1.005, price * 0.995, 60)
"""


def test_a_strategy_that_mutates_its_candles_decides_the_same_live_and_in_backtest(project):
    project.write_strategy("mutator.py", MUTATOR)
    live = project.run("live", "ETHBTC", "-s", "mutator", "--json", "--speed", "max")
    backtest = project.run("backtest", "ETHBTC", "-s", "mutator", "--json")
    assert live.returncode == 0, live.stderr
    assert backtest.returncode == 0, backtest.stderr
    from_live = closed_signals(json_events(live.stdout))
    from_backtest = closed_signals(json_events(backtest.stdout))
    assert len(from_backtest) >= 5
    assert [row[:5] for row in from_live] == [row[:5] for row in from_backtest]
