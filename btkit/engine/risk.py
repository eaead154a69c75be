"""Risk limits checked before any entry: open positions, stake and the daily loss.

Pure: the limits and the current figures in, a refusal (or None) out. The daily
loss limit is a circuit breaker: once the UTC day's realised loss reaches it,
no new position opens until the next UTC day; open ones keep their protection.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_open_positions: int = 5
    max_stake: float | None = None
    daily_loss_limit: float | None = None
    """A positive quote amount."""


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str
    circuit_breaker: bool = False
    """True when the daily loss limit refused it: shown in `status`, lasts the UTC day."""


def utc_day_start(when_ms: int) -> int:
    return when_ms - when_ms % DAY_MS


def check_entry(
    limits: RiskLimits, *, open_positions: int, stake: float, realised_today: float, quote: str
) -> Refusal | None:
    """Why a new position may not open now, or None."""
    loss_limit = limits.daily_loss_limit
    if loss_limit is not None and realised_today <= -loss_limit:
        return Refusal(
            f"circuit breaker: today's realised loss {-realised_today:g} {quote} reached the "
            f"daily loss limit of {loss_limit:g} (BTKIT_DAILY_LOSS_LIMIT); no new positions "
            "until 00:00 UTC",
            circuit_breaker=True,
        )
    if open_positions >= limits.max_open_positions:
        return Refusal(
            f"{open_positions} positions are open, the most allowed "
            "(BTKIT_MAX_OPEN_POSITIONS); this signal is not traded"
        )
    if limits.max_stake is not None and stake > limits.max_stake:
        return Refusal(
            f"the stake {stake:g} {quote} exceeds the largest allowed, {limits.max_stake:g} "
            "(BTKIT_MAX_STAKE); this signal is not traded"
        )
    return None
