"""Backtest runs, one compact file each under `<data>/runs/`, apart from the live ledger.

A one-year backtest closes thousands of signals; as ledger rows (an opened and a
closed event each, with indexes) they cost ~770 bytes a signal and made the
ledger that live daemons write to grow by megabytes per run. Here a run is one
NumPy `.npz` file (zip-compressed columns, no pickles): the closed trades as
typed columns, signal ids only where they differ from the derived id (which is
recomputed on reading), and a small JSON header (strategy, exchange, frames,
creation time, the still-open signals).

A file is written whole or not at all (`atomic_write_bytes`: temp file, fsync,
rename, fsync of the folder), owner-only. Only `backtest-*.npz` names are runs;
a process killed while writing leaves at most a hidden `.backtest-*.tmp`, which
is never listed and which `btkit runs prune` removes.
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from btkit.adapters.store.atomic import TEMP_SUFFIX, atomic_write_bytes, ensure_private_dir
from btkit.domain.errors import ConfigError, StorageError
from btkit.domain.model import (
    ClosedResult,
    OpenSignal,
    Pnl,
    lifetime_from_json,
    lifetime_to_json,
)
from btkit.engine.step import signal_id
from btkit.faults import crash_point

FORMAT = 1
SUFFIX = ".npz"
PREFIX = "backtest-"
_POSITIONS = ("long", "short")
_REASONS = ("take_profit", "stop_loss", "time_expired")
_PRICES = ("price_open", "price_take_profit", "price_stop_loss", "price_close", "pnl", "minutes")
STALE_TEMP_SECONDS = 3600.0
"""A temp file this old belongs to no writer still running: a run takes milliseconds to write."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What `btkit runs` lists: a run's header, without its trades."""

    run_id: str
    strategy: str
    exchange: str
    created_at: int
    frames: tuple[tuple[str, int, int], ...]
    """(symbol, first tick, last tick) per symbol, ms UTC."""
    trades: int
    still_open: int
    size: int
    path: Path

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(symbol for symbol, _, _ in self.frames)

    @property
    def start(self) -> int:
        return min(start for _, start, _ in self.frames)

    @property
    def end(self) -> int:
        return max(end for _, _, end in self.frames)


@dataclass(frozen=True, slots=True)
class StoredRun:
    info: RunInfo
    closed: list[ClosedResult]
    """In (close time, symbol, signal id) order, as the ledger read them."""
    still_open: list[OpenSignal]


def _signal_json(signal: OpenSignal) -> dict[str, Any]:
    return {
        "id": signal.id,
        "position": signal.position,
        "price_open": signal.price_open,
        "price_take_profit": signal.price_take_profit,
        "price_stop_loss": signal.price_stop_loss,
        "minute_estimated_time": lifetime_to_json(signal.minute_estimated_time),
        "symbol": signal.symbol,
        "timestamp": signal.timestamp,
        "note": signal.note,
    }


def _signal_from_json(doc: dict[str, Any], strategy: str, exchange: str) -> OpenSignal:
    return OpenSignal(
        str(doc["id"]),
        doc["position"],
        float(doc["price_open"]),
        float(doc["price_take_profit"]),
        float(doc["price_stop_loss"]),
        lifetime_from_json(doc["minute_estimated_time"]),
        str(doc["symbol"]),
        strategy,
        exchange,
        int(doc["timestamp"]),
        str(doc.get("note", "")),
    )


def _check_run_id(run_id: str) -> None:
    if not run_id.startswith(PREFIX) or not run_id[len(PREFIX) :].isalnum():
        raise ConfigError(
            f"{run_id!r} is not a backtest run id (backtest-<hex>; `btkit runs` lists them)."
        )


