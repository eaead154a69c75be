"""Ambient context for strategy code (SPEC §2), carried by `contextvars`.

Strategies never pass times or names: while a tick runs, `get_candles` and
`get_average_price` read the tick's time and market from here.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
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
    values: tuple[tuple[str, Value], ...] = field(default=(), compare=False, repr=False)
    """The strategy's parameter values, for `param()` inside the tick."""


_Tick = tuple[int, str, bool, MethodContext, MarketData]
"""(when, symbol, backtest, method, market): one variable a tick sets and resets."""
_tick: ContextVar[_Tick] = ContextVar("btkit_tick")
_params: ContextVar[tuple[tuple[str, Value], ...]] = ContextVar("btkit_params")


class bound_values:  # lower case: used as `with bound_values(...)`, like contextlib's
    """Make `values` what `param()` reads during one strategy call.

    A class, not `@contextmanager`: it runs around every strategy call of a backtest.
    """

    __slots__ = ("_token", "_values")

    def __init__(self, values: tuple[tuple[str, Value], ...]) -> None:
        self._values = values

    def __enter__(self) -> None:
        self._token = _params.set(self._values)

    def __exit__(self, *exc: object) -> None:
        _params.reset(self._token)


def param(name: str) -> Value:
    """The current value of the strategy's declared parameter `name`.

    Its default, unless `btkit sweep` or `--params NAME` chose another value.
    """
    values = _params.get(None)  # set around a call made outside a tick (`bound_values`)
    if values is None:
        tick = _tick.get(None)  # else the runner's tick carries them: no wrapper per call
        values = tick[3].values if tick is not None and tick[3].values else None
    if values is None:
        raise RuntimeError(
            f"param({name!r}) is only available inside a strategy that declares parameters "
            "(`@strategy(..., params={...})`), while btkit runs it"
        )
    for key, value in values:
        if key == name:
            return value
    declared = ", ".join(key for key, _ in values)
    raise KeyError(f"param({name!r}): not declared; this strategy declares {declared}")


class tick_context:  # lower case: used as `with tick_context(...)`, like contextlib's
    """The tick's ambient context while strategy code runs.

    A class, not `@contextmanager`, holding a plain tuple: a backtest enters it
    once per tick, and `ExecutionContext` is only built when code asks for it.
    """

    __slots__ = ("_tick", "_token")

    def __init__(
        self, symbol: str, when: int, backtest: bool, method: MethodContext, market: MarketData
    ) -> None:
        self._tick = (when, symbol, backtest, method, market)

    def __enter__(self) -> None:
        self._token = _tick.set(self._tick)

    def __exit__(self, *exc: object) -> None:
        _tick.reset(self._token)


def _current() -> _Tick:
    try:
        return _tick.get()
    except LookupError:
        raise RuntimeError(
            "btkit context is only available while btkit runs a strategy tick "
            "(call get_candles / get_average_price from get_signal or a callback)"
        ) from None


def execution_context() -> ExecutionContext:
    when, symbol, backtest, _, _ = _current()
    return ExecutionContext(symbol, when, backtest)


def method_context() -> MethodContext:
    return _current()[3]


async def get_candles(symbol: str, interval: str, limit: int) -> Candles:
    """The `limit` most recent candles finished at the tick's time, oldest first.

    Read-only columns (`.close`, `.high`, ... NumPy views, no copy) and a sequence
    of frozen `Candle`s, live and in backtests alike: markets hand out what they
    cache, so a strategy must not be able to change what later calls see.
    """
    tick = _current()
    return await tick[4].candles(symbol, interval, limit, tick[0])


async def get_average_price(symbol: str) -> float:
    """VWAP of the last five finished minutes at the tick's time."""
    tick = _current()
    price = await tick[4].average_price(symbol, tick[0])
    if price is None:
        raise LookupError(f"no 1m candle for {symbol} in the five minutes before the tick")
    return price
