"""The seeds' Live API in Python, over the replay exchange in a temporary project."""

from __future__ import annotations

import asyncio

import pytest

from btkit import ClosedResult, Live, OpenedResult, listen_signal_live
from btkit.domain.errors import ConfigError
from btkit.settings import Settings
from btkit.wiring.live import RunOptions
from tests.conftest import ALWAYS_LONG, copy_candles


def settings_for(project):
    root = project.root
    return Settings(
        strategies_dir=root / "strategies", data_dir=root / "data", logs_dir=root / "logs"
    )


def four_hours(project):
    """Enough candles for opens and closes; a whole day only costs time."""
    for symbol in ("ETHBTC", "LTCBTC"):
        copy_candles(project.root / "data" / "candles", symbol, rows=240)


def test_run_yields_opened_and_closed_and_listeners_hear_them(project):
    four_hours(project)
    heard = []
    unsubscribe = listen_signal_live(heard.append)

    async def collect():
        return [
            r
            async for r in Live.run(
                "ETHBTC", strategy="my-strategy", exchange="replay", settings=settings_for(project)
            )
        ]

    try:
        results = asyncio.run(collect())
    finally:
        unsubscribe()
    assert results
    assert heard == results
    assert {type(r) for r in results} == {OpenedResult, ClosedResult}
    assert all(r.action in ("opened", "closed") for r in results)
    listen_signal_live(heard.append)()  # unsubscribing twice is harmless


def test_errors_propagate_to_the_caller(project):
    async def consume():
        async for _ in Live.run(
            "ETHBTC", strategy="nope", exchange="replay", settings=settings_for(project)
        ):
            pass

    with pytest.raises(ConfigError, match="Strategy 'nope' not found"):
        asyncio.run(consume())


def test_background_cancel_lets_the_open_signal_close(project):
    project.write_strategy("always_long.py", ALWAYS_LONG)
    seen = []

    async def scenario():
        first_event = asyncio.Event()

        def hear(result):
            seen.append(result)
            first_event.set()

        unsubscribe = listen_signal_live(hear)
        run = await Live.background(
            "ETHBTC",
            strategy="always-long",
            exchange="replay",
            settings=settings_for(project),
            options=RunOptions(speed=600),
        )
        try:
            await asyncio.wait_for(first_event.wait(), timeout=30)
            run()  # stop: no new signal, but the open one runs to its close
            await asyncio.wait_for(run.wait(), timeout=30)
        finally:
            unsubscribe()

    asyncio.run(scenario())
    assert [r.action for r in seen] == ["opened", "closed"]
    assert seen[0].signal.id == seen[1].signal.id


def test_symbols_side_by_side_keep_independent_state(project):
    four_hours(project)
    settings = settings_for(project)

    async def one(symbol):
        return [
            r
            async for r in Live.run(
                symbol, strategy="my-strategy", exchange="replay", settings=settings
            )
        ]

    async def both():
        return await asyncio.gather(one("ETHBTC"), one("LTCBTC"))

    eth, ltc = asyncio.run(both())
    assert {r.symbol for r in eth} == {"ETHBTC"}
    assert {r.symbol for r in ltc} == {"LTCBTC"}
    files = sorted(p.name for p in project.signal_dir.glob("*.json"))
    assert files == ["replay-my-strategy-ETHBTC.json", "replay-my-strategy-LTCBTC.json"]


def test_a_consumer_that_fails_leaves_no_unretrieved_task_error(project, caplog):
    import gc

    async def consume():
        async for _ in Live.run(
            "ETHBTC", strategy="my-strategy", exchange="replay", settings=settings_for(project)
        ):
            raise RuntimeError("the consumer failed")

    with pytest.raises(RuntimeError, match="the consumer failed"):
        asyncio.run(consume())
    gc.collect()  # an unretrieved failure is reported when its future is collected
    assert "never retrieved" not in caplog.text
    assert "Traceback" not in caplog.text


def test_run_redelivers_what_a_consumer_left_untaken_first_and_to_listeners(project):
    """A consumer that stops taking events (its process dies) gets them first next time."""
    project.write_strategy("always_long.py", ALWAYS_LONG)
    settings = settings_for(project)

    async def take(count):
        taken = []
        async for result in Live.run(
            "ETHBTC", strategy="always-long", exchange="replay", settings=settings
        ):
            taken.append(result)
            if len(taken) == count:
                return taken
        return taken

    first = asyncio.run(take(3))
    heard = []
    unsubscribe = listen_signal_live(heard.append)
    try:
        again = asyncio.run(take(1))
    finally:
        unsubscribe()
    assert again == heard
    assert again[0].redelivered
    assert (again[0].seq, again[0].signal.id, again[0].action) == (
        first[-1].seq,
        first[-1].signal.id,
        first[-1].action,
    )
