"""Candle files, parsed once: a binary copy beside each CSV, rebuilt when the CSV changes.

`<candles>/.cache/<file>.npy` holds the six columns and the size and mtime of
the CSV it came from; loading it takes milliseconds where parsing takes
seconds. The cache is only ever a copy: a bad or stale one is rebuilt.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np

from btkit.errors import DataError, StorageError
from btkit.market.arrays import CandleArrays
from btkit.store.atomic import write_private
from btkit.store.candle_csv import read_candle_csv

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
        return cached
    arrays = read_candle_csv(csv_path)
    _write_cache(cache_path(csv_path), arrays, stamp)
    return arrays


def _read_cache(path: Path, stamp: np.ndarray) -> CandleArrays | None:
    try:
        table = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if table.ndim != 2 or table.shape[0] != 7 or not np.array_equal(table[6, :2], stamp):
        return None
    return CandleArrays(table[0].astype(np.int64), *(table[i] for i in range(1, 6)))


def _write_cache(path: Path, arrays: CandleArrays, stamp: np.ndarray) -> None:
    table = np.zeros((7, max(len(arrays), 2)), dtype=np.float64)
    for row, column in enumerate(
        (arrays.timestamp, arrays.open, arrays.high, arrays.low, arrays.close, arrays.volume)
    ):
        table[row, : len(arrays)] = column
    table[6, :2] = stamp
    if len(arrays) < 2:
        return  # too small to be worth caching, and the padding would corrupt it
    buffer = io.BytesIO()
    np.save(buffer, table, allow_pickle=False)
    try:
        write_private(path, buffer.getvalue())
    except StorageError as exc:
        log.warning("candle cache not written (%s); the CSV will be parsed next time", exc)
