"""The offline exchange: replays `<data>/candles/<SYMBOL>-1m.csv` under a simulated clock.

It serves only candles that have finished at the clock's time, as a real
exchange could, and builds longer intervals from the 1m file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from btkit.clock import Clock
from btkit.domain import MINUTE_MS, Candle
from btkit.engine.intervals import interval_ms
from btkit.errors import DataError
from btkit.market.arrays import CandleArrays, aggregate
from btkit.store.candle_cache import load_candles

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
            path = candle_file(self.candles_dir, symbol)
            if not path.exists():
                available = sorted(
                    p.name.removesuffix("-1m.csv") for p in self.candles_dir.glob("*-1m.csv")
                )
                raise DataError(
                    f"No candle file {path} for {symbol} on the replay exchange. "
                    f"Available: {', '.join(available) or 'none'}. Fetch it with `btkit "
                    f"download {symbol} --exchange binance` (or put a timestamp,open,high,low,"
                    "close,volume CSV of 1m candles there)."
                )
            arrays = load_candles(path)
            if len(arrays) == 0:
                raise DataError(f"{path} has no candles.")
            self._series[symbol] = arrays
        return self._series[symbol]

    async def check_symbols(self, symbols: Sequence[str]) -> list[str]:
        for symbol in symbols:
            self.series(symbol)
        return list(symbols)

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
