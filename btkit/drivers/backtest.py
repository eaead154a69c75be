"""The backtest driver (SPEC §7): the live runner's decisions over history, fast.

With no open signal the driver jumps straight to the next tick at which
`get_signal` is due (the ticks between can only be `idle`), and calls the same
`SymbolRunner.tick` as live. Once a signal opens, `first_close_index` finds in
one vectorised pass the tick at which the live loop would close it, and the
runner closes it there through the same code as live.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from btkit.domain.model import MINUTE_MS, ClosedResult, OpenedResult, OpenSignal
from btkit.drivers.runner import SymbolRunner
from btkit.engine.decision import next_signal_call_at
from btkit.engine.frames import Frame
from btkit.engine.scan import first_close_index
from btkit.market.array_market import ArrayMarket

Progress = Callable[[int], None]
"""Called with the simulated time reached, now and then."""

_SCAN_CHUNK = 240 * MINUTE_MS
_YIELD_EVERY = 64
"""Ticks between two yields to the event loop: a library caller's other tasks keep running."""


@dataclass
class BacktestRun:
    runner: SymbolRunner
    market: ArrayMarket
    frame: Frame
    progress: Progress | None = None
    still_open: OpenSignal | None = None
    opened: list[OpenedResult] = field(default_factory=list)
    stop_requested: bool = False

    def request_stop(self) -> None:
        """End the run at its next tick (the API's stop handle); results so far stand."""
        self.stop_requested = True

    async def results(self) -> AsyncIterator[ClosedResult]:
        """Yield every `closed` result in time order; `still_open` is set at the end."""
        runner, frame = self.runner, self.frame
        interval = runner.strategy.interval_ms
        when = frame.start
        reported = when
        ticks = 0
        while True:
            due_at = next_signal_call_at(runner.last_signal_call, interval)
            if due_at is not None and when < due_at:
                when = frame.first_tick_from(due_at)  # the ticks before can only be idle
            if when > frame.end:
                break
            ticks += 1
            if ticks % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let other tasks (and a stop request) run
            if self.stop_requested:
                break
            if self.progress is not None and when - reported >= 1440 * MINUTE_MS:
                self.progress(when)
                reported = when
            result = await runner.tick(when)
            if not isinstance(result, OpenedResult):
                when = frame.next_tick_after(when)
                continue
            self.opened.append(result)
            closed = await self._fast_forward(result.signal)
            if closed is None:
                self.still_open = result.signal
                break
            yield closed
            when = frame.next_tick_after(closed.close_timestamp)
        if self.progress is not None:
            self.progress(frame.end)

    async def _fast_forward(self, signal: OpenSignal) -> ClosedResult | None:
        first = signal.timestamp + MINUTE_MS
        # Up to expiry in one pass; past it (or with no expiry: until TP or SL) in
        # chunks that double, so a signal closing soon never scans the whole history.
        chunk = _SCAN_CHUNK
        expires_at = signal.expires_at
        last = min(max(first + chunk if expires_at is None else expires_at, first), self.frame.end)
        while first <= self.frame.end:
            times, prices = self.market.price_series(first, last)
            index = first_close_index(signal, times, prices)
            if index is not None:
                return await self.runner.close_at(int(times[index]), float(prices[index]))
            if expires_at is None:
                chunk *= 2
            first, last = last + MINUTE_MS, min(last + chunk, self.frame.end)
        return None
