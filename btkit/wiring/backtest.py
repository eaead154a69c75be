"""A backtest's adapters: candles in memory as the market, state in memory, no ledger.

The run records into the ledger once, at the end (`open_ledger`); ticks write nothing.
"""

from __future__ import annotations

from btkit.adapters.store.signal_state import MemorySignalStore
from btkit.drivers.backtest import BacktestRun
from btkit.drivers.runner import SymbolRunner
from btkit.engine.frames import Frame
from btkit.engine.pnl import Costs
from btkit.market.array_market import ArrayMarket
from btkit.market.arrays import CandleArrays
from btkit.strategies import StrategyDef


def open_backtest_run(
    *,
    symbol: str,
    strategy: StrategyDef,
    exchange_name: str,
    frame: Frame,
    costs: Costs,
    candles: CandleArrays,
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
    return BacktestRun(runner, market, frame)
