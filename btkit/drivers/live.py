"""The live driver (SPEC §6): one asyncio task per symbol, ticking on the minute.

Each task: take `when` from the clock, tick, hand `opened`/`closed` to the
consumer, sleep to the next minute boundary plus a settle delay. `stop()`
lets the tick in progress finish; with `drain` the tasks keep monitoring open
signals (and open no new ones) until they close.

A symbol whose loop fails is restarted with backoff and named in the status
line and heartbeat while it is down; while any symbol is down no tick cycle
completes, so the systemd watchdog is not fed. After `symbol_restarts` failures
in a row the process ends with status 1.

Delivery (SPEC §5): every event the ledger holds reaches the consumer at least
once, in order per symbol. On start the session first yields the events of its
symbols that were recorded but not marked delivered (a crash after the ledger
write, or events still queued when the process died), flagged `redelivered`;
an event is marked delivered when the consumer comes back for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from btkit.domain.errors import BtkitError, ExchangeError, ExchangeOutageError, StorageError
from btkit.domain.model import MINUTE_MS, ClosedResult, OpenedResult, StreamedResult
from btkit.domain.timefmt import format_time, format_time_seconds
from btkit.drivers.runner import NoLedger, SymbolRunner
from btkit.engine.intervals import floor_to
from btkit.ports import Clock, EventLog

log = logging.getLogger(__name__)

FATAL = (StorageError, ExchangeOutageError)
"""Errors that end the process (systemd restarts it); others restart only their symbol."""


class SymbolFailedError(BtkitError):
    """A symbol's loop failed `symbol_restarts` times in a row: exit 1 for the supervisor."""


@dataclass(frozen=True, slots=True)
class LiveOptions:
    settle_ms: int = 2_000
    outage_budget_ms: int = 15 * MINUTE_MS
    heartbeat_seconds: float = 300.0
    checkpoint_minutes: int = 60
    """Also persist the cursor this often, so a restart replays little."""
    symbol_restarts: int = 5
    """Restarts of a failed symbol loop in a row before the process gives up."""
    restart_backoff_seconds: float = 1.0
    """First wait before restarting a failed symbol loop; doubles, capped at a minute."""
    warn_after: int = 10
    """get_signal failures in a row after which the status line names the symbol."""


