"""Candle CSV files (`timestamp,open,high,low,close,volume`, ms UTC, one row per period)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from btkit.errors import DataError
from btkit.market.arrays import CandleArrays

HEADER = ["timestamp", "open", "high", "low", "close", "volume"]


def read_candle_csv(path: Path) -> CandleArrays:
    """Parse and check a candle file; a DataError names the file, line and fix."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise DataError(f"Cannot read candle file {path}: {exc.strerror}.") from exc
    if not rows or [cell.strip().lower() for cell in rows[0]] != HEADER:
        raise DataError(f"{path}:1: the header must be {','.join(HEADER)}.")
    timestamps: list[int] = []
    values: list[list[float]] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        timestamp, numbers = _parse_row(path, line_no, row)
        if timestamps and timestamp <= timestamps[-1]:
            raise DataError(
                f"{path}:{line_no}: timestamp {timestamp} is not after the previous row's; "
                "rows must be sorted by time with no duplicates."
            )
        timestamps.append(timestamp)
        values.append(numbers)
    table = np.array(values, dtype=np.float64).reshape(-1, 5)
    return CandleArrays(
        np.array(timestamps, dtype=np.int64),
        table[:, 0].copy(),
        table[:, 1].copy(),
        table[:, 2].copy(),
        table[:, 3].copy(),
        table[:, 4].copy(),
    )


def _parse_row(path: Path, line_no: int, row: list[str]) -> tuple[int, list[float]]:
    if len(row) != len(HEADER):
        raise DataError(f"{path}:{line_no}: expected 6 columns, found {len(row)}.")
    try:
        timestamp = int(row[0])
        numbers = [float(cell) for cell in row[1:]]
    except ValueError:
        raise DataError(f"{path}:{line_no}: not a number in {','.join(row)!r}.") from None
    if not all(math.isfinite(n) and n >= 0 for n in numbers):
        raise DataError(f"{path}:{line_no}: prices and volume must be finite and >= 0.")
    return timestamp, numbers
