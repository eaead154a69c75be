"""The backtest driver (SPEC §7): the live runner's decisions over history, fast.

With no open signal the driver jumps straight to the next tick at which
`get_signal` is due (the ticks between can only be `idle`), and calls the same
`SymbolRunner.tick` as live. Once a signal opens, `first_close_index` finds in
one vectorised pass the tick at which the live loop would close it, and the
runner closes it there through the same code as live. A strategy with a
`screen` also skips the due ticks its screen rules out (`ScreenMask`): those
calls count as answered None, and every other due tick is called as live calls it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from btkit.domain.errors import StrategyError
from btkit.domain.model import MINUTE_MS, ClosedResult, OpenedResult, OpenSignal
from btkit.domain.timefmt import format_time
from btkit.drivers.runner import SymbolRunner
from btkit.engine.decision import next_signal_call_at
from btkit.engine.frames import Frame
from btkit.engine.scan import first_close_index
from btkit.market.array_market import ArrayMarket
from btkit.market.screen_mask import ScreenMask

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
    _reported: int = 0
    """Simulated time of the last progress report."""
    screen: ScreenMask | None = None
    """The strategy's screen (None: every due tick calls `get_signal`)."""
    check_screen: bool = False
    """Call `get_signal` at the ticks the screen rules out too, and fail if one opens."""

    def request_stop(self) -> None:
        """End the run at its next tick (the API's stop handle); results so far stand."""
        self.stop_requested = True

    async def results(self) -> AsyncIterator[ClosedResult]:
        """Yield every `closed` result in time order; `still_open` is set at the end."""
        runner, frame = self.runner, self.frame
        interval = runner.strategy.interval_ms
        when = self._reported = frame.start
        ticks = 0
        await runner.restore()
        screen = self.screen if self._screenable() else None
        while True:
            due_at = next_signal_call_at(runner.last_signal_call, interval)
            if due_at is not None and when < due_at:
                when = frame.first_tick_from(due_at)  # the ticks before can only be idle
            if screen is not None and when <= frame.end:
                when = await self._past_ruled_out(screen, when, interval)
            if when > frame.end:
                break
            ticks += 1
            if ticks % _YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let other tasks (and a stop request) run
            if self.stop_requested:
                break
            self._report(when)
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

    def _report(self, when: int) -> None:
        """Progress at most once a simulated day."""
        if self.progress is not None and when - self._reported >= 1440 * MINUTE_MS:
            self.progress(when)
            self._reported = when

    def _screenable(self) -> bool:
        """Skipping a call is only invisible when nothing else would have seen its tick."""
        strategy = self.runner.strategy
        return strategy.on_idle is None and strategy.on_tick is None

    async def _past_ruled_out(self, screen: ScreenMask, when: int, interval: int) -> int:
        """The first due tick from `when` that the screen does not rule out; the due
        ticks before it are counted as calls that answered None (or checked)."""
        if self.runner.failures.in_a_row:  # a failing strategy is called, and logged
            return when
        call_at = screen.next_call(when, interval, self.frame.end)
        if call_at != when:
            if self.check_screen:
                await self._check_ruled_out(range(when, call_at, interval))
            else:
                self.runner.skip_screened((call_at - when) // interval, call_at - interval)
        return call_at

    async def _check_ruled_out(self, ticks: Iterable[int]) -> None:
        """`--check-screen`: run the calls the screen ruled out; none may open a signal."""
        for when in ticks:
            result = await self.runner.tick(when)
            if isinstance(result, OpenedResult):
                raise StrategyError(
                    f"the screen of strategy {self.runner.strategy.name} ruled out "
                    f"{format_time(when)} for {self.runner.symbol}, but get_signal opened a "
                    f"{result.signal.position} signal there. A screen must answer True "
                    "wherever a signal may open. Fix it; until then, --no-screen calls "
                    "get_signal at every due tick."
                )

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