class _Taken:
    """Marks the events the consumer has taken as delivered, one write at a time.

    The write runs beside the stream, so the consumer never waits for it; events
    taken meanwhile are coalesced (per symbol only the latest counts) into the next
    write. The mark lags, never leads: a crash re-delivers a little, loses nothing.
    """

    def __init__(self, ledger: EventLog) -> None:
        self._ledger = ledger
        self._latest: dict[tuple[str, str, str], StreamedResult] = {}
        self._writer: asyncio.Task[None] | None = None

    def add(self, result: StreamedResult) -> None:
        if self._writer is not None and self._writer.done():
            self._writer.result()  # a failed write (disk full) ends the stream loudly
            self._writer = None
        self._latest[(result.strategy_name, result.exchange_name, result.symbol)] = result
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="btkit-delivered")

    async def _write(self) -> None:
        while self._latest:
            latest, self._latest = list(self._latest.values()), {}
            await asyncio.gather(*(self._ledger.mark_delivered(r) for r in latest))

    async def flush(self) -> None:
        """The stream ended: every taken event marked when this returns."""
        if self._writer is not None:
            await self._writer
            self._writer = None

    def abandon(self) -> None:
        """The consumer left early: what is not written yet is simply delivered again."""
        if self._writer is not None:
            self._writer.cancel()


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
        ledger: EventLog | None = None,
    ) -> None:
        self.runners = list(runners)
        self._ledger: EventLog = ledger or NoLedger()
        self.clock = clock
        self.options = options
        self.failed_symbols: list[str] = []
        self.down: dict[str, str] = {}
        """Symbols whose loop failed and waits to restart -> why."""
        self.on_status: Callable[[LiveSession], None] | None = None
        """Called when a symbol goes down or comes back (e.g. to update systemd's STATUS=)."""
        self._first_cycle_done = False
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
            for runner in self.runners:
                runner.stop_now.set()  # a hung strategy call is cancelled, not awaited
            if self._on_stop is not None:
                self._on_stop()  # cut retry waits short: the tick gives up and we exit

    async def events(self) -> AsyncIterator[StreamedResult]:
        """Run every symbol and yield `opened`/`closed` results until all have ended.

        Undelivered events from before this start come first. Each event is marked
        delivered once the consumer asks for the next one (or the stream ends), so a
        crash at any moment re-delivers rather than loses.
        """
        for runner in self.runners:
            await runner.restore()  # a re-recorded open belongs to the backlog
        for event in self._backlog():
            self._queue.put_nowait(event)
        first = floor_to(self.clock.now_ms() - self.options.settle_ms, MINUTE_MS)
        log.info(
            "%d symbol(s): first tick now, for the minute %s; then %s",
            len(self.runners),
            format_time(first),
            f"one every minute, {self.options.settle_ms / 1000:g} s after it"
            if self.options.settle_ms
            else "one per simulated minute",
        )
        for _ in self.runners:
            self.clock.join()  # all at once, so simulated time waits for every symbol
        tasks = [
            asyncio.create_task(self._run_symbol(runner), name=f"btkit-{runner.symbol}")
            for runner in self.runners
        ]
        heartbeat = asyncio.create_task(self._heartbeat())
        # return_exceptions: a consumer that leaves early (a closed stdout pipe) must not
        # leave a failed gather behind for asyncio to print as a traceback.
        finished = asyncio.gather(*tasks, return_exceptions=True)
        finished.add_done_callback(lambda _: self._queue.put_nowait(None))
        taken = _Taken(self._ledger)
        try:
            while (result := await self._queue.get()) is not None:
                yield result
                taken.add(result)  # the consumer came back for more: it has this one
            await taken.flush()
            for outcome in await finished:
                if isinstance(outcome, BaseException):
                    raise outcome
        finally:
            taken.abandon()
            heartbeat.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, heartbeat, return_exceptions=True)

    def _backlog(self) -> list[StreamedResult]:
        """Recorded but not known to be delivered: before a crash, or left in the queue."""
        groups: dict[tuple[str, str], list[str]] = {}
        for runner in self.runners:
            groups.setdefault((runner.strategy.name, runner.exchange_name), []).append(
                runner.symbol
            )
        backlog = [
            event
            for (strategy, exchange), symbols in groups.items()
            for event in self._ledger.undelivered(strategy, exchange, symbols)
        ]
        if backlog:
            log.warning(
                "%d event(s) recorded before the last stop may not have reached the consumer "
                "(a crash or a kill): delivering them again first, flagged redelivered",
                len(backlog),
            )
        return backlog

    async def _run_symbol(self, runner: SymbolRunner) -> None:
        try:
            await self._supervise(runner)
        finally:
            self._active -= 1
            self.clock.leave()
            if runner.last_tick is not None and not runner.mid_tick:
                try:
                    await runner.checkpoint()
                except StorageError as exc:
                    log.error("%s: could not save the cursor on exit: %s", runner.symbol, exc)

    async def _supervise(self, runner: SymbolRunner) -> None:
        """Run the symbol's loop; restart it with backoff when it fails, give up after N."""
        options = self.options
        in_a_row = 0
        while True:
            ticks_before = runner.ticks
            try:
                await self._loop(runner)
                return
            except FATAL:
                self.stop()  # the other symbols end after their tick: the process exits
                raise
            except Exception as exc:
                in_a_row = 1 if runner.ticks > ticks_before else in_a_row + 1
                why = f"{type(exc).__name__}: {exc}"
                self.down[runner.symbol] = f"failed {in_a_row}x: {why}"
                self._status_changed()
                if in_a_row > options.symbol_restarts:
                    self.failed_symbols.append(runner.symbol)
                    self.stop()  # not only this symbol: the process exits for its supervisor
                    raise SymbolFailedError(
                        f"{runner.symbol}: its loop failed {in_a_row} times in a row (last: "
                        f"{why}); exiting so the supervisor restarts btkit. Open signals "
                        "are safe in their state files."
                    ) from exc
                delay = min(60.0, options.restart_backoff_seconds * 2 ** (in_a_row - 1))
                log.error(
                    "%s: its loop FAILED (%s); restarting it in %.0f s (%d of %d restarts "
                    "in a row; the watchdog is not fed while it is down)",
                    runner.symbol,
                    why,
                    delay,
                    in_a_row,
                    options.symbol_restarts,
                    exc_info=None if isinstance(exc, BtkitError) else exc,
                )
                if await self._backoff(delay):
                    return  # stopping

    def _status_changed(self) -> None:
        if self.on_status is not None:
            self.on_status(self)

    async def _backoff(self, seconds: float) -> bool:
        """Wait in wall time (cut short by a stop); True if stopping."""
        if not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        return self._stopping and not self._drain

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
                    if self.down.pop(runner.symbol, None) is not None:
                        log.warning("%s: its loop runs again after a restart", runner.symbol)
                        self._status_changed()
                elif when - last_data > options.outage_budget_ms:
                    raise ExchangeOutageError(
                        f"{runner.symbol}: exchange requests failed for "
                        f"{(when - last_data) // MINUTE_MS} minutes, longer than the outage "
                        "budget; exiting so the supervisor "
                        "restarts btkit. Open signals are safe in their state files."
                    )
                since_checkpoint += 1
                if since_checkpoint >= options.checkpoint_minutes:
                    await runner.checkpoint()
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
        if self.down:
            return  # never tell the watchdog all is well while a symbol is down
        if not self._first_cycle_done:
            self._first_cycle_done = True
            log.info(
                "heartbeat: %s; next tick at %s",
                self.status_line(),
                format_time_seconds(when + MINUTE_MS + self.options.settle_ms),
            )
        if self._on_cycle is not None:
            self._on_cycle(self)

    def status_line(self) -> str:
        """For STATUS= and the heartbeat: counts, then every symbol that needs a look."""
        last = max((r.last_tick or 0 for r in self.runners), default=0) or None
        line = (
            f"{len(self.runners)} symbol(s), {self.open_signals} open signal(s), "
            f"last tick {format_time(last)}"
        )
        if self.down:
            line += "; DOWN: " + ", ".join(f"{s} ({why})" for s, why in self.down.items())
        failing = [r for r in self.runners if r.failures.in_a_row >= self.options.warn_after]
        if failing:
            line += "; STRATEGY FAILING: " + ", ".join(
                f"{r.symbol} ({r.failures.in_a_row} in a row: {r.failures.last_error})"
                for r in failing
            )
        return line

    def _done(self, runner: SymbolRunner) -> bool:
        if not self._stopping:
            return False
        return not (self._drain and runner.signal is not None)

    async def _tick(self, runner: SymbolRunner, when: int) -> bool:
        """Run one tick; False only when the exchange failed (a quiet market is no outage)."""
        try:
            result = await runner.tick(when)
        except ExchangeOutageError:
            raise
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
        return True

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
        """Every `heartbeat_seconds`; the first one is logged when the first cycle completes."""
        while True:
            await asyncio.sleep(self.options.heartbeat_seconds)
            log.info("heartbeat: %s", self.status_line())
