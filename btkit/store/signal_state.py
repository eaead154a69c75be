"""The open signal of one (exchange, strategy, symbol), kept crash-safe (SPEC §5).

`<data>/signal/<exchange>-<strategy>-<symbol>.json` holds the open signal or
null, plus the runner's throttle and replay cursor, all written in one atomic
replace so they can never disagree. A `filelock` beside it makes one process
its owner. A file that cannot be parsed is moved aside, never deleted.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import filelock
import pydantic

from btkit.domain import OpenSignal
from btkit.errors import StateLockedError, StorageError
from btkit.store.atomic import atomic_write_bytes, ensure_private_dir, remove_stale_temp_files
from btkit.timefmt import file_stamp

log = logging.getLogger(__name__)

STATE_VERSION = 1
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._:+-]+$")


@dataclass(frozen=True, slots=True)
class PersistedState:
    signal: OpenSignal | None = None
    last_signal_call: int | None = None
    last_tick: int | None = None


class _StateFile(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=False)
    version: int
    exchange_name: str
    strategy_name: str
    symbol: str
    signal: OpenSignal | None
    last_signal_call: int | None = None
    last_tick: int | None = None


def read_state_file(path: Path) -> PersistedState:
    """Parse a state file without owning it (for `btkit status`); ValueError if unreadable."""
    try:
        parsed = _StateFile.model_validate_json(path.read_bytes())
    except (OSError, pydantic.ValidationError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return PersistedState(parsed.signal, parsed.last_signal_call, parsed.last_tick)


class SignalStore(Protocol):
    def load(self) -> PersistedState: ...

    def save(self, state: PersistedState) -> None: ...


class MemorySignalStore:
    """For backtests and tests: state that lives as long as the run."""

    def __init__(self, state: PersistedState | None = None) -> None:
        self.state = state or PersistedState()
        self.saves = 0

    def load(self) -> PersistedState:
        return self.state

    def save(self, state: PersistedState) -> None:
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


class JsonSignalStore:
    def __init__(
        self,
        signal_dir: Path,
        *,
        exchange_name: str,
        strategy_name: str,
        symbol: str,
        now_ms: Callable[[], int],
    ) -> None:
        self.path = signal_dir / state_file_name(exchange_name, strategy_name, symbol)
        self._names = (exchange_name, strategy_name, symbol)
        self._now_ms = now_ms
        self._lock = filelock.FileLock(f"{self.path}.lock", timeout=0)

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
            parsed = _StateFile.model_validate_json(raw)
        except pydantic.ValidationError as exc:
            self._move_aside(exc)
            return PersistedState()
        exchange, strategy, symbol = self._names
        if parsed.signal is not None and (
            parsed.signal.exchange_name != exchange
            or parsed.signal.strategy_name != strategy
            or parsed.signal.symbol != symbol
        ):
            log.warning(
                "%s holds a signal of %s/%s/%s, not of this run; it is ignored",
                self.path,
                parsed.signal.exchange_name,
                parsed.signal.strategy_name,
                parsed.signal.symbol,
            )
            return PersistedState(None, parsed.last_signal_call, parsed.last_tick)
        return PersistedState(parsed.signal, parsed.last_signal_call, parsed.last_tick)

    def save(self, state: PersistedState) -> None:
        exchange, strategy, symbol = self._names
        document = {
            "version": STATE_VERSION,
            "exchange_name": exchange,
            "strategy_name": strategy,
            "symbol": symbol,
            "signal": dataclasses.asdict(state.signal) if state.signal else None,
            "last_signal_call": state.last_signal_call,
            "last_tick": state.last_tick,
        }
        atomic_write_bytes(self.path, json.dumps(document, indent=2).encode() + b"\n")

    def _move_aside(self, problem: Exception) -> None:
        stamp = file_stamp(self._now_ms())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            raise StorageError(
                f"{self.path} is corrupt and could not be moved aside: {exc.strerror}. "
                "Move it away by hand, then restart."
            ) from exc
        log.error(
            "CORRUPT STATE FILE %s could not be read (%s). It was kept as %s; "
            "this symbol starts with no open signal. Inspect that file before trading on.",
            self.path,
            str(problem).splitlines()[0],
            aside,
        )
