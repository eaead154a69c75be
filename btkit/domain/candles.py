"""`Candles`: what `get_candles` returns, a window of finished candles, oldest first.

Strategies read it either as columns (`candles.close`, `.high`, ... NumPy
arrays that are read-only views of the market's own memory: no copy, no
Python object per candle) or as a sequence of frozen `Candle`s (index, slice,
iterate, `len`) for code written that way; the rows are built on first use.
Both are read-only, so a strategy cannot change what a later call sees. A
window equals another window, or a tuple, holding the same candles.

The one domain type that needs NumPy: it lives apart from `model` so that
naming a candle, a signal or a port does not load NumPy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Self, TypeVar, overload

import numpy as np
import numpy.typing as npt

from btkit.domain.model import Candle

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


T = TypeVar("T", bound=npt.NDArray[Any])


def read_only(column: T) -> T:
    """`column` itself if it is read-only, else a read-only view of it (never a copy)."""
    if not column.flags.writeable:
        return column
    view = column.view()
    view.flags.writeable = False
    return view


class Candles(Sequence[Candle]):
    """Finished candles, oldest first: columns as read-only NumPy views, and rows as `Candle`s."""

    __slots__ = ("_close", "_high", "_low", "_open", "_rows", "_timestamp", "_volume")

    def __init__(
        self,
        timestamp: Ints,
        open: Floats,
        high: Floats,
        low: Floats,
        close: Floats,
        volume: Floats,
    ) -> None:
        if not len(timestamp) == len(open) == len(high) == len(low) == len(close) == len(volume):
            raise ValueError("candle columns must have the same length")
        self._timestamp = read_only(timestamp)
        self._open = read_only(open)
        self._high = read_only(high)
        self._low = read_only(low)
        self._close = read_only(close)
        self._volume = read_only(volume)
        self._rows: tuple[Candle, ...] | None = None

    @classmethod
    def of_views(
        cls,
        timestamp: Ints,
        open: Floats,
        high: Floats,
        low: Floats,
        close: Floats,
        volume: Floats,
    ) -> Self:
        """Wrap columns already known to be read-only and of one length (a market's slices).

        The hot path of a backtest: one call per `get_candles`, so no checks.
        """
        window = object.__new__(cls)
        window._timestamp = timestamp
        window._open = open
        window._high = high
        window._low = low
        window._close = close
        window._volume = volume
        window._rows = None
        return window

    @classmethod
    def from_rows(cls, rows: Iterable[Candle]) -> Self:
        """A window of candles one already holds as objects (an exchange's page)."""
        kept = tuple(rows)
        window = cls(
            np.fromiter((c.timestamp for c in kept), np.int64, len(kept)),
            *(
                np.fromiter((getattr(c, name) for c in kept), np.float64, len(kept))
                for name in ("open", "high", "low", "close", "volume")
            ),
        )
        window._rows = kept
        return window

    @property
    def timestamp(self) -> Ints:
        """Period starts, ms UTC."""
        return self._timestamp

    @property
    def open(self) -> Floats:
        return self._open

    @property
    def high(self) -> Floats:
        return self._high

    @property
    def low(self) -> Floats:
        return self._low

    @property
    def close(self) -> Floats:
        return self._close

    @property
    def volume(self) -> Floats:
        return self._volume

    def rows(self) -> tuple[Candle, ...]:
        """Every candle as a frozen `Candle` (built once, then kept)."""
        if self._rows is None:
            self._rows = tuple(
                map(
                    Candle,
                    self._timestamp.tolist(),
                    self._open.tolist(),
                    self._high.tolist(),
                    self._low.tolist(),
                    self._close.tolist(),
                    self._volume.tolist(),
                )
            )
        return self._rows

    def __len__(self) -> int:
        return len(self._timestamp)

    @overload
    def __getitem__(self, index: int) -> Candle: ...

    @overload
    def __getitem__(self, index: slice) -> Candles: ...

    def __getitem__(self, index: int | slice) -> Candle | Candles:
        if isinstance(index, slice):
            window = Candles(
                self._timestamp[index],
                self._open[index],
                self._high[index],
                self._low[index],
                self._close[index],
                self._volume[index],
            )
            if self._rows is not None:
                window._rows = self._rows[index]
            return window
        if self._rows is not None:
            return self._rows[index]
        size = len(self._timestamp)
        if not -size <= index < size:
            raise IndexError("candle index out of range")
        return Candle(
            int(self._timestamp[index]),
            float(self._open[index]),
            float(self._high[index]),
            float(self._low[index]),
            float(self._close[index]),
            float(self._volume[index]),
        )

    def __iter__(self) -> Iterator[Candle]:
        return iter(self.rows())

    def __reversed__(self) -> Iterator[Candle]:
        return reversed(self.rows())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Candles):
            return len(self) == len(other) and all(
                np.array_equal(mine, theirs)
                for mine, theirs in zip(self.columns(), other.columns(), strict=True)
            )
        if isinstance(other, tuple):
            return self.rows() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.rows())  # as the tuple it equals

    def __repr__(self) -> str:
        if not len(self):
            return "Candles([])"
        return f"Candles({len(self)} candles, {self[0]!r} .. {self[-1].timestamp})"

    def columns(self) -> tuple[Ints, Floats, Floats, Floats, Floats, Floats]:
        """(timestamp, open, high, low, close, volume), read-only."""
        return (self._timestamp, self._open, self._high, self._low, self._close, self._volume)


EMPTY = Candles(np.empty(0, dtype=np.int64), *(np.empty(0, dtype=np.float64) for _ in range(5)))
"""The window with no candles (a `limit` of 0)."""
