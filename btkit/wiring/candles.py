"""Candle files: where `btkit download` appends a symbol's history."""

from __future__ import annotations

from btkit.adapters.exchanges.replay import candle_file
from btkit.adapters.store.candle_append import CandleAppender
from btkit.settings import Settings


def open_candle_appender(settings: Settings, symbol: str) -> CandleAppender:
    """Crash-safe appends to `<data>/candles/<SYMBOL>-1m.csv` (the replay's input)."""
    return CandleAppender(candle_file(settings.candles_dir, symbol))
