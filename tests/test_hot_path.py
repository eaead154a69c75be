"""The per-tick path of a backtest does no work it does not need (issue 14 item 1).

Speed itself is measured in bench/backtest_speed.py; these tests pin the causes:
no binary search over the whole history for the next window, no coroutine for
a callback the strategy does not have, the watchdog's description built only
when asked, and the same windows, context and results as before.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from btkit import IntRange, Signal, get_candles, param, strategy
from btkit.adapters.store.signal_state import MemorySignalStore
from btkit.context import execution_context, method_context
from btkit.domain.model import MINUTE_MS, IdleResult, OpenedResult
from btkit.drivers.runner import SymbolRunner
from btkit.engine.pnl import Costs
from btkit.market.array_market import ArrayMarket
from btkit.market.arrays import CandleArrays

START = 1_514_764_800_000


class CountingTimes(np.ndarray[Any, np.dtype[np.int64]]):
    """Timestamps that count the binary searches made over them."""

    searches = 0

    def searchsorted(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        CountingTimes.searches += 1
        return super().searchsorted(*args, **kwargs)


def history(minutes: list[int]) -> CandleArrays:
    """Candles at these minute offsets (gaps where one is missing), close = the offset."""
    times = (START + np.array(minutes, dtype=np.int64) * MINUTE_MS).view(CountingTimes)
    close: npt.NDArray[np.float64] = np.array(minutes, dtype=np.float64) + 100.0
    return CandleArrays(times, close, close + 1, close - 1, close, np.ones(len(minutes)))


def expected_window(arrays: CandleArrays, limit: int, when: int) -> list[int]:
    end = when - when % MINUTE_MS
    stamps = np.asarray(arrays.timestamp).tolist()
    return [t for t in stamps if end - limit * MINUTE_MS <= t < end]


def test_consecutive_windows_are_found_without_a_binary_search_and_exactly_across_gaps():
    minutes = [m for m in range(3000) if not 1000 <= m < 1040 and m not in (1500, 1502, 2999)]
    arrays = history(minutes)
    market = ArrayMarket("S", arrays)

    def windows(first: int, last: int) -> None:
        for when in range(START + first * MINUTE_MS, START + last * MINUTE_MS, 5 * MINUTE_MS):
            for limit in (35, 1):
                window = asyncio.run(market.candles("S", "1m", limit, when + 7))
                assert window.timestamp.tolist() == expected_window(arrays, limit, when)

    windows(-50, 3100)  # before, across each gap and after the history: exact
    CountingTimes.searches = 0
    windows(100, 900)  # a stretch without gaps, reached by a jump back
    assert CountingTimes.searches <= 2  # the jump's first window only


def test_windows_at_random_times_still_match_a_full_search():
    rng = np.random.default_rng(14)
    minutes = sorted(rng.choice(5000, size=3000, replace=False).tolist())
    arrays = history(minutes)
    market = ArrayMarket("S", arrays)
    for when in rng.integers(START - 100 * MINUTE_MS, START + 5100 * MINUTE_MS, 400).tolist():
        limit = int(rng.choice([1, 5, 35, 400]))
        window = asyncio.run(market.candles("S", "1m", limit, when))
        assert window.timestamp.tolist() == expected_window(arrays, limit, when)


def runner_for(get_signal: Any, **callbacks: Any) -> SymbolRunner:
    minutes = list(range(200))
    return SymbolRunner(
        symbol="S",
        strategy=strategy("hot", interval="1m", **callbacks)(get_signal),
        exchange_name="replay",
        market=ArrayMarket("S", history(minutes)),
        store=MemorySignalStore(),
        costs=Costs(),
        backtest=True,
        frame_name="bt-1",
    )


def test_a_strategy_without_callbacks_costs_no_callback_call_per_tick():
    async def nothing(symbol: str) -> None:
        return None

    runner = runner_for(nothing)
    called: list[str] = []

    async def spy(name: str, result: object) -> None:
        called.append(name)

    runner._callback = spy  # type: ignore[method-assign]

    async def scenario() -> list[Any]:
        return [await runner.tick(START + m * MINUTE_MS) for m in range(10, 20)]

    results = asyncio.run(scenario())
    assert all(isinstance(r, IdleResult) for r in results)
    assert called == []


def test_callbacks_that_exist_still_run_in_order():
    seen: list[str] = []

    async def once(symbol: str) -> Signal | None:
        return None if seen else Signal("long", 110.0, 200.0, 50.0, 30)

    runner = runner_for(
        once,
        on_open=lambda r: seen.append("open"),
        on_idle=lambda r: seen.append("idle"),
        on_active=lambda r: seen.append("active"),
        on_tick=lambda r: seen.append(r.action),
    )

    async def scenario() -> None:
        for m in range(10, 13):
            await runner.tick(START + m * MINUTE_MS)

    asyncio.run(scenario())
    assert seen == ["open", "opened", "active", "active", "active", "active"]


def test_strategy_code_sees_the_tick_context_and_the_watchdog_a_named_call():
    seen: dict[str, Any] = {}

    async def look(symbol: str) -> None:
        execution = execution_context()
        seen["execution"] = (execution.symbol, execution.when, execution.backtest)
        seen["method"] = method_context()
        seen["candles"] = len(await get_candles(symbol, "1m", 5))
        seen["in_strategy"] = runner.in_strategy

    runner = runner_for(look)
    when = START + 50 * MINUTE_MS
    result = asyncio.run(runner.tick(when))
    assert isinstance(result, IdleResult)
    assert not isinstance(result, OpenedResult)
    assert seen["execution"] == ("S", when, True)
    assert (seen["method"].strategy_name, seen["method"].frame_name) == ("hot", "bt-1")
    assert seen["candles"] == 5
    assert seen["in_strategy"].startswith("strategy hot get_signal for S (")
    assert runner.in_strategy is None


def test_the_runner_calls_a_bound_strategy_as_written_with_its_values_on_the_tick():
    seen: list[Any] = []

    async def tuned(symbol: str) -> None:
        seen.append(param("fast"))

    declared = strategy("hot", interval="1m", params={"fast": IntRange(1, 9, default=3)})(tuned)
    bound = declared.bind({"fast": 7})
    runner = runner_for(tuned)
    runner = SymbolRunner(
        symbol="S",
        strategy=bound,
        exchange_name="replay",
        market=runner.market,
        store=MemorySignalStore(),
        costs=Costs(),
        backtest=True,
    )
    assert runner._get_signal is tuned  # no wrapper coroutine per call
    asyncio.run(runner.tick(START + 50 * MINUTE_MS))
    assert seen == [7]

    async def replaced(symbol: str) -> None:  # a function set after binding is called as set
        seen.append(("replaced", param("fast")))

    later = SymbolRunner(
        symbol="S",
        strategy=dataclasses.replace(bound, get_signal=replaced),
        exchange_name="replay",
        market=runner.market,
        store=MemorySignalStore(),
        costs=Costs(),
        backtest=True,
    )
    asyncio.run(later.tick(START + 50 * MINUTE_MS))
    assert seen == [7, ("replaced", 7)]
