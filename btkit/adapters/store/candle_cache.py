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

from btkit.adapters.store.atomic import write_private
from btkit.adapters.store.candle_csv import CandleFile, parse_candle_csv
from btkit.domain.errors import DataError, StorageError
from btkit.engine.candle_rules import EXAMPLES, candle_faults
from btkit.market.arrays import CandleArrays

log = logging.getLogger(__name__)


def cache_path(csv_path: Path) -> Path:
    return csv_path.parent / ".cache" / f"{csv_path.name}.npy"


def load_candles(csv_path: Path) -> CandleArrays:
    try:
        stat = csv_path.stat()
    except OSError as exc:
        raise DataError(f"Cannot read candle file {csv_path}: {exc.strerror}.") from exc
    stamp = np.array([stat.st_size, stat.st_mtime_ns], dtype=np.float64)
    parsed = _read_cache(csv_path, stamp)
    if parsed is None:
        parsed = parse_candle_csv(csv_path)
        _write_cache(cache_path(csv_path), parsed, stamp)
    if parsed.dropped:
        log.warning("%s", parsed.report)
    return parsed.candles


def _read_cache(csv_path: Path, stamp: np.ndarray) -> CandleFile | None:
    try:
        table = np.load(cache_path(csv_path), allow_pickle=False)
    except (OSError, ValueError):
        return None
    if table.ndim != 2 or table.shape != (7, max(table.shape[1], _NOTES + 2 * EXAMPLES)):
        return None
    if not np.array_equal(table[6, :2], stamp):
        return None
    arrays = CandleArrays(table[0].astype(np.int64), *(table[i] for i in range(1, 6)))
    if candle_faults(*arrays.columns()).any() or (np.diff(arrays.timestamp) <= 0).any():
        return None  # damaged, or written before the candle rule: parse the CSV again
    pairs = table[6, _NOTES : _NOTES + 2 * EXAMPLES].astype(np.int64).reshape(-1, 2).tolist()
    examples = tuple((line, code) for line, code in pairs if line)
    return CandleFile(csv_path, arrays, int(table[6, 2]), examples)


_NOTES = 3
"""Row 6: CSV size, mtime, rows dropped, then (line, fault) of the first dropped rows."""


def _write_cache(path: Path, parsed: CandleFile, stamp: np.ndarray) -> None:
    arrays = parsed.candles
    width = _NOTES + 2 * EXAMPLES
    table = np.zeros((7, max(len(arrays), width)), dtype=np.float64)
    for row, column in enumerate(arrays.columns()):
        table[row, : len(arrays)] = column
    table[6, :2] = stamp
    table[6, 2] = parsed.dropped
    notes = [number for example in parsed.examples for number in example]
    table[6, _NOTES : _NOTES + len(notes)] = notes
    if len(arrays) < width:
        return  # too small to be worth caching, and the padding would corrupt it
    buffer = io.BytesIO()
    np.save(buffer, table, allow_pickle=False)
    try:
        write_private(path, buffer.getvalue())
    except StorageError as exc:
        log.warning("candle cache not written (%s); the CSV will be parsed next time", exc)
