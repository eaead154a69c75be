"""The runner's trading hooks (`--trade off` changes nothing; see btkit.ports.Trading)."""

from __future__ import annotations

import asyncio

from btkit.domain.model import ClosedResult, OpenedResult
from btkit.domain.orders import TradeReport
from btkit.drivers.runner import SymbolRunner
from btkit.engine.pnl import Costs
from btkit.ports import ExchangeClose
from btkit.strategies import strategy
from tests.fakes import FakeEventLog, FakeSignalStore, PriceMarket, minute
from tests.test_drivers_fakes import always_long
from tests.trading_fakes import ScriptedTrading


def runner_with(trading: ScriptedTrading, log: FakeEventLog | None = None) -> SymbolRunner:
    return SymbolRunner(
        symbol="S",
        strategy=strategy("test", interval="1m")(always_long("S")),
        exchange_name="fake",
        market=PriceMarket({minute(n): 100.0 for n in range(200)}),
        store=FakeSignalStore(),
        costs=Costs(),
        ledger=log,
        trading=trading,
    )


def test_an_open_enters_after_the_ledger_and_a_model_close_exits_before_it():
    trading = ScriptedTrading()
    runner = runner_with(trading)

    async def ticks() -> list[object]:
        return [await runner.tick(minute(n)) for n in range(5, 9)]

    opened, _, _, closed = asyncio.run(ticks())
    assert isinstance(opened, OpenedResult)
    assert isinstance(closed, ClosedResult)
    assert opened.trade is not None
    assert opened.trade.role == "entry"
    assert closed.trade is not None
    assert closed.trade.role == "exit"
    assert [c[0] for c in trading.calls] == [
        "restore",
        "check",
        "enter",
        "check",
        "check",
        "check",
        "exit",
    ]


def test_a_protective_fill_closes_the_signal_with_its_reason_at_the_fill_price():
    trading = ScriptedTrading()
    log = FakeEventLog()
    runner = runner_with(trading, log)
    opened = asyncio.run(runner.tick(minute(5)))
    assert isinstance(opened, OpenedResult)
    report = TradeReport("paper", "stop_loss", "c", "closed", 1.0, 1.0, 98.9, 0.1, 99.0)
    trading.on_check = ExchangeClose("stop_loss", 98.9, minute(6), report)
    closed = asyncio.run(runner.tick(minute(6)))
    assert isinstance(closed, ClosedResult)
    assert (closed.close_reason, closed.current_price, closed.trade) == ("stop_loss", 98.9, report)
    assert ("exit", opened.signal.id) not in trading.calls  # the exchange already sold
    assert runner.signal is None
    assert [action for _, action, _ in log.events] == ["opened", "closed"]


def test_a_halted_symbol_still_opens_signals_and_leaves_the_orders_to_trading():
    """A halt stops orders, not the model: the signal opens as in a backtest and the
    Trader (asked to enter) answers `halted` without an order."""
    trading = ScriptedTrading()
    trading.halted = "the exchange holds an order btkit does not know"
    runner = runner_with(trading)
    result = asyncio.run(runner.tick(minute(5)))
    assert isinstance(result, OpenedResult)
    assert [c[0] for c in trading.calls] == ["restore", "check", "enter"]