def encode_run(
    *,
    run_id: str,
    strategy: str,
    exchange: str,
    created_at: int,
    frames: Sequence[tuple[str, int, int]],
    closed: Sequence[ClosedResult],
    still_open: Sequence[OpenSignal],
) -> bytes:
    """The run as the bytes of one `.npz` file (pure: no file is touched)."""
    symbols = [symbol for symbol, _, _ in frames]
    for result in closed:
        if (result.strategy_name, result.exchange_name) != (strategy, exchange):
            raise StorageError(
                f"Refusing to store run {run_id}: signal {result.signal.id} belongs to "
                f"{result.strategy_name} on {result.exchange_name}, not {strategy} on {exchange}."
            )
    ordered = sorted(closed, key=lambda c: (c.close_timestamp, c.symbol, c.signal.id))
    count = len(ordered)
    prices = np.empty((count, len(_PRICES)), dtype="<f8")
    times = np.empty((count, 2), dtype="<i8")
    codes = np.empty((count, 3), dtype="<u2")  # symbol, position, reason
    ids: list[str] = []
    notes: list[str] = []
    for row, c in enumerate(ordered):
        s = c.signal
        prices[row] = (
            s.price_open,
            s.price_take_profit,
            s.price_stop_loss,
            c.pnl.price_close,
            c.pnl.pnl_percentage,
            s.minute_estimated_time,
        )
        times[row] = (s.timestamp, c.close_timestamp)
        codes[row] = (
            symbols.index(c.symbol),
            _POSITIONS.index(s.position),
            _REASONS.index(c.close_reason),
        )
        derived = signal_id(exchange, strategy, c.symbol, s.timestamp)
        ids.append("" if s.id == derived else s.id)  # derived ids are recomputed on reading
        notes.append(s.note)
    bad = ~np.isfinite(prices[:, :5]).all(axis=1) | np.isnan(prices[:, 5])
    if bad.any():
        first = ordered[int(np.flatnonzero(bad)[0])]
        raise StorageError(
            f"Refusing to store run {run_id}: the close of signal {first.signal.id} "
            f"({first.symbol}) has a price or PnL that is not a finite number; nothing was "
            "written. This is a bug or bad data upstream."
        )
    header = {
        "format": FORMAT,
        "run_id": run_id,
        "kind": "backtest",
        "strategy": strategy,
        "exchange": exchange,
        "created_at": created_at,
        "frames": [list(frame) for frame in frames],
        "trades": count,
        "still_open": [_signal_json(s) for s in still_open],
    }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        header=np.frombuffer(json.dumps(header, allow_nan=False).encode(), dtype=np.uint8),
        prices=prices,
        times=times,
        codes=codes,
        ids=np.array(ids if any(ids) else [], dtype=str),
        notes=np.array(notes if any(notes) else [], dtype=str),
    )
    return buffer.getvalue()


