"""The open signal of one (exchange, strategy, symbol), kept crash-safe (SPEC §5).

`<data>/signal/<exchange>-<strategy>-<symbol>.json` holds the open signal or
null, plus the runner's throttle and replay cursor, all written in one atomic
replace so they can never disagree. A `filelock` beside it makes one process
its owner. A file that cannot be used (unparseable, a signal breaking the
rules a new signal must pass, or another run's file) is moved aside, never
deleted or overwritten. An infinite lifetime is stored as null (JSON has no
Infinity); NaN is never written. `save` writes and fsyncs on a thread (the
executor given, else the loop's default one), never on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import filelock
import pydantic

from btkit.adapters.store.atomic import (
    atomic_write_bytes,
    ensure_private_dir,
    remove_stale_temp_files,
)
from btkit.domain.errors import StateLockedError, StorageError
from btkit.domain.model import (
    OpenSignal,
    PersistedState,
    Signal,
    lifetime_from_json,
    signal_to_dict,
)
from btkit.domain.timefmt import file_stamp
from btkit.engine.validation import validate_signal

log = logging.getLogger(__name__)

STATE_VERSION = 1
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._:+-]+$")


class _StoredSignal(pydantic.BaseModel):
    """An `OpenSignal` as JSON: an infinite lifetime is stored as null."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=False)
    id: str
    position: str
    price_open: float
    price_take_profit: float
    price_stop_loss: float
    minute_estimated_time: float | None
    symbol: str
    strategy_name: str
    exchange_name: str
    timestamp: int
    note: str = ""
    stake: float | None = None


class _StateFile(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=False)
    version: int
    exchange_name: str
    strategy_name: str
    symbol: str
    signal: _StoredSignal | None
    last_signal_call: int | None = None
    last_tick: int | None = None


class UnusableStateFile(ValueError):
    """A state file that cannot be trusted: unparseable, invalid, or another run's."""


class ForeignStateFile(UnusableStateFile):
    """A state file of another (exchange, strategy, symbol): kept, never overwritten."""


def _restored_signal(stored: _StoredSignal) -> OpenSignal:
    """Check a restored signal by the rules a new one must pass (SPEC §3.3)."""
    lifetime = lifetime_from_json(stored.minute_estimated_time)
    candidate = Signal(
        stored.position,  # type: ignore[arg-type]  # checked by validate_signal just below
        stored.price_open,
        stored.price_take_profit,
        stored.price_stop_loss,
        lifetime,
        stored.note,
        stored.id,
        stored.stake,
    )
    problems = validate_signal(candidate, stored.timestamp)
    if problems:
        raise UnusableStateFile(f"its signal {stored.id} is invalid: {'; '.join(problems)}")
    return OpenSignal(
        stored.id,
        candidate.position,
        stored.price_open,
        stored.price_take_profit,
        stored.price_stop_loss,
        lifetime,
        stored.symbol,
        stored.strategy_name,
        stored.exchange_name,
        stored.timestamp,
        stored.note,
        stored.stake,
    )


def parse_state(raw: bytes, names: tuple[str, str, str] | None = None) -> PersistedState:
    """Parse and check a state file's bytes; UnusableStateFile says why it cannot be used.

    With `names` (exchange, strategy, symbol), the file and its signal must be
    that run's: a file holding another run's signal is never overwritten.
    """
    try:
        parsed = _StateFile.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise UnusableStateFile(f"{where}: {first['msg']}") from exc
    owners = [(parsed.exchange_name, parsed.strategy_name, parsed.symbol)]
    if parsed.signal is not None:
        s = parsed.signal
        owners.append((s.exchange_name, s.strategy_name, s.symbol))
    for owner in owners:
        if names is not None and owner != names:
            raise ForeignStateFile(
                "it belongs to exchange {}, strategy {}, symbol {}".format(*owner)
                + ", not to this run ({} {} {})".format(*names)
            )
    signal = None if parsed.signal is None else _restored_signal(parsed.signal)
    return PersistedState(signal, parsed.last_signal_call, parsed.last_tick)


def read_state_file(path: Path) -> PersistedState:
    """Parse a state file without owning it (for `btkit status`); ValueError if unusable."""
    try:
        return parse_state(path.read_bytes())
    except (OSError, UnusableStateFile) as exc:
        raise ValueError(f"{path}: {exc}") from exc


