"""The backtest driver (SPEC §7): the live runner's decisions over history, fast.

With no open signal the driver jumps straight to the next tick at which
`get_signal` is due (the ticks between can only be `idle`), and calls the same
`SymbolRunner.tick` as live. Once a signal opens, `first_close_index` finds in
one vectorised pass the tick at which the live loop would close it, and the
runner closes it there through the same code as live.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from btkit.domain import MINUTE_MS, ClosedResult, OpenedResult, OpenSignal
from btkit.engine.scan import first_close_index
from btkit.market.array_market import ArrayMarket
from btkit.runtime.frames import Frame
from btkit.runtime.runner import SymbolRunner

Progress = Callable[[int], None]
"""Called with the simulated time reached, now and then."""

_SCAN_CHUNK = 240 * MINUTE_MS


@dataclass
class BacktestRun:
    runner: SymbolRunner
    market: ArrayMarket
    frame: Frame
    progress: Progress | None = None
    still_open: OpenSignal | None = None
    opened: list[OpenedResult] = field(default_factory=list)

    async def results(self) -> AsyncIterator[ClosedResult]:
        """Yield every `closed` result in time order; `still_open` is set at the end."""
        runner, frame = self.runner, self.frame
        interval = runner.strategy.interval_ms
        when = frame.start
        reported = when
        while when <= frame.end:
            if self.progress is not None and when - reported >= 1440 * MINUTE_MS:
                self.progress(when)
                reported = when
            last_call = runner.last_signal_call
            if last_call is not None and when - last_call < interval:
                when = frame.first_tick_from(last_call + interval)
                continue
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
