"""btkit: a crash-safe signal trading daemon whose backtest and live share one engine.

Strategy modules use `strategy`, `Signal`, `get_candles` and `get_average_price`;
programs drive runs with `Live`, `Backtest` and `listen_signal_live` (loaded on first use,
so the command line starts fast).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from btkit.api import Backtest, BacktestUtils, Live, LiveUtils, listen_signal_live
    from btkit.context import get_average_price, get_candles, param
    from btkit.domain.candles import Candles
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

__all__ = [
    "ActiveResult",
    "Backtest",
    "BacktestUtils",
    "Candle",
    "Candles",
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

_HOME = {
    **dict.fromkeys(
        ["Backtest", "BacktestUtils", "Live", "LiveUtils", "listen_signal_live"], "api"
    ),
    **dict.fromkeys(["get_average_price", "get_candles", "param"], "context"),
    **dict.fromkeys(["Choice", "FloatRange", "IntRange"], "engine.params"),
    "Candles": "domain.candles",
    **dict.fromkeys(
        [
            "ActiveResult",
            "Candle",
            "ClosedResult",
            "IdleResult",
            "OpenedResult",
            "OpenSignal",
            "Pnl",
            "Signal",
            "TickResult",
        ],
        "domain.model",
    ),
    **dict.fromkeys(["StrategyDef", "strategy"], "strategies"),
}
"""Where each public name lives: loaded on first use, so `btkit --help` (which
imports `btkit.cli`) loads none of them."""


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'btkit' has no attribute {name!r}")
    value = getattr(import_module(f"btkit.{home}"), name)
    globals()[name] = value  # found once; later lookups skip this function
    return value
