"""Columnar candles: one NumPy array per field, so queries are slices, not searches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from btkit.domain.candles import read_only
from btkit.domain.model import Candle

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class CandleArrays:
    timestamp: Ints
    open: Floats
    high: Floats
    low: Floats
    close: Floats
    volume: Floats
    forget: Callable[[int], None] | None = field(default=None, repr=False, compare=False)
    """For a memory-mapped history: drop the pages of rows before this index from the
    process's memory (a later read maps them in again). None for arrays in memory."""

    def __len__(self) -> int:
        return len(self.timestamp)

    def columns(self) -> tuple[Ints, Floats, Floats, Floats, Floats, Floats]:
        return (self.timestamp, self.open, self.high, self.low, self.close, self.volume)

    def read_only(self) -> CandleArrays:
        """The same columns, read-only (views; already read-only ones are kept)."""
        return CandleArrays(
            read_only(self.timestamp),
            read_only(self.open),
            read_only(self.high),
            read_only(self.low),
            read_only(self.close),
            read_only(self.volume),
            self.forget,
        )

    def index_at(self, timestamp_ms: int) -> int:
        """Index of the first candle opening at or after `timestamp_ms`."""
        return int(self.timestamp.searchsorted(timestamp_ms))

    def slice(self, start: int, stop: int) -> CandleArrays:
        return CandleArrays(
            self.timestamp[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
        )

    def between(self, first_ms: int, end_ms: int) -> CandleArrays:
        """Candles that open in [first_ms, end_ms)."""
        return self.slice(self.index_at(first_ms), self.index_at(end_ms))

    def to_candles(self) -> list[Candle]:
        return [
            Candle(int(t), float(o), float(h), float(lo), float(c), float(v))
            for t, o, h, lo, c, v in zip(
                self.timestamp.tolist(),
                self.open.tolist(),
                self.high.tolist(),
                self.low.tolist(),
                self.close.tolist(),
                self.volume.tolist(),
                strict=True,
            )
        ]


def aggregate(candles: CandleArrays, step_ms: int) -> CandleArrays:
    """Roll 1m candles up into `step_ms` periods; a period with no 1m candle is a gap."""
    if len(candles) == 0:
        return candles
    buckets = candles.timestamp - candles.timestamp % step_ms
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    ends = np.r_[starts[1:], len(candles)] - 1
    return CandleArrays(
        buckets[starts],
        candles.open[starts],
        np.maximum.reduceat(candles.high, starts),
        np.minimum.reduceat(candles.low, starts),
        candles.close[ends],
        np.add.reduceat(candles.volume, starts),
    )
