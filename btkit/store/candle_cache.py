"""Candle files, parsed once: a binary copy beside each CSV, rebuilt when the CSV changes.

`<candles>/.cache/<file>.npy` holds the six columns and the size and mtime of
the CSV it came from (and how many bad rows were dropped from it); loading it
takes milliseconds where parsing takes seconds. The cache is only ever a copy:
a stale one, or one whose candles break the candle rule, is rebuilt.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from btkit.engine.candle_rules import candle_faults
from btkit.errors import DataError, StorageError
from btkit.market.arrays import CandleArrays
from btkit.store.atomic import write_private
from btkit.store.candle_csv import parse_candle_csv

log = logging.getLogger(__name__)


def cache_path(csv_path: Path) -> Path:
    return csv_path.parent / ".cache" / f"{csv_path.name}.npy"


def load_candles(csv_path: Path) -> CandleArrays:
    try:
        stat = csv_path.stat()
    except OSError as exc:
        raise DataError(f"Cannot read candle file {csv_path}: {exc.strerror}.") from exc
    stamp = np.array([stat.st_size, stat.st_mtime_ns], dtype=np.float64)
    cached = _read_cache(cache_path(csv_path), stamp)
    if cached is not None:
        arrays, dropped = cached
        if dropped:
            log.warning(
                "%s: %d bad row(s) were dropped when it was read (listed then); the other "
                "rows are used. Fix the file, or download it again, to silence this.",
                csv_path,
                dropped,
            )
        return arrays
    parsed = parse_candle_csv(csv_path)
    if parsed.dropped:
        log.warning("%s", parsed.report)
    _write_cache(cache_path(csv_path), parsed.candles, stamp, parsed.dropped)
    return parsed.candles


def _read_cache(path: Path, stamp: np.ndarray) -> tuple[CandleArrays, int] | None:
    try:
        table = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if table.ndim != 2 or table.shape[0] != 7 or not np.array_equal(table[6, :2], stamp):
        return None
    arrays = CandleArrays(table[0].astype(np.int64), *(table[i] for i in range(1, 6)))
    if candle_faults(*arrays.columns()).any() or (np.diff(arrays.timestamp) <= 0).any():
        return None  # damaged, or written before the candle rule: parse the CSV again
    return arrays, int(table[6, 2])


def _write_cache(path: Path, arrays: CandleArrays, stamp: np.ndarray, dropped: int) -> None:
    table = np.zeros((7, max(len(arrays), 3)), dtype=np.float64)
    for row, column in enumerate(arrays.columns()):
        table[row, : len(arrays)] = column
    table[6, :2] = stamp
    table[6, 2] = dropped
    if len(arrays) < 3:
        return  # too small to be worth caching, and the padding would corrupt it
    buffer = io.BytesIO()
    np.save(buffer, table, allow_pickle=False)
    try:
        write_private(path, buffer.getvalue())
    except StorageError as exc:
        log.warning("candle cache not written (%s); the CSV will be parsed next time", exc)
