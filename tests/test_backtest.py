"""SPEC §7: the backtest driver over in-memory candles, and the command's errors."""

from __future__ import annotations

import asyncio
import itertools
import logging

import numpy as np
import pytest

from btkit import Backtest, Signal, strategy
from btkit.adapters.store.signal_state import MemorySignalStore
from btkit.domain.errors import ConfigError, DataError
from btkit.drivers.backtest import BacktestRun
from btkit.drivers.runner import SymbolRunner
from btkit.engine.frames import Frame
from btkit.engine.pnl import Costs, compute_pnl
from btkit.market.array_market import ArrayMarket
from btkit.market.arrays import CandleArrays
from btkit.settings import Settings
from tests.fakes import flat_candle, minute
from tests.test_runner import LONG, SCENARIOS, once


def arrays(candles):
    fields = ("timestamp", "open", "high", "low", "close", "volume")
    return CandleArrays(*[np.array([getattr(c, f) for c in candles]) for f in fields])


def make_run(candles, get_signal, *, interval="1m", start=5, end=None):
    definition = strategy("test", interval=interval)(get_signal)
    market = ArrayMarket("S", arrays(candles))
    runner = SymbolRunner(
        symbol="S",
        strategy=definition,
        exchange_name="fake",
        market=market,
        store=MemorySignalStore(),
        costs=Costs(),
        backtest=True,
    )
    last = end if end is not None else len(candles)
    return BacktestRun(runner, market, Frame(minute(start), minute(last)))


async def collect(run):
    return [closed async for closed in run.results()]


@pytest.mark.parametrize(
    ("signal", "prices", "close_minute", "reason", "close_price"),
    [s[1:] for s in SCENARIOS],
    ids=[s[0] for s in SCENARIOS],
)
def test_backtest_closes_the_runner_scenarios_the_same_way(
    signal, prices, close_minute, reason, close_price
):
    candles = (
        [flat_candle(n, 100.0) for n in range(5)]
        + [flat_candle(5 + i, p) for i, p in enumerate(prices)]
        + [flat_candle(5 + len(prices) + i, 100.0) for i in range(30)]
    )
    closed = asyncio.run(collect(make_run(candles, once(signal))))
    assert len(closed) == 1
    assert closed[0].close_reason == reason
    assert closed[0].close_timestamp == minute(close_minute)
    assert closed[0].current_price == pytest.approx(close_price)
    assert closed[0].pnl == compute_pnl(signal.position, 100.0, closed[0].current_price, Costs())


def test_the_frame_resumes_at_the_first_step_after_a_close():
    calls = []

    async def record(symbol):
        from btkit.context import execution_context

        calls.append(execution_context().when)
        return LONG if len(calls) == 1 else None

    candles = [flat_candle(n, 100.0) for n in range(5)] + [
        flat_candle(n, 110.0) for n in range(5, 30)
    ]
    closed = asyncio.run(collect(make_run(candles, record, interval="3m", end=20)))
    assert closed[0].close_timestamp == minute(6)
    # opened at 5; closed at 6; next call due at 5 + 3m = 8, then every 3 minutes
    assert calls == [minute(n) for n in (5, 8, 11, 14, 17, 20)]


def test_a_signal_open_at_the_end_is_reported_open_not_closed():
    candles = [flat_candle(n, 100.0) for n in range(20)]
    run = make_run(candles, once(Signal("long", 100.0, 150.0, 50.0, 600)))
    assert asyncio.run(collect(run)) == []
    assert run.still_open is not None
    assert run.still_open.timestamp == minute(5)


def test_minutes_without_candles_are_skipped_as_live_skips_them():
    prices = {n: 100.0 for n in range(5)} | {n: 105.0 for n in range(5, 8)}
    prices |= {n: 105.0 for n in range(20, 40)}  # minutes 8..19 have no candle
    candles = [flat_candle(n, p) for n, p in sorted(prices.items())]
    long_signal = Signal("long", 100.0, 200.0, 50.0, 10)  # expires at 15, inside the gap
    closed = asyncio.run(collect(make_run(candles, once(long_signal))))
    assert closed[0].close_reason == "time_expired"
    assert closed[0].close_timestamp == minute(21)  # the first tick with a candle before it