class MemorySignalStore:
    """For backtests and tests: state that lives as long as the run."""

    def __init__(self, state: PersistedState | None = None) -> None:
        self.state = state or PersistedState()
        self.saves = 0

    def load(self) -> PersistedState:
        return self.state

    async def save(self, state: PersistedState) -> None:
        self.state = state
        self.saves += 1


def state_file_name(exchange_name: str, strategy_name: str, symbol: str) -> str:
    for part in (exchange_name, strategy_name, symbol):
        if not _SAFE_NAME.match(part):
            raise ValueError(
                f"{part!r} cannot be part of a state file name; "
                "use letters, digits and . _ : + - only"
            )
    return f"{exchange_name}-{strategy_name}-{symbol}.json".replace(":", "_")


def _retrieve(done: asyncio.Future[None]) -> None:
    """Mark a failed write's error as seen: its caller raises it, unless it was cancelled."""
    if not done.cancelled():
        done.exception()


class JsonSignalStore:
    def __init__(
        self,
        signal_dir: Path,
        *,
        exchange_name: str,
        strategy_name: str,
        symbol: str,
        now_ms: Callable[[], int],
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self.path = signal_dir / state_file_name(exchange_name, strategy_name, symbol)
        self._names = (exchange_name, strategy_name, symbol)
        self._now_ms = now_ms
        self._executor = executor
        self._writing: asyncio.Future[None] | None = None
        """The last write handed to a thread; it may outlive a cancelled caller."""
        self._lock = filelock.FileLock(f"{self.path}.lock", timeout=0, mode=0o600)

    def acquire(self) -> None:
        """Become the only process that writes this state file."""
        ensure_private_dir(self.path.parent)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            exchange, strategy, symbol = self._names
            raise StateLockedError(
                f"Another btkit process already runs {strategy} on {exchange} {symbol} "
                f"(it holds {self._lock.lock_file}). Stop it first, or use another "
                "--data-dir for a separate run."
            ) from None
        except OSError as exc:
            raise StorageError(f"Cannot lock {self.path}: {exc.strerror}.") from exc
        removed = remove_stale_temp_files(self.path.parent, self.path.name)
        if removed:
            log.warning("removed %d temporary file(s) left by a crash: %s", len(removed), removed)

    def release(self) -> None:
        self._lock.release()

    def load(self) -> PersistedState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return PersistedState()
        except OSError as exc:
            raise StorageError(f"Cannot read {self.path}: {exc.strerror}.") from exc
        try:
            return parse_state(raw, self._names)
        except UnusableStateFile as exc:
            self._move_aside(exc)
            return PersistedState()

    async def save(self, state: PersistedState) -> None:
        exchange, strategy, symbol = self._names
        document = {
            "version": STATE_VERSION,
            "exchange_name": exchange,
            "strategy_name": strategy,
            "symbol": symbol,
            "signal": signal_to_dict(state.signal) if state.signal else None,
            "last_signal_call": state.last_signal_call,
            "last_tick": state.last_tick,
        }
        try:
            text = json.dumps(document, indent=2, allow_nan=False)
        except ValueError as exc:  # NaN: validation let a bad number through; keep the old file
            raise StorageError(f"Refusing to write {self.path}: {exc} in {document}.") from exc
        previous = self._writing
        if previous is not None and not previous.done():
            # Its caller was cancelled mid-write: let it land first, so the newest state wins.
            await asyncio.wait([previous])
        data = text.encode() + b"\n"
        loop = asyncio.get_running_loop()
        try:
            writing = loop.run_in_executor(self._executor, atomic_write_bytes, self.path, data)
        except RuntimeError:  # its threads are shut down: a last save while the run ends
            atomic_write_bytes(self.path, data)
            return
        writing.add_done_callback(_retrieve)
        self._writing = writing
        await asyncio.shield(writing)

    def _move_aside(self, problem: UnusableStateFile) -> None:
        foreign = isinstance(problem, ForeignStateFile)
        kind = "foreign" if foreign else "corrupt"
        stamp = file_stamp(self._now_ms())
        aside = self.path.with_name(f"{self.path.name}.{kind}-{stamp}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            raise StorageError(
                f"{self.path} cannot be used ({problem}) and could not be moved aside: "
                f"{exc.strerror}. Move it away by hand, then restart."
            ) from exc
        log.error(
            "%s STATE FILE %s cannot be used: %s. It was kept as %s; "
            "this symbol starts with no open signal. Inspect that file before trading on.",
            kind.upper(),
            self.path,
            problem,
            aside,
        )
