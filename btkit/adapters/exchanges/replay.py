"""The offline exchange: replays `<data>/candles/<SYMBOL>-1m.csv` under a simulated clock.

It serves only candles that have finished at the clock's time, as a real
exchange could, and builds longer intervals from the 1m file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from btkit.adapters.store.candle_cache import load_candles
from btkit.adapters.store.candle_files import find_candle_file
from btkit.domain.errors import ConfigError, DataError
from btkit.domain.model import MINUTE_MS, Candle
from btkit.engine.intervals import interval_ms
from btkit.market.arrays import CandleArrays, aggregate
from btkit.ports import Clock

REPLAY = "replay"


def candle_file(candles_dir: Path, symbol: str) -> Path:
    return candles_dir / f"{symbol}-1m.csv"


class ReplayExchange:
    name = REPLAY

    def __init__(self, candles_dir: Path, clock: Clock) -> None:
        self.candles_dir = candles_dir
        self._clock = clock
        self._series: dict[str, CandleArrays] = {}

    def series(self, symbol: str) -> CandleArrays:
        """The whole 1m history of `symbol` (loaded once)."""
        if symbol not in self._series:
            path = find_candle_file(self.candles_dir, symbol)
            arrays = load_candles(path)
            if len(arrays) == 0:
                raise DataError(f"{path} has no candles.")
            self._series[symbol] = arrays
        return self._series[symbol]

    async def check_symbols(self, symbols: Sequence[str]) -> list[str]:
        """Each symbol's file name (`ETH/BTC` -> `ETH-BTC` for `ETH-BTC-1m.csv`)."""
        resolved = []
        for symbol in symbols:
            name = find_candle_file(self.candles_dir, symbol).name.removesuffix("-1m.csv")
            if name in resolved:
                raise ConfigError(f"Two of the symbols {' '.join(symbols)} name {name}-1m.csv.")
            self.series(name)
            resolved.append(name)
        return resolved

    def first_open(self, symbol: str) -> int:
        return int(self.series(symbol).timestamp[0])

    def last_finish(self, symbol: str) -> int:
        """Time at which the last candle of the file has finished."""
        return int(self.series(symbol).timestamp[-1]) + MINUTE_MS

    async def fetch_candles(
        self, symbol: str, interval: str, since_ms: int, limit: int
    ) -> list[Candle]:
        step = interval_ms(interval)
        now = self._clock.now_ms()
        until = min(since_ms + limit * step, now - now % step)
        window = self.series(symbol).between(since_ms - since_ms % step, until)
        if step != MINUTE_MS:
            window = aggregate(window, step)
        first = window.index_at(since_ms)
        return window.slice(first, first + limit).to_candles()

    async def close(self) -> None:
        self._series.clear()
