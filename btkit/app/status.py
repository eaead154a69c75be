"""`btkit status`: the open signals right now, read from the state files."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from btkit.adapters.store.signal_state import read_state_file
from btkit.adapters.store.state_locks import is_owned
from btkit.domain.model import MINUTE_MS, OpenSignal


@dataclass(frozen=True, slots=True)
class OpenPosition:
    path: Path
    signal: OpenSignal
    owned: bool
    """A running daemon holds the file's lock."""
    now: int
    """Wall time, or the replay's last tick for replayed signals."""

    @property
    def age_minutes(self) -> float:
        return (self.now - self.signal.timestamp) / MINUTE_MS

    @property
    def minutes_left(self) -> float:
        """Infinite for a signal that lives until TP or SL."""
        expires_at = self.signal.expires_at
        return math.inf if expires_at is None else (expires_at - self.now) / MINUTE_MS

    @property
    def stale(self) -> bool:
        """Nobody monitors it and its lifetime is over: it will close on the next start."""
        return not self.owned and self.minutes_left < 0


@dataclass(frozen=True, slots=True)
class Unreadable:
    path: Path
    problem: str


def open_positions(
    signal_dir: Path, now_ms: Callable[[], int]
) -> tuple[list[OpenPosition], list[Unreadable]]:
    positions: list[OpenPosition] = []
    problems: list[Unreadable] = []
    for path in sorted(signal_dir.glob("*.json")) if signal_dir.is_dir() else []:
        try:
            state = read_state_file(path)
        except ValueError as exc:
            problems.append(Unreadable(path, str(exc).splitlines()[0]))
            continue
        if state.signal is None:
            continue
        replayed = state.signal.exchange_name == "replay"
        now = (state.last_tick or state.signal.timestamp) if replayed else now_ms()
        positions.append(OpenPosition(path, state.signal, is_owned(path), now))
    return positions, problems