def test_a_strategy_that_raises_mid_backtest_is_logged_and_the_run_goes_on(caplog):
    calls = []

    async def flaky(symbol):
        calls.append(symbol)
        if len(calls) == 3:
            raise RuntimeError("mid-run bug")
        return Signal("long", 100.0, 100.5, 99.0, 2)

    candles = [flat_candle(n, 100.0) for n in range(60)]
    with caplog.at_level(logging.ERROR):
        closed = asyncio.run(collect(make_run(candles, flaky)))
    assert "mid-run bug" in caplog.text
    assert len(closed) > 10


def test_on_tick_hears_the_backtest_close_as_live_does():
    ticked = []
    closes = []

    async def get_signal(symbol):
        return Signal("long", 100.0, 101.0, 99.0, 60) if not closes else None

    definition = strategy("test", interval="1m", on_tick=ticked.append, on_close=closes.append)(
        get_signal
    )
    candles = [flat_candle(n, 100.0) for n in range(5)] + [
        flat_candle(n, 102.0) for n in range(5, 40)
    ]
    market = ArrayMarket("S", arrays(candles))
    runner = SymbolRunner(
        symbol="S",
        strategy=definition,
        exchange_name="fake",
        market=market,
        store=MemorySignalStore(),
        costs=Costs(),
        backtest=True,
    )
    closed = asyncio.run(collect(BacktestRun(runner, market, Frame(minute(5), minute(30)))))
    assert len(closed) == 1
    assert closes == closed
    assert [r for r in ticked if r.action == "closed"] == closed
    assert ticked[0].action == "opened"


def settings_for(project):
    root = project.root
    return Settings(
        strategies_dir=root / "strategies", data_dir=root / "data", logs_dir=root / "logs"
    )


def test_backtest_api_run_report_and_dump(project):
    settings = settings_for(project)

    async def collect_api():
        return [r async for r in Backtest.run("ETHBTC", strategy="my-strategy", settings=settings)]

    results = asyncio.run(collect_api())
    assert results
    assert all(r.action == "closed" for r in results)
    report = Backtest.get_report("my-strategy")
    assert "# Backtest report: my-strategy" in report
    assert f"| Closed signals | {len(results)} |" in report
    path = Backtest.dump("my-strategy", settings=settings)
    assert path == project.root / "logs" / "backtest" / "my-strategy.md"
    assert path.read_text() == report


COUNTING = """
from btkit import strategy
CALLS = []

@strategy("counting", interval="1m", warmup_minutes=10)
async def counting(symbol):
    CALLS.append(symbol)
"""


def counted() -> int:
    """Calls made so far by the `counting` strategy of the latest load (0 before it loads)."""
    import sys

    return len(getattr(sys.modules.get("btkit_user_strategies.counting"), "CALLS", []))


def test_backtest_background_returns_at_once_and_stops_mid_run(project):
    project.write_strategy("counting.py", COUNTING)
    settings = settings_for(project)

    async def scenario():
        run = await Backtest.background("ETHBTC", strategy="counting", settings=settings)
        assert run.task is not None
        assert not run.task.done()  # returned before the run ended
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while counted() < 5:
            assert loop.time() < deadline, "the background backtest never yielded"
            await asyncio.sleep(0)
        run()
        await asyncio.wait_for(run.wait(), timeout=60)
        return counted()

    calls_when_stopped = asyncio.run(scenario())
    full = asyncio.run(collect_api(settings, "counting"))
    assert full == []  # the strategy never signals; the frame has about 1 430 calls
    assert counted() > 1000
    assert calls_when_stopped < 200


async def collect_api(settings, name="my-strategy", **kwargs):
    return [r async for r in Backtest.run("ETHBTC", strategy=name, settings=settings, **kwargs)]


