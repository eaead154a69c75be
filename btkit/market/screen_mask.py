"""A strategy's `screen` over history: which due ticks a backtest must really call.

A screen is the strategy's own vectorised promise: given candle columns it
answers, per candle, whether `get_signal` *may* return a signal at the tick
right after that candle finished. Where it answers False, the backtest counts
the call as one that returned None without running it; every tick it answers
True, or cannot answer (no candle in the minute before), is called as before,
so decisions are still made by `get_signal`, once, as live makes them.

The answers are kept per minute tick, a chunk of minutes at a time (the screen
sees that chunk's candles plus `overlap` earlier ones, for the history it
needs), so memory stays flat in the length of history. What is kept is the list of minutes to
call at, so finding the next due one is a binary search.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from btkit.domain.candles import Candles
from btkit.domain.errors import StrategyError
from btkit.domain.model import MINUTE_MS
from btkit.market.arrays import CandleArrays

Bools = npt.NDArray[np.bool_]
Screen = Callable[[Candles], Any]
"""What `@strategy(..., screen=...)` takes: candle columns in, one bool per candle out."""

CHUNK = 1 << 16
"""Minute ticks screened at a time (about 45 days)."""


class ScreenMask:
    def __init__(
        self, screen: Screen, history: CandleArrays, *, overlap: int, name: str, chunk: int = CHUNK
    ) -> None:
        self._screen = screen
        self._history = history
        self._overlap = max(overlap, 0)
        self._name = name
        self._chunk = chunk
        self._first = int(history.timestamp[0])
        self._minutes = (int(history.timestamp[-1]) - self._first) // MINUTE_MS + 2
        """Ticks from the first candle to just after the last: later ones have no candle."""
        self._cached: dict[int, list[int]] = {}

    def next_call(self, when: int, interval: int, end: int) -> int:
        """The first due tick `when + k * interval` (k >= 0) that must really be called.

        Past `end` (the first such tick after it) when every due tick up to `end` is ruled
        out. `when` and `interval` are whole minutes. Called once per signal: kept lean.
        """
        first, size = self._first, self._chunk
        minute = (when - first) // MINUTE_MS
        if minute < 0:  # before the first candle: nothing finished to screen
            return when
        step = interval // MINUTE_MS
        last = min((end - first) // MINUTE_MS, self._minutes - 1)
        if minute > last:  # past the end, or after the last candle: nothing to screen
            return when
        while True:
            chunk = minute // size
            calls = self._cached.get(chunk) or self._calls(chunk)
            # A screen's True marks a stretch of minutes (a crossing, a gap), so the due
            # one is among the next few: this loop rarely runs more than `step` times.
            for at in range(bisect_left(calls, minute), len(calls)):
                call = calls[at]
                if (call - minute) % step == 0:
                    if call > last:
                        break
                    return first + call * MINUTE_MS
            else:
                later = minute + -(-((chunk + 1) * size - minute) // step) * step
                if later <= last:  # the first due tick in the next chunk
                    minute = later
                    continue
            break
        # every due tick up to `last` is ruled out: the first after it (past `end`, or
        # after the last candle, where there is nothing to screen and it is called)
        return first + (minute + -(-(last + 1 - minute) // step) * step) * MINUTE_MS

    def _calls(self, chunk: int) -> list[int]:
        """The minute ticks of `chunk` at which a due `get_signal` must be called, in order."""
        calls = self._cached.get(chunk)
        if calls is None:
            # a chunk with no call at all is [-1]: never empty, so `get(...) or` finds it
            calls = (np.flatnonzero(self._needed(chunk)) + chunk * self._chunk).tolist() or [-1]
            if len(self._cached) >= 2:
                self._cached.clear()
            self._cached[chunk] = calls
        return calls

    def _needed(self, chunk: int) -> Bools:
        """Per minute tick of `chunk`: must `get_signal` be called there if it is due?"""
        history, first, base = self._history, self._first, chunk * self._chunk
        # the rows whose candle is the newest finished one at a tick of this chunk
        lo = history.index_at(first + (base - 1) * MINUTE_MS)
        hi = history.index_at(first + (base + self._chunk - 1) * MINUTE_MS)
        needed = np.ones(self._chunk, dtype=bool)  # no candle in the minute before: call
        if hi > lo:
            ticks = (history.timestamp[lo:hi] - first) // MINUTE_MS + 1 - base
            start = max(lo - self._overlap, 0)
            needed[ticks] = self._ask(start, hi)[lo - start :]
        return needed

    def _ask(self, start: int, stop: int) -> Bools:
        window = Candles.of_views(*self._history.slice(start, stop).columns())
        try:
            answer = np.asarray(self._screen(window))
        except Exception as exc:
            raise StrategyError(
                f"the screen of strategy {self._name} raised {type(exc).__name__}: {exc}. "
                "Fix it, or run with --no-screen"
            ) from exc
        if answer.shape != (stop - start,) or answer.dtype != np.bool_:
            raise StrategyError(
                f"the screen of strategy {self._name} returned {answer.dtype} of shape "
                f"{answer.shape}; it must return one bool per candle it is given "
                f"({stop - start}). Fix it, or run with --no-screen"
            )
        return answer
