"""A strategy's `screen`: backtests skip only the calls it rules out, and decide the same."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from btkit import Signal, get_average_price, get_candles, strategy
from btkit.adapters.store.candle_cache import load_candles
from btkit.app.backtest_jobs import BacktestJob, SymbolOutcome, run_one
from btkit.domain.errors import StrategyError
from btkit.domain.model import MINUTE_MS
from btkit.engine.frames import Frame, default_start
from btkit.engine.pnl import Costs
from btkit.market.arrays import CandleArrays
from btkit.market.screen_mask import ScreenMask
from btkit.strategies import StrategyDef, resolve_strategy
from tests.conftest import REPO, json_events

ETHBTC = REPO / "data" / "candles" / "ETHBTC-1m.csv"
START = 1_514_764_800_000


def history(minutes: list[int]) -> CandleArrays:
    times = START + np.array(minutes, dtype=np.int64) * MINUTE_MS
    close = 100.0 + np.sin(np.array(minutes, dtype=np.float64) / 7.0)
    return CandleArrays(times, close, close + 0.5, close - 0.5, close, np.ones(len(minutes)))


def by_minute(candles: Any) -> np.ndarray:
    """A screen that answers from each candle alone: True on a pseudo-random third."""
    return (candles.timestamp // MINUTE_MS * 2654435761) % 7 < 2


def brute_force(arrays: CandleArrays, when: int, interval: int, end: int) -> int:
    """The first due tick to call, one tick at a time: the definition `next_call` keeps."""
    rows = {int(t): i for i, t in enumerate(arrays.timestamp)}
    answers = by_minute(arrays)
    while when <= end:
        row = rows.get(when - MINUTE_MS)
        if row is None or answers[row]:
            return when
        when += interval
    return when


def test_next_call_is_the_first_due_tick_the_screen_does_not_rule_out() -> None:
    rng = random.Random(7)
    minutes = sorted(rng.sample(range(3_000), 2_400))  # gaps of every length
    arrays = history(minutes)
    mask = ScreenMask(by_minute, arrays, overlap=3, name="t", chunk=97)  # many chunk edges
    first = START + minutes[0] * MINUTE_MS
    for _ in range(2_000):
        when = first + rng.randrange(-20, 3_100) * MINUTE_MS
        interval = rng.choice([1, 3, 5, 15, 60]) * MINUTE_MS
        end = when + rng.randrange(0, 600) * MINUTE_MS
        assert mask.next_call(when, interval, end) == brute_force(arrays, when, interval, end)


def test_the_screen_sees_its_chunk_plus_the_overlap_and_keeps_memory_to_two_chunks() -> None:
    seen: list[int] = []

    def screen(candles: Any) -> np.ndarray:
        seen.append(len(candles))
        return np.zeros(len(candles), dtype=bool)

    arrays = history(list(range(1_000)))
    mask = ScreenMask(screen, arrays, overlap=35, name="t", chunk=100)
    after = mask.next_call(START + 40 * MINUTE_MS, 5 * MINUTE_MS, START + 990 * MINUTE_MS)
    assert after == START + 995 * MINUTE_MS  # all ruled out: the first due tick past the end
    assert seen[0] == 99  # ticks 0..99 have rows 0..98 before them
    assert all(count == 135 for count in seen[1:-1])  # 100 rows + 35 of overlap
    assert len(mask._cached) <= 2


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (lambda candles: np.ones(3, dtype=bool), "one bool per candle"),
        (lambda candles: np.ones(len(candles)), "one bool per candle"),
        (lambda candles: 1 / 0, "raised ZeroDivisionError"),
    ],
)
def test_a_broken_screen_is_a_clear_strategy_error(answer: Any, complaint: str) -> None:
    mask = ScreenMask(answer, history(list(range(300))), overlap=5, name="wrong", chunk=100)
    with pytest.raises(StrategyError, match=complaint) as caught:
        mask.next_call(START + 10 * MINUTE_MS, MINUTE_MS, START + 200 * MINUTE_MS)
    assert "the screen of strategy wrong" in str(caught.value)
    assert "--no-screen" in str(caught.value)


def backtest(definition: StrategyDef, *, screen: str = "use", candles: Path = ETHBTC) -> Any:
    arrays = load_candles(candles)
    start = default_start([int(arrays.timestamp[0])], definition.warmup_minutes)
    end = int(arrays.timestamp[-1]) + MINUTE_MS
    job = BacktestJob(
        "ETHBTC",
        definition.name,
        REPO / "strategies",
        "replay",
        candles,
        Frame(start, end),
        Costs(),
        screen=screen,  # type: ignore[arg-type]
    )
    return asyncio.run(run_one(job, definition, None, arrays))


def decisions(outcome: SymbolOutcome) -> list[tuple[Any, ...]]:
    return [
        (c.signal.id, c.signal.position, c.close_timestamp, c.close_reason, c.pnl.pnl_percentage)
        for c in outcome.closed
    ]


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"fast": 5, "slow": 20},
        {"fast": 25, "slow": 60},
        {"fast": 25, "slow": 20},
    ],
)
def test_my_strategy_decides_the_same_with_and_without_its_screen(values: dict[str, int]) -> None:
    loaded = resolve_strategy(REPO / "strategies", "my-strategy")
    assert loaded.unbound is not None
    # without its constraint, so that fast above slow (cut short by the window) is covered too
    free = dataclasses.replace(loaded.unbound, constraint=None)
    shipped = dataclasses.replace(loaded, constraint=None, unbound=free).bind(values)
    assert shipped.screen is not None
    screened = backtest(shipped)
    every_call = backtest(shipped, screen="off")
    assert len(decisions(every_call)) >= 50
    assert decisions(screened) == decisions(every_call)
    assert screened.failures.calls == every_call.failures.calls  # skipped calls still count
    assert backtest(shipped, screen="check").failures.calls == every_call.failures.calls


def counting(screen: Any, **callbacks: Any) -> tuple[StrategyDef, dict[str, int]]:
    """A crossing-style strategy that counts its real calls."""
    count = {"calls": 0, "idle": 0}

    async def signal(symbol: str) -> Signal | None:
        count["calls"] += 1
        candles = await get_candles(symbol, "1m", 2)
        if len(candles) < 2 or candles.close[-1] <= candles.close[-2] * 1.002:
            return None
        price = await get_average_price(symbol)
        return Signal("long", price, price * 1.003, price * 0.997, 30)

    return strategy("counting", interval="3m", warmup_minutes=2, screen=screen, **callbacks)(
        signal
    ), count


def jumps(candles: Any) -> np.ndarray:
    """The screen of `counting`: the same rule, as columns (True where unsure)."""
    close = candles.close
    maybe = np.ones(len(close), dtype=bool)
    maybe[1:] = close[1:] > close[:-1] * 1.002 * (1 - 1e-9)
    return maybe


def test_a_screen_saves_the_calls_it_rules_out_and_nothing_else() -> None:
    screened, screened_calls = counting(jumps)
    plain = dataclasses.replace(screened, screen=None)
    with_screen = backtest(screened)
    real_calls = screened_calls["calls"]
    without = backtest(plain)
    assert decisions(with_screen) == decisions(without)
    assert len(decisions(without)) >= 20
    assert real_calls < without.failures.calls / 3  # the point of it
    assert with_screen.failures.calls == without.failures.calls


def test_a_screen_that_rules_out_a_signal_is_caught_by_check_screen() -> None:
    wrong, _ = counting(lambda candles: np.zeros(len(candles), dtype=bool))
    assert decisions(backtest(wrong)) == []  # the promise is the author's: nothing opens
    with pytest.raises(StrategyError, match=r"ruled out .* but get_signal opened a long signal"):
        backtest(wrong, screen="check")


def test_a_strategy_with_idle_callbacks_is_called_at_every_due_tick() -> None:
    idle: list[int] = []
    screened, count = counting(jumps, on_idle=lambda result: idle.append(result.timestamp))
    plain_idle: list[int] = []
    plain, _ = counting(None, on_idle=lambda result: plain_idle.append(result.timestamp))
    outcome = backtest(screened)
    assert decisions(outcome) == decisions(backtest(plain))
    assert count["calls"] == outcome.failures.calls  # nothing skipped: on_idle saw every tick
    assert idle == plain_idle


@pytest.mark.system
def test_the_cli_checks_and_switches_off_the_screen(project: Any) -> None:
    shutil.copy(ETHBTC, project.root / "data" / "candles")
    default = project.run("backtest", "ETHBTC", "-s", "my-strategy", "--json")
    off = project.run("backtest", "ETHBTC", "-s", "my-strategy", "--json", "--no-screen")
    checked = project.run("backtest", "ETHBTC", "-s", "my-strategy", "--json", "--check-screen")
    for done in (default, off, checked):
        assert done.returncode == 0, done.stderr
    assert json_events(default.stdout) == json_events(off.stdout) == json_events(checked.stdout)
    assert len(json_events(default.stdout)) >= 50

    both = project.run("backtest", "ETHBTC", "-s", "my-strategy", "--no-screen", "--check-screen")
    assert both.returncode == 2
    assert "choose one" in both.stderr

    project.write_strategy(
        "liar.py",
        "import numpy as np\n"
        "from btkit import Signal, get_average_price, strategy\n"
        "@strategy('liar', interval='5m', warmup_minutes=5,\n"
        "          screen=lambda candles: np.zeros(len(candles), dtype=bool))\n"
        "async def liar(symbol):\n"
        "    price = await get_average_price(symbol)\n"
        "    return Signal('long', price, price * 1.01, price * 0.99, 60)\n",
    )
    caught = project.run("backtest", "ETHBTC", "-s", "liar", "--check-screen")
    assert caught.returncode == 1
    assert "the screen of strategy liar ruled out" in caught.stderr
    assert "Traceback" not in caught.stderr
