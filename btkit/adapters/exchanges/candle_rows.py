"""Exchange OHLCV rows to checked candles: a bad candle is dropped and logged, once.

ccxt hands over whatever the exchange sent: `"NaN"` becomes nan, `null` stays
None. Such a candle must never reach the engine (a NaN price closes signals
with NaN PnL), so every row goes through `engine.candle_rules` here. A dropped
candle is logged once per source and time: an exchange that keeps serving the
same broken minute is asked for it at every tick, and the log must not repeat it.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from btkit.domain.model import Candle
from btkit.engine.candle_rules import Codes, candle_faults, describe_faults, first_faults

log = logging.getLogger(__name__)

_REPORTED_MAX = 10_000
_reported: OrderedDict[tuple[str, int], None] = OrderedDict()


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _timestamp(value: Any) -> int:
    try:
        stamp = int(value)
    except (TypeError, ValueError, OverflowError):
        return -1  # breaks the milliseconds rule, so it is dropped and named
    return stamp if 0 <= stamp < 2**62 else -1


def checked_candles(rows: Sequence[Sequence[Any]], source: str) -> list[Candle]:
    """Candles from `[timestamp, open, high, low, close, volume]` rows; bad ones are
    dropped and logged (`source` names the exchange, symbol and interval)."""
    if not rows:
        return []
    stamps = [_timestamp(r[0]) for r in rows]
    columns = [[_number(r[i]) if i < len(r) else math.nan for r in rows] for i in range(1, 6)]
    # A missing volume is an exchange's way of saying "no trades": 0, not a fault.
    columns[4] = [
        0.0 if len(r) < 6 or r[5] is None else v for r, v in zip(rows, columns[4], strict=True)
    ]
    codes = candle_faults(np.array(stamps, dtype=np.int64), *columns)
    candles = [
        Candle(t, o, h, lo, c, v)
        for t, o, h, lo, c, v, code in zip(stamps, *columns, codes.tolist(), strict=True)
        if code == 0
    ]
    if len(candles) < len(rows):
        _report(codes, stamps, source)
    return candles


def _report(codes: Codes, stamps: list[int], source: str) -> None:
    fresh = np.array(
        [code != 0 and (source, t) not in _reported for code, t in zip(codes, stamps, strict=True)]
    )
    if not fresh.any():
        return
    for t in np.array(stamps)[fresh].tolist():
        _reported[(source, t)] = None
    while len(_reported) > _REPORTED_MAX:
        _reported.popitem(last=False)
    log.warning(
        "%s: dropped %s; they never reach the strategy or the signal checks",
        source,
        describe_faults(int(fresh.sum()), first_faults(np.where(fresh, codes, 0), stamps)),
    )
