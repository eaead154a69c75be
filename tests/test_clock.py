from __future__ import annotations

import asyncio

import pytest

from btkit.adapters.clock import SimulatedClock


def test_simulated_time_jumps_when_every_participant_waits():
    async def scenario():
        clock = SimulatedClock(0)
        seen = []

        async def sleeper(name, wakes):
            for when in wakes:
                await clock.sleep_until(when)
                seen.append((clock.now_ms(), name))
            clock.leave()

        clock.join()
        clock.join()
        await asyncio.gather(sleeper("a", [60_000, 180_000]), sleeper("b", [120_000]))
        return seen

    assert asyncio.run(scenario()) == [(60_000, "a"), (120_000, "b"), (180_000, "a")]


def test_simulated_time_waits_for_a_busy_participant():
    async def scenario():
        clock = SimulatedClock(0)
        clock.join()
        clock.join()
        task = asyncio.create_task(clock.sleep_until(60_000))
        await asyncio.sleep(0.01)
        assert clock.now_ms() == 0
        assert not task.done()
        clock.leave()
        await task
        return clock.now_ms()

    assert asyncio.run(scenario()) == 60_000


def test_simulated_clock_refuses_to_go_backwards():
    clock = SimulatedClock(1_000)
    clock.jump_to(2_000)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.jump_to(1_500)


def test_speed_paces_jumps_in_wall_time():
    waits = []
    wall = [0.0]

    async def fake_sleep(seconds):
        waits.append(seconds)
        wall[0] += seconds

    async def scenario():
        clock = SimulatedClock(0, speed=2, wall_sleep=fake_sleep, wall_now=lambda: wall[0])
        clock.join()
        await clock.sleep_until(60_000)
        await clock.sleep_until(180_000)

    asyncio.run(scenario())
    assert waits == [0.5, 1.0]


def test_speed_keeps_a_schedule_whatever_the_ticks_cost():
    """At 1 min/s minute m is due at second m: work done in a tick shortens the next wait."""
    wall = [100.0]
    waits = []

    async def fake_sleep(seconds):
        waits.append(round(seconds, 6))
        wall[0] += seconds

    async def scenario():
        clock = SimulatedClock(0, speed=1, wall_sleep=fake_sleep, wall_now=lambda: wall[0])
        clock.join()
        for minute in range(1, 5):
            await clock.sleep_until(minute * 60_000)
            wall[0] += 0.25  # the tick's work
        wall[0] += 3.0  # a tick that overran: the clock catches up without waiting
        await clock.sleep_until(5 * 60_000)
        await clock.sleep_until(9 * 60_000)
        await clock.sleep_until(10 * 60_000)

    asyncio.run(scenario())
    assert waits == [1.0, 0.75, 0.75, 0.75, 0.0, 1.75, 1.0]  # before: 1 1 1 1 1 4 1
