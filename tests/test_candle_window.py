"""`get_candles` windows: NumPy columns over the market's memory, and a sequence of candles."""

from __future__ import annotations

import asyncio
import random

import numpy as np
import pytest

from btkit.adapters.store.candle_csv import read_candle_csv
from btkit.domain.candles import EMPTY, Candles
from btkit.domain.model import MINUTE_MS, Candle
from btkit.market import array_market
from btkit.market.array_market import ArrayMarket
from btkit.market.arrays import CandleArrays, aggregate
from btkit.market.service import ExchangeMarket
from tests.conftest import REPO
from tests.fakes import ListExchange
from tests.test_parity import write_gappy_candles


def _old_window(history: CandleArrays, interval: str, limit: int, when: int) -> tuple[Candle, ...]:
    """What `ArrayMarket.candles` returned before it handed out columns: Candle objects."""
    step = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}[interval] * MINUTE_MS
    end = when - when % step
    window = history.between(end - limit * step, end)
    if step != MINUTE_MS:
        window = aggregate(window, step)
    return tuple(window.slice(max(len(window) - limit, 0), len(window)).to_candles())


@pytest.fixture(scope="module")
def gappy(tmp_path_factory) -> CandleArrays:
    path = tmp_path_factory.mktemp("thin") / "THIN-1m.csv"
    write_gappy_candles(path, minutes=2 * 1440)
    return read_candle_csv(path)


def test_a_1m_window_is_a_view_of_the_backtest_history_not_a_copy():
    history = read_candle_csv(REPO / "data" / "candles" / "ETHBTC-1m.csv")
    market = ArrayMarket("ETHBTC", history)
    when = int(history.timestamp[0]) + 500 * MINUTE_MS
    window = asyncio.run(market.candles("ETHBTC", "1m", 35, when))
    for mine, theirs in zip(window.columns(), market.history.columns(), strict=True):
        assert np.shares_memory(mine, theirs)
        assert not mine.flags.writeable
    assert window.close.dtype == np.float64
    assert window.timestamp.dtype == np.int64
    assert window.close.tolist() == [c.close for c in window]
    assert history.close.flags.writeable  # the caller's arrays are left as they were


@pytest.mark.parametrize("interval", ["1m", "5m", "15m", "1h"])
def test_windows_hold_exactly_the_candles_the_tuples_held(gappy, interval):
    """Same finished-candle rule, same values, across gaps and at the history's edges."""
    market = ArrayMarket("THIN", gappy)
    rng = random.Random(interval)
    first, last = int(gappy.timestamp[0]), int(gappy.timestamp[-1])
    for _ in range(300):
        when = rng.randrange(first - 90 * MINUTE_MS, last + 90 * MINUTE_MS, MINUTE_MS)
        when += rng.choice([0, 0, 1, 59_999])  # ticks are minute boundaries; be lenient
        limit = rng.choice([1, 2, 5, 35, 200])
        window = asyncio.run(market.candles("THIN", interval, limit, when))
        expected = _old_window(gappy, interval, limit, when)
        assert window == expected
        assert tuple(window) == expected
        assert window.close.tolist() == [c.close for c in expected]
        assert window.timestamp.tolist() == [c.timestamp for c in expected]


