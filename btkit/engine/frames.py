"""Where a replay or backtest starts and ends, checked against the data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from btkit.domain.errors import ConfigError, DataError
from btkit.domain.model import MINUTE_MS
from btkit.domain.timefmt import format_time
from btkit.engine.intervals import floor_to


@dataclass(frozen=True, slots=True)
class Frame:
    """Ticks at start, start + step, ... up to and including end (ms, UTC)."""

    start: int
    end: int
    step_ms: int = MINUTE_MS
    name: str = ""

    def next_tick_after(self, when: int) -> int:
        steps = (when - self.start) // self.step_ms + 1
        return self.start + steps * self.step_ms

    def first_tick_from(self, when: int) -> int:
        """The first tick at or after `when`."""
        if when <= self.start:
            return self.start
        return self.next_tick_after(when - 1)


def default_start(first_opens: Iterable[int], warmup_minutes: int) -> int:
    """The first tick at which every symbol has the strategy's warm-up history."""
    return floor_to(max(first_opens), MINUTE_MS) + warmup_minutes * MINUTE_MS


def frame_for(
    symbol: str,
    *,
    data_first: int,
    data_last_finish: int,
    start: int,
    end: int | None,
    step_ms: int = MINUTE_MS,
) -> Frame:
    """The frame to run over this symbol's data; refuse ranges with nothing to run."""
    last = data_last_finish if end is None else min(end, data_last_finish)
    if end is not None and start > end:
        raise ConfigError(f"--start {format_time(start)} is after --end {format_time(end)}.")
    if start > last or last <= data_first:
        raise DataError(
            f"No candles for {symbol} from {format_time(start)} to {format_time(last)}: its "
            f"file covers {format_time(data_first)} to {format_time(data_last_finish)}. "
            "Choose --start/--end inside that range, or download more history."
        )
    return Frame(floor_to(start, MINUTE_MS), last, step_ms)