class RunStore:
    """The folder of run files. Reading never creates it; writing creates it owner-only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_of(self, run_id: str) -> Path:
        _check_run_id(run_id)
        return self.folder / f"{run_id}{SUFFIX}"

    def write(
        self,
        *,
        run_id: str,
        strategy: str,
        exchange: str,
        created_at: int,
        frames: Sequence[tuple[str, int, int]],
        closed: Sequence[ClosedResult],
        still_open: Sequence[OpenSignal],
    ) -> RunInfo:
        """Store a finished run in one atomic file; it is listed only once it is whole."""
        data = encode_run(
            run_id=run_id,
            strategy=strategy,
            exchange=exchange,
            created_at=created_at,
            frames=frames,
            closed=closed,
            still_open=still_open,
        )
        path = self.path_of(run_id)
        ensure_private_dir(self.folder)
        atomic_write_bytes(path, data, before_rename=lambda: crash_point("run:temp-written"))
        return self.info(run_id)

    def run_ids(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        files = self.folder.glob(f"{PREFIX}*{SUFFIX}")
        return sorted(p.name.removesuffix(SUFFIX) for p in files if p.is_file())

    def runs(self, strategy: str | None = None) -> tuple[list[RunInfo], list[str]]:
        """Every readable run (oldest first), and a line for each unreadable file."""
        found, problems = [], []
        for run_id in self.run_ids():
            try:
                info = self.info(run_id)
            except StorageError as exc:
                problems.append(str(exc))
                continue
            if strategy is None or info.strategy == strategy:
                found.append(info)
        found.sort(key=lambda i: (i.created_at, i.run_id))
        return found, problems

    def info(self, run_id: str) -> RunInfo:
        path = self.path_of(run_id)
        with self._open(path) as archive:
            header = self._header(archive, path)
        return _info(header, path)

    def read(self, run_id: str) -> StoredRun:
        path = self.path_of(run_id)
        with self._open(path) as archive:
            header = self._header(archive, path)
            try:
                prices = archive["prices"]
                times = archive["times"]
                codes = archive["codes"]
                ids = archive["ids"].tolist()
                notes = archive["notes"].tolist()
            except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
                raise _unreadable(path, exc) from exc
        info = _info(header, path)
        strategy, exchange = info.strategy, info.exchange
        symbols = info.symbols
        closed = []
        for row, (price_row, (opened_at, closed_at), (sym, pos, why)) in enumerate(
            zip(prices.tolist(), times.tolist(), codes.tolist(), strict=True)
        ):
            open_, tp, sl, close, pnl, minutes = price_row
            symbol = symbols[sym]
            sid = (ids[row] if ids else "") or signal_id(exchange, strategy, symbol, opened_at)
            signal = OpenSignal(
                sid,
                _POSITIONS[pos],  # type: ignore[arg-type]
                open_,
                tp,
                sl,
                minutes,
                symbol,
                strategy,
                exchange,
                opened_at,
                notes[row] if notes else "",
            )
            closed.append(
                ClosedResult(
                    strategy_name=strategy,
                    exchange_name=exchange,
                    symbol=symbol,
                    timestamp=closed_at,
                    current_price=close,
                    signal=signal,
                    close_reason=_REASONS[why],  # type: ignore[arg-type]
                    close_timestamp=closed_at,
                    pnl=Pnl(pnl, open_, close),
                )
            )
        still_open = [_signal_from_json(doc, strategy, exchange) for doc in header["still_open"]]
        return StoredRun(info, closed, still_open)

    def delete(self, run_ids: Iterable[str]) -> int:
        """Remove these runs' files; the bytes freed."""
        freed = 0
        for run_id in run_ids:
            path = self.path_of(run_id)
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue  # another prune got there first
            except OSError as exc:
                raise StorageError(f"Cannot remove {path}: {exc.strerror or exc}.") from exc
            freed += size
        if freed:
            _fsync_dir(self.folder)
        return freed

    def stale_temp_files(self, now: float | None = None) -> list[Path]:
        """Temp files of writes that never finished (a killed backtest), older than an hour."""
        if not self.folder.is_dir():
            return []
        now = time.time() if now is None else now
        stale = []
        for path in self.folder.glob(f".{PREFIX}*{TEMP_SUFFIX}"):
            try:
                if now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                    stale.append(path)
            except FileNotFoundError:
                continue
        return sorted(stale)

    @contextmanager
    def _open(self, path: Path) -> Iterator[Any]:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise ConfigError(
                f"No backtest run {path.name.removesuffix(SUFFIX)!r} in {self.folder}; "
                "`btkit runs` lists the stored runs."
            ) from None
        except OSError as exc:
            raise _unreadable(path, exc) from exc
        with handle:
            try:
                archive = np.load(handle, allow_pickle=False)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise _unreadable(path, exc) from exc
            with archive:
                yield archive

    @staticmethod
    def _header(archive: Any, path: Path) -> dict[str, Any]:
        try:
            header: dict[str, Any] = json.loads(archive["header"].tobytes())
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
            raise _unreadable(path, exc) from exc
        if header.get("format") != FORMAT:
            raise StorageError(
                f"{path} was written by another btkit version (run format "
                f"{header.get('format')!r}); upgrade btkit to read it."
            )
        return header


def _info(header: dict[str, Any], path: Path) -> RunInfo:
    try:
        size = path.stat().st_size
        return RunInfo(
            run_id=str(header["run_id"]),
            strategy=str(header["strategy"]),
            exchange=str(header["exchange"]),
            created_at=int(header["created_at"]),
            frames=tuple((str(s), int(a), int(b)) for s, a, b in header["frames"]),
            trades=int(header["trades"]),
            still_open=len(header["still_open"]),
            size=size,
            path=path,
        )
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, reason: object) -> StorageError:
    return StorageError(
        f"Cannot read the backtest run {path}: {reason}. It was left untouched; if it is "
        f"damaged, delete it (`rm {path}`) and run the backtest again."
    )


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_run_id() -> str:
    import uuid

    return f"{PREFIX}{uuid.uuid4().hex[:12]}"
