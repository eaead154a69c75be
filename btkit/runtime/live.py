"""The live driver (SPEC §6): one asyncio task per symbol, ticking on the minute.

Each task: take `when` from the clock, tick, hand `opened`/`closed` to the
consumer, sleep to the next minute boundary plus a settle delay. `stop()`
lets the tick in progress finish; with `drain` the tasks keep monitoring open
signals (and open no new ones) until they close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from btkit.clock import Clock
from btkit.domain import MINUTE_MS, ClosedResult, OpenedResult, StreamedResult
from btkit.engine.intervals import floor_to
from btkit.errors import BtkitError, ExchangeError, ExchangeOutageError, StorageError
from btkit.runtime.runner import SymbolRunner
from btkit.timefmt import format_time

log = logging.getLogger(__name__)

FATAL = (StorageError, ExchangeOutageError)
"""Errors that end the process (systemd restarts it); others end only their symbol."""


@dataclass(frozen=True, slots=True)
class LiveOptions:
    settle_ms: int = 2_000
    outage_budget_ms: int = 15 * MINUTE_MS
    heartbeat_seconds: float = 300.0
    checkpoint_minutes: int = 60
    """Also persist the cursor this often, so a restart replays little."""


class LiveSession:
    def __init__(
        self,
        runners: Sequence[SymbolRunner],
        clock: Clock,
        *,
        options: LiveOptions = LiveOptions(),
        ends: dict[str, int] | None = None,
        on_closed: Callable[[ClosedResult], None] | None = None,
        on_stop: Callable[[], None] | None = None,
        on_cycle: Callable[[LiveSession], None] | None = None,
    ) -> None:
        self.runners = list(runners)
        self.clock = clock
        self.options = options
        self.failed_symbols: list[str] = []
        self._ends = ends or {}
        self._on_closed = on_closed
        self._on_stop = on_stop
        self._on_cycle = on_cycle
        self._active = len(self.runners)
        self._ticked: dict[int, int] = {}
        """Minute -> symbols done with it; complete when all active symbols are."""
        self._stopping = False
        self._drain = False
        self._wake = asyncio.Event()
        self._queue: asyncio.Queue[StreamedResult | None] = asyncio.Queue()

    @property
    def open_signals(self) -> int:
        return sum(runner.signal is not None for runner in self.runners)

    def stop(self, *, drain: bool = False) -> None:
        """Stop new signals; exit after this tick, or once open signals close (drain).

        A second call without drain turns a draining stop into a plain one.
        """
        first_stop = not self._stopping
        self._stopping = True
        for runner in self.runners:
            runner.stopped = True
        self._drain = drain and first_stop
        if not self._drain:
            self._wake.set()
            if self._on_stop is not None:
                self._on_stop()  # cut retry waits short: the tick gives up and we exit

    async def events(self) -> AsyncIterator[StreamedResult]:
        """Run every symbol and yield `opened`/`closed` results until all have ended."""
        for _ in self.runners:
            self.clock.join()  # all at once, so simulated time waits for every symbol
        tasks = [
            asyncio.create_task(self._run_symbol(runner), name=f"btkit-{runner.symbol}")
            for runner in self.runners
        ]
        heartbeat = asyncio.create_task(self._heartbeat())
        finished = asyncio.gather(*tasks)
        finished.add_done_callback(self._all_ended)
        try:
            while (result := await self._queue.get()) is not None:
                yield result
            await finished
        finally:
            heartbeat.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, heartbeat, return_exceptions=True)

    def _all_ended(self, finished: asyncio.Future[list[None]]) -> None:
        if not finished.cancelled():
            finished.exception()  # marked retrieved: a cancelled consumer logs no noise
        self._queue.put_nowait(None)

    async def _run_symbol(self, runner: SymbolRunner) -> None:
        try:
            await self._loop(runner)
        except FATAL:
            raise
        except BtkitError as exc:
            log.error("%s stopped: %s", runner.symbol, exc)
            self.failed_symbols.append(runner.symbol)
        except Exception:
            log.exception("%s stopped by an unexpected error", runner.symbol)
            self.failed_symbols.append(runner.symbol)
        finally:
            self._active -= 1
            self.clock.leave()
            if runner.last_tick is not None and not runner.mid_tick:
                try:
                    runner.checkpoint()
                except StorageError as exc:
                    log.error("%s: could not save the cursor on exit: %s", runner.symbol, exc)

    async def _loop(self, runner: SymbolRunner) -> None:
        options = self.options
        end = self._ends.get(runner.symbol)
        last_data = self.clock.now_ms()
        previous: int | None = None
        since_checkpoint = 0
        while not self._done(runner):
            when = floor_to(self.clock.now_ms() - options.settle_ms, MINUTE_MS)
            if previous is not None:
                when = max(when, previous + MINUTE_MS)
            if end is not None and when > end:
                return
            previous = when
            if runner.last_tick is None or when > runner.last_tick:
                if await self._tick(runner, when):
                    last_data = when
                elif when - last_data > options.outage_budget_ms:
                    raise ExchangeOutageError(
                        f"{runner.symbol}: no candles for {(when - last_data) // MINUTE_MS} "
                        "minutes, longer than the outage budget; exiting so the supervisor "
                        "restarts btkit. Open signals are safe in their state files."
                    )
                since_checkpoint += 1
                if since_checkpoint >= options.checkpoint_minutes:
                    runner.checkpoint()
                    since_checkpoint = 0
            self._cycle_progress(when)
            await self._sleep_until(when + MINUTE_MS + options.settle_ms)

    def _cycle_progress(self, when: int) -> None:
        """Count symbols done with minute `when`; the last one completes the cycle."""
        done = self._ticked.get(when, 0) + 1
        if done < self._active:
            self._ticked[when] = done
            return
        self._ticked.pop(when, None)
        for stale in [m for m in self._ticked if m < when]:
            del self._ticked[stale]
        if self._on_cycle is not None:
            self._on_cycle(self)

    def status_line(self) -> str:
        last = max((r.last_tick or 0 for r in self.runners), default=0) or None
        return (
            f"{len(self.runners)} symbol(s), {self.open_signals} open signal(s), "
            f"last tick {format_time(last)}"
        )

    def _done(self, runner: SymbolRunner) -> bool:
        if not self._stopping:
            return False
        return not (self._drain and runner.signal is not None)

    async def _tick(self, runner: SymbolRunner, when: int) -> bool:
        """Run one tick; False when no data came (skipped or exchange trouble)."""
        try:
            result = await runner.tick(when)
        except ExchangeError as exc:
            log.warning("%s: tick at %s skipped: %s", runner.symbol, format_time(when), exc)
            return False
        if isinstance(result, OpenedResult | ClosedResult):
            await self._queue.put(result)
        if isinstance(result, ClosedResult) and self._on_closed is not None:
            try:
                self._on_closed(result)
            except Exception:  # the report is derived data; the ledger already has the event
                log.exception("could not rewrite the live report; trading goes on")
        return result is not None

    async def _sleep_until(self, wake_ms: int) -> None:
        if self._wake.is_set():
            return
        sleeper = asyncio.ensure_future(self.clock.sleep_until(wake_ms))
        stopper = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_seconds)
            log.info("heartbeat: %s", self.status_line())
