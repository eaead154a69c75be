"""Candle CSV files (`timestamp,open,high,low,close,volume`, ms UTC, one row per period).

The file is read in blocks of whole lines, so memory stays bounded whatever the
file holds (a 2 GB sparse file of NUL bytes is refused at its first block).
Each block is parsed by NumPy's C reader in one go (five times faster than
the `csv` module, with the same numbers); a block it cannot parse is read
again row by row with the `csv` module, exactly as before, to name the bad
line. Rows that parse but break the candle rule (`engine.candle_rules`: NaN,
0, high < low, seconds...) are dropped
and reported; a file where most rows break it is refused with the reason.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from numpy.lib.recfunctions import structured_to_unstructured

from btkit.domain.errors import DataError
from btkit.engine.candle_rules import (
    FAULTS,
    NOT_MS,
    Codes,
    candle_faults,
    commonest_fault,
    describe_faults,
    first_faults,
)
from btkit.market.arrays import CandleArrays, Floats, Ints

log = logging.getLogger(__name__)

HEADER = ["timestamp", "open", "high", "low", "close", "volume"]
_ROW = np.dtype([("t", np.int64)] + [(name, np.float64) for name in HEADER[1:]])
"""NumPy's C reader converts numbers as int() / float() do, or refuses where they
accept (`1_000`, fullwidth digits, > int64): such a block takes the exact path."""
BLOCK_BYTES = 1 << 22
MAX_LINE_BYTES = 1 << 16
"""A candle row is under 200 bytes; a longer "line" means the file is not a candle CSV."""


@dataclass(frozen=True, slots=True)
class CandleFile:
    path: Path
    candles: CandleArrays
    dropped: int
    """Rows that parsed but broke the candle rule, left out of `candles`."""
    examples: tuple[tuple[int, int], ...]
    """(line, fault code) of the first dropped rows."""

    @property
    def report(self) -> str:
        """Which rows were dropped and why."""
        return drop_report(self.path, self.dropped, self.examples)


def read_candle_csv(path: Path) -> CandleArrays:
    """Parse and check a candle file; bad rows are dropped with a warning."""
    parsed = parse_candle_csv(path)
    if parsed.dropped:
        log.warning("%s", parsed.report)
    return parsed.candles


def parse_candle_csv(path: Path) -> CandleFile:
    """Parse and check a candle file; a DataError names the file, line and fix."""
    stamps: list[Ints] = []
    tables: list[Floats] = []
    lines: list[Ints] = []
    try:
        with path.open("rb") as handle:
            blocks = _blocks(path, handle)
            first_line, header = next(blocks, (2, b""))
            names = next(csv.reader([header.decode(errors="replace")]), [])
            if [cell.strip().lower() for cell in names] != HEADER:
                raise DataError(f"{path}:1: the header must be {','.join(HEADER)}.")
            for first_line, block in blocks:
                t, table, line_numbers = _parse_block(path, first_line, block)
                stamps.append(t)
                tables.append(table)
                lines.append(line_numbers)
    except OSError as exc:
        raise DataError(f"Cannot read candle file {path}: {exc.strerror}.") from exc
    # Column by column, each block's part dropped once copied: the blocks and the
    # joined columns are never both whole in memory, and no transposed copy is made.
    timestamp = _joined(stamps, np.int64)
    columns = [_joined([table[:, j] for table in tables], np.float64) for j in range(5)]
    tables.clear()
    return _checked(path, timestamp, columns, _joined(lines, np.int64))


def _joined(parts: list[npt.NDArray[Any]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    joined = np.concatenate(parts) if parts else np.empty(0, dtype=dtype)
    parts.clear()
    return joined


def _blocks(path: Path, handle: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(number of its first line, whole lines): the header alone first, then blocks."""
    line_no, offset, rest = 1, 0, b""
    header_pending = True
    while data := handle.read(BLOCK_BYTES):
        nul = data.find(b"\0")
        if nul >= 0:
            line = line_no + rest.count(b"\n") + data.count(b"\n", 0, nul)
            raise DataError(
                f"{path}:{line}: NUL bytes (at byte {offset + nul}): "
                "the file is damaged (a copy or download cut short, or a sparse file), not "
                "a candle CSV. Move it away and download it again (btkit download SYMBOL)."
            )
        offset += len(data)
        rest += data
        if header_pending and b"\n" in rest:
            header, rest = rest.split(b"\n", 1)
            yield line_no, header.rstrip(b"\r")
            line_no, header_pending = line_no + 1, False
        cut = rest.rfind(b"\n") + 1
        if cut and not header_pending:
            yield line_no, rest[:cut]
            line_no += rest.count(b"\n", 0, cut)
            rest = rest[cut:]
        if len(rest) > MAX_LINE_BYTES:
            raise DataError(
                f"{path}:{line_no}: a line longer than {MAX_LINE_BYTES} bytes; this is not a "
                "candle CSV (one timestamp,open,high,low,close,volume row per line)."
            )
    if header_pending:
        yield line_no, rest.rstrip(b"\r")
    elif rest:
        yield line_no, rest