def test_the_same_backtest_twice_gives_the_same_report(project):
    settings = settings_for(project)
    first = asyncio.run(collect_api(settings))
    report = Backtest.get_report("my-strategy")
    second = asyncio.run(collect_api(settings))
    assert first == second
    assert Backtest.get_report("my-strategy") == report
    assert f"| Closed signals | {len(first)} |" in report


def test_start_after_end_and_empty_ranges_are_refused(project):
    settings = settings_for(project)

    async def consume(**kwargs):
        async for _ in Backtest.run("ETHBTC", strategy="my-strategy", settings=settings, **kwargs):
            pass

    with pytest.raises(ConfigError, match="is after --end"):
        asyncio.run(consume(start="2018-01-21", end="2018-01-20"))
    with pytest.raises(DataError, match="No candles for ETHBTC from 2019-01-01"):
        asyncio.run(consume(start="2019-01-01"))


def test_cli_backtest_writes_report_and_json_lines(project):
    done = project.run("backtest", "ETHBTC", "LTCBTC", "-s", "my-strategy", "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines
    assert all(line.startswith('{"strategy_name":"my-strategy"') for line in lines)
    assert "Backtest summary" in done.stderr
    report = project.root / "logs" / "backtest" / "my-strategy.md"
    assert "## Per symbol" in report.read_text()


def test_cli_backtest_errors(cli, project):
    after = cli.run(
        "backtest", "ETHBTC", "-s", "my-strategy", "--start", "2018-01-21", "--end", "2018-01-20"
    )
    assert after.returncode == 2
    assert "is after --end" in after.stderr
    empty = cli.run("backtest", "ETHBTC", "-s", "my-strategy", "--start", "2020-01-01")
    assert empty.returncode == 2
    assert "No candles for ETHBTC" in empty.stderr
    missing = cli.run("backtest", "BTCUSDT", "-s", "my-strategy")
    assert missing.returncode == 2
    assert "No candle file" in missing.stderr


def test_workers_do_not_change_results(project):
    one = project.run(
        "backtest", "ETHBTC", "LTCBTC", "-s", "my-strategy", "--json", "--workers", "1"
    )
    two = project.run(
        "backtest", "ETHBTC", "LTCBTC", "-s", "my-strategy", "--json", "--workers", "2"
    )
    assert one.stdout == two.stdout
    assert one.stdout


def test_a_coarser_step_spaces_the_signal_calls(project):
    calls = []
    project.write_strategy(
        "record.py",
        """
from btkit import strategy
from btkit.context import execution_context
SEEN = []

@strategy("record", interval="1m", warmup_minutes=10)
async def record(symbol):
    SEEN.append(execution_context().when)
""",
    )
    from btkit.app.backtest_jobs import plan, prepare

    planned = plan(settings_for(project), ["ETHBTC"], "record", "replay", step="15m")
    run = prepare(planned.jobs[0], planned.strategy, planned.history["ETHBTC"])
    asyncio.run(collect(run))
    module_seen = planned.strategy.get_signal.__globals__["SEEN"]
    calls.extend(module_seen)
    assert len(calls) > 50
    assert {b - a for a, b in itertools.pairwise(calls)} == {15 * 60_000}
    bad = project.run("backtest", "ETHBTC", "-s", "my-strategy", "--step", "7m")
    assert bad.returncode == 2
    assert "--step must be one of" in bad.stderr


ALWAYS_RAISES = """
from btkit import strategy

@strategy("broken", interval="5m", warmup_minutes=10)
async def broken(symbol):
    raise KeyError("close_price")
"""


def test_a_backtest_whose_strategy_always_raises_ends_nonzero_with_one_traceback(project):
    project.write_strategy("broken.py", ALWAYS_RAISES)
    done = project.run("backtest", "ETHBTC", "LTCBTC", "-s", "broken", "--workers", "1")
    assert done.returncode == 1
    assert done.stderr.count("Traceback") == 2  # once per symbol, then counted
    assert "broken get_signal for ETHBTC has FAILED 100 times in a row" in done.stderr
    assert "get_signal raised on every one of its 287 calls for ETHBTC" in done.stderr
    assert "calls for LTCBTC" in done.stderr
    assert "KeyError: 'close_price'" in done.stderr
