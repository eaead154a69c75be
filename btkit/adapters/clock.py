"""Time as a port: the engine asks a Clock, never the OS.

`WallClock` is real time. `SimulatedClock` is replayed time shared by the
per-symbol tasks: it jumps to the earliest requested wake-up once every
participating task is waiting, so a week of minutes runs in seconds, in order,
deterministically. At a finite `speed` it keeps a wall-time schedule: simulated
minute m is due at a fixed wall time, so the ticks' own work does not slow the
pace (a run that falls behind catches up without waiting).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable

from btkit.domain.model import MINUTE_MS


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until(self, when_ms: int) -> None:
        delay = (when_ms - self.now_ms()) / 1000
        if delay > 0:
            await asyncio.sleep(delay)

    def join(self) -> None:
        pass

    def leave(self) -> None:
        pass


class SimulatedClock:
    """Moves only forward; `speed` is simulated minutes per wall second (None: no pacing)."""

    def __init__(
        self,
        start_ms: int,
        *,
        speed: float | None = None,
        wall_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        wall_now: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be > 0 simulated minutes per second")
        self._now = start_ms
        self._speed = speed
        self._wall_sleep = wall_sleep
        self._wall_now = wall_now
        self._anchor: tuple[float, int] | None = None
        """(wall seconds, simulated ms) the pacing schedule counts from."""
        self._participants = 0
        self._waiting = 0
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._advancer: asyncio.Task[None] | None = None

    def now_ms(self) -> int:
        return self._now

    def join(self) -> None:
        self._participants += 1

    def leave(self) -> None:
        self._participants -= 1
        self._maybe_advance()

    def jump_to(self, when_ms: int) -> None:
        """Move time by hand (tests, backtests); refuses to go backwards."""
        if when_ms < self._now:
            raise ValueError(f"simulated clock cannot go back from {self._now} to {when_ms}")
        self._now = when_ms
        self._anchor = None  # a jump by hand starts a new schedule
        self._wake_due()

    async def sleep_until(self, when_ms: int) -> None:
        if when_ms <= self._now:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (when_ms, next(self._order), future))
        self._waiting += 1
        self._maybe_advance()
        try:
            await future
        except asyncio.CancelledError:
            if future.cancelled():  # not woken by _wake_due, so still counted
                self._waiting -= 1
            raise

    def _maybe_advance(self) -> None:
        everyone_waits = self._participants > 0 and self._waiting >= self._participants
        if everyone_waits and self._advancer is None:
            self._advancer = asyncio.get_running_loop().create_task(self._advance())

    async def _advance(self) -> None:
        try:
            while self._heap and self._heap[0][2].done():
                heapq.heappop(self._heap)
            if not self._heap:
                return
            target = self._heap[0][0]
            if self._speed is not None:
                await self._wall_sleep(self._wall_delay(target))
            self._now = max(self._now, target)
            self._wake_due()
        finally:
            self._advancer = None
        self._maybe_advance()

    def _wall_delay(self, target: int) -> float:
        """Seconds until simulated `target` is due on the schedule (0 when behind it)."""
        assert self._speed is not None
        wall = self._wall_now()
        if self._anchor is None:
            self._anchor = (wall, self._now)
        anchor_wall, anchor_sim = self._anchor
        due = anchor_wall + (target - anchor_sim) / MINUTE_MS / self._speed
        return max(0.0, due - wall)

    def _wake_due(self) -> None:
        while self._heap and self._heap[0][0] <= self._now:
            _, _, future = heapq.heappop(self._heap)
            if not future.done():
                self._waiting -= 1
                future.set_result(None)
