from __future__ import annotations

import asyncio
import random

import pytest

from btkit.adapters.exchanges.retry import RetryPolicy, StopAwareSleep, backoff_delay, with_retries
from btkit.domain.errors import PermanentExchangeError, TransientExchangeError

POLICY = RetryPolicy(max_retries=3, base_seconds=1.0, cap_seconds=5.0, jitter=0.5)


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(0, 0.5, 1.0), (1, 1.0, 2.0), (2, 2.0, 4.0), (3, 2.5, 5.0), (10, 2.5, 5.0)],
)
def test_backoff_is_exponential_capped_and_jittered(attempt, low, high):
    assert backoff_delay(attempt, POLICY, 0.0) == pytest.approx(low)
    assert backoff_delay(attempt, POLICY, 0.999999) == pytest.approx(high, rel=1e-5)


def test_retries_transient_errors_then_succeeds_honouring_retry_after():
    waits = []
    outcomes = [
        TransientExchangeError("503"),
        TransientExchangeError("429", retry_after=7.0),
        "candles",
    ]

    async def call():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def sleep(seconds):
        waits.append(seconds)

    result = asyncio.run(
        with_retries(call, policy=POLICY, sleep=sleep, what="fetch", rng=random.Random(1))
    )
    assert result == "candles"
    assert 0.5 <= waits[0] <= 1.0
    assert waits[1] == 7.0


def test_gives_up_after_max_retries_and_never_retries_permanent_errors():
    calls = []

    async def transient():
        calls.append(1)
        raise TransientExchangeError("down")

    async def nowait(seconds):
        pass

    with pytest.raises(TransientExchangeError):
        asyncio.run(with_retries(transient, policy=POLICY, sleep=nowait, what="x"))
    assert len(calls) == 4

    async def permanent():
        calls.append(2)
        raise PermanentExchangeError("bad symbol")

    with pytest.raises(PermanentExchangeError):
        asyncio.run(with_retries(permanent, policy=POLICY, sleep=nowait, what="x"))
    assert calls.count(2) == 1


def test_a_stop_cuts_a_retry_wait_short():
    async def scenario():
        sleep = StopAwareSleep()
        waiting = asyncio.create_task(sleep(60))
        await asyncio.sleep(0.01)
        sleep.stop.set()
        with pytest.raises(TransientExchangeError, match="stopping"):
            await asyncio.wait_for(waiting, timeout=1)

    asyncio.run(scenario())


def test_sandbox_switches_to_the_testnet_and_is_refused_where_ccxt_has_none():
    from btkit.adapters.clock import WallClock
    from btkit.adapters.exchanges.ccxt_exchange import CcxtExchange, CcxtOptions
    from btkit.domain.errors import ConfigError

    async def scenario():
        testnet = CcxtExchange("binance", WallClock(), CcxtOptions(sandbox=True))
        try:
            assert "testnet" in testnet._client.urls["api"]["public"]
        finally:
            await testnet.close()
        with pytest.raises(ConfigError, match="no testnet"):
            CcxtExchange("kraken", WallClock(), CcxtOptions(sandbox=True))

    asyncio.run(scenario())
