"""Retrying transient exchange errors: a pure backoff function and a small loop around it."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from btkit.errors import TransientExchangeError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 4
    base_seconds: float = 1.0
    cap_seconds: float = 30.0
    jitter: float = 0.5
    """Fraction of each delay drawn at random, so many clients do not retry in step."""


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
) -> T:
    """Run `call`, retrying TransientExchangeError; Retry-After wins over the backoff."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        try:
            return await call()
        except TransientExchangeError as exc:
            if attempt >= policy.max_retries:
                raise
            delay = exc.retry_after
            if delay is None:
                delay = backoff_delay(attempt, policy, rng.random())
            attempt += 1
            log.warning(
                "%s failed (%s); retry %d/%d in %.2f s",
                what,
                exc,
                attempt,
                policy.max_retries,
                delay,
            )
            await sleep(delay)
