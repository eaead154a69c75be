"""Retrying transient exchange errors: a pure backoff function and a small loop around it."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from btkit.domain.errors import ExchangeOutageError, TransientExchangeError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 4
    base_seconds: float = 1.0
    cap_seconds: float = 30.0
    jitter: float = 0.5
    """Fraction of each delay drawn at random, so many clients do not retry in step."""
    budget_seconds: float = 15 * 60.0
    """The outage budget: no wait (Retry-After included) is longer than what is left of it."""
    persistent: bool = False
    """Retry until the budget is spent, not `max_retries` times: for simulated runs and
    downloads, which can wait for the exchange and must not lose a minute."""


def backoff_delay(attempt: int, policy: RetryPolicy, unit_random: float) -> float:
    """Delay before retry `attempt` (0-based): exponential, capped, with jitter.

    `unit_random` in [0, 1) is passed in so the function stays pure and testable.
    """
    ceiling = min(policy.cap_seconds, policy.base_seconds * 2.0**attempt)
    return ceiling * (1 - policy.jitter) + ceiling * policy.jitter * unit_random


class StopAwareSleep:
    """Retry waits that a stop request cuts short, so Ctrl-C never waits out a backoff."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise TransientExchangeError("stopping: retry abandoned")


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
    what: str,
    rng: random.Random | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> T:
    """Run `call`, retrying TransientExchangeError; Retry-After wins over the backoff.

    Every wait is capped by what is left of the outage budget (counted from the
    first failure of this call); once it is spent, ExchangeOutageError.
    """
    rng = rng or random.Random()
    attempt = 0
    first_failure: float | None = None
    while True:
        try:
            return await call()
        except TransientExchangeError as exc:
            now = monotonic()
            first_failure = now if first_failure is None else first_failure
            left = policy.budget_seconds - (now - first_failure)
            if left <= 0:
                raise ExchangeOutageError(
                    f"{what} failed for {now - first_failure:.0f} s ({exc}), longer than the "
                    "outage budget (BTKIT_OUTAGE_BUDGET_MINUTES); exiting so the supervisor "
                    "restarts btkit. Open signals are safe in their state files."
                ) from exc
            if attempt >= policy.max_retries and not policy.persistent:
                raise
            delay = exc.retry_after
            if delay is None:
                delay = backoff_delay(min(attempt, 30), policy, rng.random())
            delay = min(delay, left)
            attempt += 1
            log.warning(
                "%s failed (%s); retry %d%s in %.2f s",
                what,
                exc,
                attempt,
                "" if policy.persistent else f"/{policy.max_retries}",
                delay,
            )
            await sleep(delay)