def test_a_window_behaves_as_the_tuple_of_its_candles():
    rows = tuple(
        Candle(1_600_000_000_000 + n * MINUTE_MS, 10.0 + n, 12.0 + n, 9.0 + n, 11.0 + n, n * 0.5)
        for n in range(12)
    )
    for window in (Candles.from_rows(rows), Candles(*Candles.from_rows(rows).columns())):
        assert len(window) == 12
        assert window[0] == rows[0]
        assert window[-1] == rows[-1]
        assert window[5] == rows[5]
        assert list(window) == list(rows)
        assert list(reversed(window)) == list(reversed(rows))
        assert window[3:9] == rows[3:9]
        assert window[::-2] == rows[::-2]
        assert window[-4:] == rows[-4:]
        assert isinstance(window[3:9], Candles)
        assert window[3:9].close.tolist() == [c.close for c in rows[3:9]]
        assert window == rows
        assert hash(window) == hash(rows)
        assert rows[4] in window
        assert window.index(rows[4]) == 4
        assert window.count(rows[4]) == 1
        assert window != rows[1:]
        assert window != list(rows)
        first, *_, last = window
        assert (first, last) == (rows[0], rows[-1])
        with pytest.raises(IndexError):
            window[12]
        with pytest.raises(IndexError):
            window[-13]
    assert EMPTY == ()
    assert len(EMPTY) == 0
    assert list(EMPTY) == []
    with pytest.raises(ValueError, match="same length"):
        Candles(np.zeros(2, dtype=np.int64), *(np.zeros(n) for n in (2, 2, 2, 2, 1)))


def test_live_and_backtest_windows_are_equal_column_by_column():
    history = read_candle_csv(REPO / "data" / "candles" / "ETHBTC-1m.csv").slice(0, 600)
    backtest = ArrayMarket("ETHBTC", history)
    live = ExchangeMarket(ListExchange(history.to_candles()))
    first = int(history.timestamp[0])

    async def both(interval: str, limit: int, when: int) -> tuple[Candles, Candles]:
        return (
            await live.candles("ETHBTC", interval, limit, when),
            await backtest.candles("ETHBTC", interval, limit, when),
        )

    for n in range(40, 600, 37):
        for interval, limit in (("1m", 35), ("5m", 6), ("15m", 3)):
            got_live, got_backtest = asyncio.run(both(interval, limit, first + n * MINUTE_MS))
            assert got_live == got_backtest
            assert len(got_live) > 0
            for column in got_live.columns():
                assert not column.flags.writeable


def test_limit_zero_or_less_is_an_empty_window():
    history = read_candle_csv(REPO / "data" / "candles" / "ETHBTC-1m.csv")
    when = int(history.timestamp[100])
    for market, symbol in (
        (ArrayMarket("ETHBTC", history), "ETHBTC"),
        (ExchangeMarket(ListExchange(history.to_candles()[:200])), "ETHBTC"),
    ):
        for limit in (0, -3):
            window = asyncio.run(market.candles(symbol, "1m", limit, when))
            assert len(window) == 0
            assert window == ()
            assert window.close.shape == (0,)


@pytest.mark.parametrize("block", [7, 100, 1 << 14])
def test_backtest_prices_equal_the_live_vwap_at_every_minute_across_price_blocks(
    gappy, monkeypatch, block
):
    """Prices are computed a block of minutes at a time; block edges change no bit."""
    monkeypatch.setattr(array_market, "BLOCK", block)
    history = gappy.slice(0, 900)
    backtest = ArrayMarket("THIN", history)
    live = ExchangeMarket(ListExchange(history.to_candles()))
    first, last = int(history.timestamp[0]), int(history.timestamp[-1])

    async def prices() -> tuple[list[float | None], list[float | None]]:
        whens = range(first - 3 * MINUTE_MS, last + 10 * MINUTE_MS, MINUTE_MS)
        return (
            [await live.average_price("THIN", when) for when in whens],
            [await backtest.average_price("THIN", when) for when in whens],
        )

    from_live, from_backtest = asyncio.run(prices())
    assert from_backtest == from_live  # exact equality, None where no candle is in the window
    assert sum(price is None for price in from_live) > 10  # the gaps are really there
    times, series = backtest.price_series(first + 2 * MINUTE_MS, last + 20 * MINUTE_MS)
    expected = [p for p in from_backtest[5:]][: len(series)]
    assert len(series) == (last - first) // MINUTE_MS + 5
    assert [None if p != p else float(p) for p in series.tolist()] == expected
    assert times.tolist() == list(
        range(first + 2 * MINUTE_MS, first + (len(series) + 2) * MINUTE_MS, MINUTE_MS)
    )
