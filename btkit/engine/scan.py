"""The backtest's fast-forward (SPEC §7): where an open signal would close, in one pass.

Given the §3 price at every later minute tick, find the first tick at which the
live loop's `close_reason` would close the signal: a price with TP or SL
reached, or expiry (never, for an infinite lifetime). Minutes without a price
are skipped, as live skips them.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from btkit.domain.model import OpenSignal
from btkit.engine.decision import price_hits

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def first_close_index(signal: OpenSignal, times: Ints, prices: Floats) -> int | None:
    """Index of the first tick that closes `signal`, or None if none in these ticks."""
    if len(times) == 0:
        return None
    take_profit, stop_loss = price_hits(
        signal.position, signal.price_take_profit, signal.price_stop_loss, prices
    )
    closes = np.asarray(take_profit, dtype=bool) | np.asarray(stop_loss, dtype=bool)
    if signal.expires_at is not None:  # None: lives until TP or SL
        closes |= times >= signal.expires_at
    closes &= ~np.isnan(prices)
    index = int(np.argmax(closes))
    return index if closes[index] else None
