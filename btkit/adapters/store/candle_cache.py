"""Candle files, parsed once: a binary copy beside each CSV, rebuilt when the CSV changes.

`<candles>/.cache/<file>.npy` holds the six columns (one contiguous row each;
the timestamps as int64 bits) and the size and mtime of the CSV it came from
(and how many bad rows were dropped from it). It is memory-mapped, not read:
opening a year takes milliseconds, the columns strategies get are views of the
map, and a backtest hands pages it has passed back to the OS, so memory stays
flat in the length of history. The cache is only ever a copy: a stale one, or
one whose candles break the candle rule, is rebuilt.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import mmap
from pathlib import Path

import numpy as np

from btkit.adapters.store.atomic import write_private
from btkit.adapters.store.candle_csv import CandleFile, parse_candle_csv
from btkit.domain.errors import DataError, StorageError
from btkit.engine.candle_rules import EXAMPLES, candle_faults
from btkit.market.arrays import CandleArrays

log = logging.getLogger(__name__)

FORMAT = -2.0
"""Row 6, column 0: the layout below (an older cache has the CSV's size there, and is rebuilt)."""
_NOTES = 4
"""Row 6: FORMAT, CSV size, mtime, rows dropped, then (line, fault) of the first dropped rows."""
CHECK_ROWS = 1 << 16
"""Rows checked at a time when a cache is opened: memory stays flat in the file's length."""


def cache_path(csv_path: Path) -> Path:
    return csv_path.parent / ".cache" / f"{csv_path.name}.npy"


def load_candles(csv_path: Path) -> CandleArrays:
    """The file's checked candles: memory-mapped from the cache, or parsed (and cached)."""
    try:
        stat = csv_path.stat()
    except OSError as exc:
        raise DataError(f"Cannot read candle file {csv_path}: {exc.strerror}.") from exc
    stamp = np.array([FORMAT, stat.st_size, stat.st_mtime_ns], dtype=np.float64)
    parsed = _read_cache(csv_path, stamp)
    if parsed is None:
        parsed = parse_candle_csv(csv_path)
        _write_cache(cache_path(csv_path), parsed, stamp)
    if parsed.dropped:
        log.warning("%s", parsed.report)
    return parsed.candles


class _Mapping:
    """A read-only map of a cache file; its pages can be handed back to the OS.

    The file is only ever replaced by a rename, never rewritten in place, so a
    map stays valid for as long as a backtest holds it.
    """

    def __init__(self, path: Path) -> None:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            self.offset = handle.tell()
            self.map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        if fortran or dtype != np.dtype(np.float64) or len(shape) != 2 or shape[0] != 7:
            raise ValueError("not a candle cache")
        self.width = int(shape[1])
        self.table = np.frombuffer(self.map, np.float64, 7 * self.width, self.offset).reshape(
            7, self.width
        )

    def forget(self, rows: int) -> None:
        """Drop the pages of the first `rows` rows of every column from this process's
        memory (they stay in the page cache; a later read maps them in again)."""
        if not hasattr(mmap, "MADV_DONTNEED"):
            return  # not on this OS: the pages stay until the backtest ends
        page = mmap.PAGESIZE
        for column in range(6):
            start = self.offset + column * self.width * 8
            first = -(-start // page) * page
            last = (start + min(rows, self.width) * 8) // page * page
            if last > first:
                self.map.madvise(mmap.MADV_DONTNEED, first, last - first)


def _read_cache(csv_path: Path, stamp: np.ndarray) -> CandleFile | None:
    try:
        mapping = _Mapping(cache_path(csv_path))
    except (OSError, ValueError):
        return None
    table = mapping.table
    if mapping.width < _NOTES + 2 * EXAMPLES or not np.array_equal(table[6, :3], stamp):
        return None
    size = int(table[6, _NOTES + 2 * EXAMPLES])
    if not 0 < size <= mapping.width:
        return None
    arrays = CandleArrays(
        table[0, :size].view(np.int64),
        table[1, :size],
        table[2, :size],
        table[3, :size],
        table[4, :size],
        table[5, :size],
    )
    if not _whole(arrays, mapping):
        return None  # damaged, or written before the candle rule: parse the CSV again
    arrays = dataclasses.replace(arrays, forget=mapping.forget)
    pairs = table[6, _NOTES : _NOTES + 2 * EXAMPLES].astype(np.int64).reshape(-1, 2).tolist()
    examples = tuple((line, code) for line, code in pairs if line)
    return CandleFile(csv_path, arrays, int(table[6, 3]), examples)


def _whole(arrays: CandleArrays, mapping: _Mapping) -> bool:
    """Every candle passes the candle rule and times rise, checked a slice at a time."""
    previous = np.iinfo(np.int64).min
    for start in range(0, len(arrays), CHECK_ROWS):
        chunk = arrays.slice(start, start + CHECK_ROWS)
        if candle_faults(*chunk.columns()).any():
            return False
        if chunk.timestamp[0] <= previous or (np.diff(chunk.timestamp) <= 0).any():
            return False
        previous = int(chunk.timestamp[-1])
        mapping.forget(start + len(chunk))
    return True


def _write_cache(path: Path, parsed: CandleFile, stamp: np.ndarray) -> None:
    """Write the 7-row table column by column: never a second copy of the candles in memory."""
    arrays = parsed.candles
    size = len(arrays)
    if size == 0:
        return
    width = max(size, _NOTES + 2 * EXAMPLES + 1)
    notes = np.zeros(width, dtype=np.float64)
    notes[:3] = stamp
    notes[3] = parsed.dropped
    numbers = [number for example in parsed.examples for number in example]
    notes[_NOTES : _NOTES + len(numbers)] = numbers
    notes[_NOTES + 2 * EXAMPLES] = size
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (7, width)}
    )
    padding = bytes(8 * (width - size))
    columns = [np.ascontiguousarray(arrays.timestamp).view(np.float64)]  # int64 bits
    columns += [np.ascontiguousarray(column, dtype="<f8") for column in arrays.columns()[1:]]
    pieces: list[bytes | memoryview] = [header.getvalue()]  # magic, version, header
    for column in columns:
        pieces += [column.data.cast("B"), padding]
    pieces.append(notes.data.cast("B"))
    try:
        write_private(path, pieces)
    except StorageError as exc:
        log.warning("candle cache not written (%s); the CSV will be parsed next time", exc)
