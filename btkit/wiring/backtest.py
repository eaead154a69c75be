"""A backtest's adapters: candles in memory as the market, state in memory, no ledger.

The run records into the ledger once, at the end (`open_ledger`); ticks write nothing.
"""

from __future__ import annotations

from typing import Literal

from btkit.adapters.store.signal_state import MemorySignalStore
from btkit.drivers.backtest import BacktestRun
from btkit.drivers.runner import SymbolRunner
from btkit.engine.frames import Frame
from btkit.engine.pnl import Costs
from btkit.market.array_market import ArrayMarket
from btkit.market.arrays import CandleArrays
from btkit.market.screen_mask import ScreenMask
from btkit.strategies import StrategyDef

ScreenUse = Literal["use", "off", "check"]
"""A strategy's screen: skip the calls it rules out, ignore it, or check it (`--check-screen`)."""


def open_backtest_run(
    *,
    symbol: str,
    strategy: StrategyDef,
    exchange_name: str,
    frame: Frame,
    costs: Costs,
    candles: CandleArrays,
    screen: ScreenUse = "use",
) -> BacktestRun:
    market = ArrayMarket(symbol, candles)
    runner = SymbolRunner(
        symbol=symbol,
        strategy=strategy,
        exchange_name=exchange_name,
        market=market,
        store=MemorySignalStore(),
        costs=costs,
        backtest=True,
        frame_name=frame.name,
    )
    mask = None
    if (
        screen != "off"
        and strategy.screen is not None
        and strategy.interval_ms % frame.step_ms == 0
    ):
        # (due ticks are then evenly spaced: next_call steps through them arithmetically)
        mask = ScreenMask(
            strategy.screen,
            market.history,
            overlap=strategy.warmup_minutes,
            name=strategy.name,
        )
    return BacktestRun(runner, market, frame, screen=mask, check_screen=screen == "check")
