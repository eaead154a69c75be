"""Growing a candle CSV safely: appends go to `<file>.part`, the CSV is only replaced whole.

A crash mid-append can tear only the last line of the `.part` file, which the
next open cuts off; the CSV itself is always either the old file or the new
one (temp file, fsync, rename). `commit` merges the part into the CSV.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from btkit.adapters.store.atomic import atomic_write_bytes
from btkit.adapters.store.candle_cache import load_candles
from btkit.adapters.store.candle_csv import HEADER
from btkit.domain.model import Candle


def _row(candle: Candle) -> str:
    return (
        f"{candle.timestamp},{candle.open!r},{candle.high!r},{candle.low!r},"
        f"{candle.close!r},{candle.volume!r}\n"
    )


def _last_good(lines: list[str]) -> list[str]:
    """Keep complete, well-formed lines only (a crash can tear the last one)."""
    good = []
    for line in lines:
        cells = line.rstrip("\n").split(",")
        try:
            if not line.endswith("\n") or len(cells) != 6:
                break
            int(cells[0])
            [float(cell) for cell in cells[1:]]
        except ValueError:
            break
        good.append(line)
    return good


class CandleAppender:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.part = path.with_name(path.name + ".part")
        self._lines = self._repair_part()

    def _repair_part(self) -> list[str]:
        if not self.part.exists():
            return []
        text = self.part.read_text()
        lines = _last_good(text.splitlines(keepends=True))
        repaired = "".join(lines)
        if repaired != text:
            atomic_write_bytes(self.part, repaired.encode())
        return lines

    def last_timestamp(self) -> int | None:
        if self._lines:
            return int(self._lines[-1].split(",", 1)[0])
        if self.path.exists():
            candles = load_candles(self.path)
            if len(candles):
                return int(candles.timestamp[-1])
        return None

    def append(self, candles: Sequence[Candle]) -> None:
        """Durably add rows (in time order, after `last_timestamp`) to the part file."""
        rows = [_row(c) for c in candles]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.part, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # owner-only whatever the umask, also for an older part file
        with os.fdopen(fd, "a") as handle:
            handle.writelines(rows)
            handle.flush()
            os.fsync(handle.fileno())
        self._lines.extend(rows)

    def commit(self) -> int:
        """Replace the CSV by CSV + part in one atomic step; returns the rows added."""
        if not self._lines:
            self.part.unlink(missing_ok=True)
            return 0
        existing = self.path.read_bytes() if self.path.exists() else ",".join(HEADER).encode()
        if existing and not existing.endswith(b"\n"):
            existing += b"\n"
        atomic_write_bytes(self.path, existing + "".join(self._lines).encode())
        self.part.unlink()
        added, self._lines = len(self._lines), []
        return added