def _parse_block(path: Path, first_line: int, block: bytes) -> tuple[Ints, Floats, Ints]:
    try:
        text = block.decode()
    except UnicodeDecodeError as exc:
        line = first_line + block.count(b"\n", 0, exc.start)
        raise DataError(f"{path}:{line}: not UTF-8 text; a candle file is a plain CSV.") from None
    if "\r" not in text and "\n\n" not in text and not text.startswith("\n"):
        # the usual block: no blank line, no CR, so NumPy reads it without a split
        count = text.count("\n") + (not text.endswith("\n"))
        parsed = _read_rows(text)
        if parsed is not None and len(parsed) == count:
            numbers = np.arange(first_line, first_line + count, dtype=np.int64)
            return parsed["t"], structured_to_unstructured(parsed[HEADER[1:]]), numbers
    rows = text.split("\n")
    if rows[-1] == "":
        rows.pop()  # after the block's last newline
    numbers = np.arange(first_line, first_line + len(rows), dtype=np.int64)
    if "\r" in text:
        rows = [row.removesuffix("\r") for row in rows]
    if "" in rows:  # blank lines are skipped, as the csv module does
        keep = [i for i, row in enumerate(rows) if row]
        rows, numbers = [rows[i] for i in keep], numbers[keep]
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty((0, 5)), numbers
    parsed = _read_rows("\n".join(rows))
    if parsed is None or len(parsed) != len(rows):
        return _parse_rows(path, rows, numbers)
    return parsed["t"], structured_to_unstructured(parsed[HEADER[1:]]), numbers


def _read_rows(text: str) -> npt.NDArray[np.void] | None:
    """NumPy's C reader over whole lines; None where it refuses (found again, exactly)."""
    try:
        return np.loadtxt(io.StringIO(text), delimiter=",", dtype=_ROW, comments=None, ndmin=1)
    except ValueError:
        return None


def _parse_rows(path: Path, rows: list[str], numbers: Ints) -> tuple[Ints, Floats, Ints]:
    """The slow, exact path: the csv module, row by row, naming the first bad line."""
    stamps: list[int] = []
    values: list[list[float]] = []
    kept: list[int] = []
    for line_no, row in zip(
        numbers.tolist(), csv.reader(io.StringIO("\n".join(rows))), strict=False
    ):
        if not row:
            continue
        if len(row) != len(HEADER):
            raise DataError(f"{path}:{line_no}: expected 6 columns, found {len(row)}.")
        try:
            stamps.append(int(row[0]))
            values.append([float(cell) for cell in row[1:]])
        except ValueError:
            raise DataError(f"{path}:{line_no}: not a number in {','.join(row)!r}.") from None
        kept.append(line_no)
    return (
        np.array(stamps, dtype=np.int64),
        np.array(values, dtype=np.float64).reshape(-1, 5),
        np.array(kept, dtype=np.int64),
    )


def _checked(path: Path, timestamp: Ints, columns: list[Floats], line_no: Ints) -> CandleFile:
    codes = candle_faults(timestamp, *columns)
    bad = int(np.count_nonzero(codes))
    if bad and bad * 2 > len(codes):
        raise DataError(_refusal(path, codes, timestamp, line_no))
    kept_lines = line_no
    if bad:
        good = codes == 0
        timestamp, kept_lines = timestamp[good], line_no[good]
        columns = [column[good] for column in columns]
    unsorted = np.flatnonzero(timestamp[1:] <= timestamp[:-1])
    if len(unsorted):
        line = int(kept_lines[unsorted[0] + 1])
        raise DataError(
            f"{path}:{line}: timestamp {int(timestamp[unsorted[0] + 1])} is not after the "
            "previous row's; rows must be sorted by time with no duplicates."
        )
    examples = first_faults(codes, line_no.tolist()) if bad else []
    opens, highs, lows, closes, volumes = columns
    arrays = CandleArrays(timestamp, opens, highs, lows, closes, volumes)
    return CandleFile(path, arrays, bad, tuple(examples))


def drop_report(path: Path, dropped: int, examples: Sequence[tuple[int, int]]) -> str:
    named = [(f"line {line}", code) for line, code in examples]
    return f"{path}: dropped {describe_faults(dropped, named)}; the other rows are used"


def _refusal(path: Path, codes: Codes, timestamp: Ints, line_no: Ints) -> str:
    fault = commonest_fault(codes)
    example = int(np.flatnonzero(codes == fault)[0])
    where = f"line {int(line_no[example])}"
    share = f"{int(np.count_nonzero(codes))} of {len(codes)} rows are bad"
    if fault == NOT_MS and 10**8 <= abs(int(timestamp[example])) < 10**11:
        return (
            f"{path}: the timestamps are in seconds ({where}: {int(timestamp[example])}); "
            "btkit wants milliseconds since 1970 UTC. Multiply the first column by 1000, "
            "or download the file again with `btkit download`."
        )
    return (
        f"{path}: {share}, mostly: {FAULTS[fault]} ({where}). Fix the file or download it "
        "again with `btkit download`."
    )
