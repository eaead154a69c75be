"""Ambient context for strategy code (SPEC §2), carried by `contextvars`.

Strategies never pass times or names: while a tick runs, `get_candles` and
`get_average_price` read the tick's time and market from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from btkit.engine.params import Value
from btkit.ports import MarketData

if TYPE_CHECKING:
    from btkit.domain.candles import Candles


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    symbol: str
    when: int
    backtest: bool


@dataclass(frozen=True, slots=True)
class MethodContext:
    strategy_name: str
    exchange_name: str
    frame_name: str = ""


_execution: ContextVar[ExecutionContext] = ContextVar("btkit_execution")
_method: ContextVar[MethodContext] = ContextVar("btkit_method")
_market: ContextVar[MarketData] = ContextVar("btkit_market")
_params: ContextVar[tuple[tuple[str, Value], ...]] = ContextVar("btkit_params")


@contextmanager
def bound_values(values: tuple[tuple[str, Value], ...]) -> Iterator[None]:
    """Make `values` what `param()` reads during one strategy call."""
    token = _params.set(values)
    try:
        yield
    finally:
        _params.reset(token)


def param(name: str) -> Value:
    """The current value of the strategy's declared parameter `name`.

    Its default, unless `btkit sweep` or `--params NAME` chose another value.
    """
    try:
        values = _params.get()
    except LookupError:
        raise RuntimeError(
            f"param({name!r}) is only available inside a strategy that declares parameters "
            "(`@strategy(..., params={...})`), while btkit runs it"
        ) from None
    for key, value in values:
        if key == name:
            return value
    declared = ", ".join(key for key, _ in values)
    raise KeyError(f"param({name!r}): not declared; this strategy declares {declared}")


@contextmanager
def tick_context(
    execution: ExecutionContext, method: MethodContext, market: MarketData
) -> Iterator[None]:
    tokens = (_execution.set(execution), _method.set(method), _market.set(market))
    try:
        yield
    finally:
        _market.reset(tokens[2])
        _method.reset(tokens[1])
        _execution.reset(tokens[0])


def execution_context() -> ExecutionContext:
    try:
        return _execution.get()
    except LookupError:
        raise RuntimeError(
            "btkit context is only available while btkit runs a strategy tick "
            "(call get_candles / get_average_price from get_signal or a callback)"
        ) from None


def method_context() -> MethodContext:
    execution_context()
    return _method.get()


async def get_candles(symbol: str, interval: str, limit: int) -> Candles:
    """The `limit` most recent candles finished at the tick's time, oldest first.

    Read-only columns (`.close`, `.high`, ... NumPy views, no copy) and a sequence
    of frozen `Candle`s, live and in backtests alike: markets hand out what they
    cache, so a strategy must not be able to change what later calls see.
    """
    when = execution_context().when
    return await _market.get().candles(symbol, interval, limit, when)


async def get_average_price(symbol: str) -> float:
    """VWAP of the last five finished minutes at the tick's time."""
    when = execution_context().when
    price = await _market.get().average_price(symbol, when)
    if price is None:
        raise LookupError(f"no 1m candle for {symbol} in the five minutes before the tick")
    return price
