"""Which clock: the wall clock for real time, a simulated one for replays and history."""

from __future__ import annotations

from btkit.adapters.clock import SimulatedClock, WallClock
from btkit.ports import Clock


def wall_clock() -> Clock:
    return WallClock()


def simulated_clock(speed: float | None) -> SimulatedClock:
    """Starts at 0: the live wiring jumps it to the run's first tick once that is known."""
    return SimulatedClock(0, speed=speed)


def wall_time_ms() -> int:
    """Now, for stamps outside the tick loop (run ids, file names, report ages)."""
    return WallClock().now_ms()
