"""The one rule for a usable candle, applied wherever candles enter btkit.

Exchanges send NaN, null and zero prices, and files hold rows in seconds or
with high < low; such a candle would reach the VWAP, the PnL and the ledger as
garbage. The rule works on columns (one fault code per row, 0 = good), so an
exchange page and a million-row file share it, checked by NumPy in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from btkit.domain.model import MINUTE_MS

Codes = npt.NDArray[np.uint8]
Label = TypeVar("Label")

GOOD = 0
NOT_MS = 1
OFF_MINUTE = 2
NOT_A_NUMBER = 3
NOT_POSITIVE = 4
HIGH_BELOW_LOW = 5
OUTSIDE_RANGE = 6
BAD_VOLUME = 7

FAULTS: tuple[str, ...] = (
    "",
    "timestamp is not in milliseconds since 1970",
    "timestamp is not on a minute boundary",
    "a price is not a finite number",
    "a price is not > 0",
    "high is below low",
    "open or close is outside low..high",
    "volume is not a finite number >= 0",
)

EARLIEST_MS = 10**11
"""1973-03-03 in ms; a timestamp in seconds is below it until the year 5138."""
LATEST_MS = 10**14
"""Year 5138 in ms; microseconds and nanoseconds are above it."""


def candle_faults(
    timestamp: npt.ArrayLike,
    open_: npt.ArrayLike,
    high: npt.ArrayLike,
    low: npt.ArrayLike,
    close: npt.ArrayLike,
    volume: npt.ArrayLike,
) -> Codes:
    """One code per candle: GOOD, or the first rule it breaks (an index into FAULTS)."""
    t = np.asarray(timestamp, dtype=np.int64)
    o, h, lo, c, v = (
        np.asarray(column, dtype=np.float64) for column in (open_, high, low, close, volume)
    )
    prices = np.stack([o, h, lo, c]) if len(t) else np.empty((4, 0))
    with np.errstate(invalid="ignore"):
        checks = (
            (NOT_MS, (t < EARLIEST_MS) | (t >= LATEST_MS)),
            (OFF_MINUTE, t % MINUTE_MS != 0),
            (NOT_A_NUMBER, ~np.isfinite(prices).all(axis=0)),
            (NOT_POSITIVE, ~(prices > 0).all(axis=0)),
            (HIGH_BELOW_LOW, h < lo),
            (OUTSIDE_RANGE, (o < lo) | (o > h) | (c < lo) | (c > h)),
            (BAD_VOLUME, ~(np.isfinite(v) & (v >= 0))),
        )
    codes = np.zeros(len(t), dtype=np.uint8)
    for code, broken in reversed(checks):  # the first rule broken wins
        codes[broken] = code
    return codes


EXAMPLES = 3
"""Bad candles named in a message; the rest are counted (a log line, not a flood)."""


def first_faults(codes: Codes, labels: Sequence[Label]) -> list[tuple[Label, int]]:
    """(label, fault code) of the first EXAMPLES bad rows."""
    return [(labels[i], int(codes[i])) for i in np.flatnonzero(codes)[:EXAMPLES].tolist()]


def describe_faults(total: int, examples: Sequence[tuple[object, int]]) -> str:
    """'5 bad candle(s): <label> (<fault>), ... and 2 more'."""
    shown = ", ".join(f"{label} ({FAULTS[code]})" for label, code in examples)
    more = f" and {total - len(examples)} more" if total > len(examples) else ""
    return f"{total} bad candle(s): {shown}{more}"


def commonest_fault(codes: Codes) -> int:
    """The fault most rows break (GOOD when none does)."""
    counts = np.bincount(codes, minlength=len(FAULTS))
    counts[GOOD] = 0
    return int(counts.argmax()) if counts.any() else GOOD
