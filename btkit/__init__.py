"""btkit: a crash-safe signal trading daemon whose backtest and live share one engine.

Strategy modules use `strategy`, `Signal`, `get_candles` and `get_average_price`;
programs drive runs with `Live`, `Backtest` and `listen_signal_live` (loaded on first use,
so the command line starts fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from btkit.context import get_average_price, get_candles, param
from btkit.domain.model import (
    ActiveResult,
    Candle,
    ClosedResult,
    IdleResult,
    OpenedResult,
    OpenSignal,
    Pnl,
    Signal,
    TickResult,
)
from btkit.engine.params import Choice, FloatRange, IntRange
from btkit.strategies import StrategyDef, strategy

if TYPE_CHECKING:
    from btkit.api import Backtest, BacktestUtils, Live, LiveUtils, listen_signal_live

__all__ = [
    "ActiveResult",
    "Backtest",
    "BacktestUtils",
    "Candle",
    "Choice",
    "ClosedResult",
    "FloatRange",
    "IdleResult",
    "IntRange",
    "Live",
    "LiveUtils",
    "OpenSignal",
    "OpenedResult",
    "Pnl",
    "Signal",
    "StrategyDef",
    "TickResult",
    "get_average_price",
    "get_candles",
    "listen_signal_live",
    "param",
    "strategy",
]

_LAZY = {"Backtest", "BacktestUtils", "Live", "LiveUtils", "listen_signal_live"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from btkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'btkit' has no attribute {name!r}")
