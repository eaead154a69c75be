"""One symbol's tick (SPEC §3), the same for live and backtest: I/O and ordering only.

Every decision (throttle, validation, open / monitor / close, PnL, the new
state) is a pure function of `btkit.engine.step`; this driver calls the
strategy (bounded, inside its ambient context), fetches the price, persists,
and runs callbacks. State and ledger are written *before* a result is
returned, so whatever a caller reports is already safe on disk. Order: an open
writes the state file, then the ledger; a close writes the ledger, then the
state file; `_reconcile` repairs a crash between the two on the next start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from btkit.context import MethodContext, tick_context
from btkit.domain.errors import ExchangeError, StrategyError
from btkit.domain.model import (
    ClosedResult,
    OpenSignal,
    PersistedState,
    StreamedResult,
    TickResult,
)
from btkit.domain.orders import TradeReport
from btkit.drivers.strategy_clock import TimedMarket
from btkit.engine import step
from btkit.engine.pnl import Costs
from btkit.faults import crash_point
from btkit.ports import EventLog, ExchangeClose, MarketData, SignalStore, Trading
from btkit.strategies import Callback, SignalFunction, StrategyDef

log = logging.getLogger(__name__)

T = TypeVar("T")

CallbackName = Literal["on_open", "on_active", "on_idle", "on_close", "on_tick"]


@dataclass(slots=True)
class StrategyFailures:
    """get_signal calls and failures of one symbol, for warnings, status and summaries."""

    calls: int = 0
    failed: int = 0
    in_a_row: int = 0
    last_error: str = ""

    @property
    def always(self) -> bool:
        """Every call failed (and there was at least one)."""
        return self.calls > 0 and self.failed == self.calls


def _is_milestone(count: int, first: int) -> bool:
    """first, 10 * first, 100 * first...: loud, but never a flood."""
    while count > first and count % 10 == 0:
        count //= 10
    return count == first


class NoLedger:
    """For backtests (recorded in one batch at the end) and plain tests."""

    async def record_opened(self, signal: OpenSignal) -> int:
        return 0

    async def record_closed(self, result: ClosedResult) -> int:
        return 0

    def closed_at(self, signal_id: str, opened_at: int) -> int | None:
        return None

    def undelivered(
        self, strategy: str, exchange: str, symbols: Sequence[str]
    ) -> list[StreamedResult]:
        return []

    async def mark_delivered(self, result: StreamedResult) -> None:
        pass


class NoTrading:
    """`--trade off` and backtests: signals are announced, no order is placed."""

    halted: str | None = None

    async def restore(self, signal: OpenSignal | None, when: int) -> ExchangeClose | None:
        return None

    async def check(self, signal: OpenSignal | None, when: int) -> ExchangeClose | None:
        return None

    async def enter(self, signal: OpenSignal, when: int, price: float) -> TradeReport | None:
        return None

    async def exit(self, result: ClosedResult) -> TradeReport | None:
        return None


NO_TRADING = NoTrading()


class SymbolRunner:
    def __init__(
        self,
        *,
        symbol: str,
        strategy: StrategyDef,
        exchange_name: str,
        market: MarketData,
        store: SignalStore,
        costs: Costs,
        ledger: EventLog | None = None,
        trading: Trading | None = None,
        backtest: bool = False,
        frame_name: str = "",
        strategy_timeout: float | None = None,
        warn_after_failures: int = 10,
    ) -> None:
        self.symbol = symbol
        self.strategy = strategy
        self.exchange_name = exchange_name
        self.market = market
        self.costs = costs
        self.backtest = backtest
        self.stopped = False
        """No new signals once set; an open signal is still monitored."""
        self._store = store
        self._timeout = strategy_timeout
        self._timed_market = TimedMarket(market) if strategy_timeout is not None else None
        self._context_market: MarketData = self._timed_market or market
        """What strategies see: timed when their calls are bounded."""
        """Seconds any one strategy call may take (None: unbounded, e.g. backtests)."""
        self._warn_after = warn_after_failures
        self.failures = StrategyFailures()
        self._in_call: str | None = None
        """The strategy call in progress ("get_signal", "on_tick"...), for `in_strategy`."""
        self.stop_now = asyncio.Event()
        """Set on a plain stop: a strategy call in progress is cancelled, not awaited."""
        self._ledger: EventLog = ledger or NoLedger()
        self.trading: Trading = trading or NO_TRADING
        """Orders for this symbol's signals (NoTrading: none)."""
        self._method = MethodContext(strategy.name, exchange_name, frame_name, strategy.values)
        self._get_signal: SignalFunction = getattr(
            strategy.get_signal, "btkit_written", strategy.get_signal
        )
        """As written: its `param()` values ride on the tick, not on a wrapper per call
        (only the wrapper `StrategyDef.bind` made is skipped, never a function set later)."""
        self._key = step.SymbolKey(strategy.name, exchange_name, symbol)
        self.state: PersistedState = store.load()
        """The open signal, throttle and cursor; replaced whole by each step."""
        self._restored = False
        self._closed_on_restore: ExchangeClose | None = None
        """A protective order that filled while btkit was down: closes on the first tick."""
        self.restored_signal = self.signal
        self.ticks = 0
        """Ticks that got data, since start."""
        self.mid_tick = False
        """True while a tick runs: its in-memory state is then not yet consistent."""

    @property
    def signal(self) -> OpenSignal | None:
        return self.state.signal

    @property
    def last_signal_call(self) -> int | None:
        return self.state.last_signal_call

    @property
    def last_tick(self) -> int | None:
        return self.state.last_tick

    @property
    def in_strategy(self) -> str | None:
        """The strategy call in progress, named for the loop watchdog (None: none).

        Formatted when asked, not at every call: a backtest makes one call per tick.
        """
        what = self._in_call
        if what is None:
            return None
        return f"strategy {self.strategy.name} {what} for {self.symbol} ({self.strategy.source})"

    async def restore(self) -> None:
        """Make the state file and the ledger agree after a crash between their writes.

        Idempotent; the first tick, close or checkpoint runs it if the caller did not.
        """
        if self._restored:
            return
        self._restored = True
        await self._reconcile()
        self.restored_signal = self.signal
        self._closed_on_restore = await self.trading.restore(self.signal, self.state.last_tick or 0)

    async def tick(self, when: int) -> TickResult | None:
        """Run one tick at `when`; None when it is skipped for lack of candles."""
        if not self._restored:
            await self.restore()
        self.mid_tick = True
        try:
            with tick_context(self.symbol, when, self.backtest, self._method, self._context_market):
                if self.signal is None:
                    result = await self._tick_without_signal(when)
                else:
                    result = await self._tick_with_signal(self.signal, when)
                if result is not None:
                    self.ticks += 1
                    if self.strategy.on_tick is not None:
                        await self._callback("on_tick", result)
        finally:
            self.mid_tick = False
        return result

    async def _reconcile(self) -> None:
        if self.signal is None:
            return
        closed_at = self._ledger.closed_at(self.signal.id, self.signal.timestamp)
        if closed_at is not None:
            log.warning(
                "%s: signal %s was closed in the ledger just before a crash; "
                "clearing it from the state file",
                self.symbol,
                self.signal.id,
            )
            # the close was that tick's work: resume after it
            self.state = dataclasses.replace(self.state, signal=None, last_tick=closed_at)
            await self._persist()
        else:
            await self._ledger.record_opened(self.signal)

    async def checkpoint(self) -> None:
        """Persist the cursor (last tick) without a state change, e.g. on stop."""
        await self.restore()
        await self._persist()

    async def _tick_without_signal(self, when: int) -> TickResult | None:
        if self.trading is not NO_TRADING:  # reconcile on the timer even without a signal
            await self.trading.check(None, when)
        # a trading halt stops orders, not the model: the signal still opens (and its
        # event says `halted`), so the model's record stays the backtest's
        need = step.plan_tick(self.state, when, self.strategy.interval_ms, stopped=self.stopped)
        if need == "call_strategy":
            raw = await self._call_strategy()  # an exchange failure in it skips the tick
            self.state = step.after_call(self.state, when)
            accepted = step.accept_signal(raw, self._key, when)
            if isinstance(accepted, step.Rejected):
                log.error(
                    "strategy %s returned an invalid signal for %s, rejected: %s",
                    self.strategy.name,
                    self.symbol,
                    "; ".join(accepted.problems),
                )
            elif accepted is not None:
                opening = step.open_step(self.state, self._key, accepted, when)
                self.state = opening.state
                await self._persist()  # state first: a crash now is repaired by _reconcile
                crash_point("open:state-written")
                seq = await self._ledger.record_opened(accepted)
                crash_point("open:ledger-written")
                trade = await self.trading.enter(accepted, when, opening.result.current_price)
                opened = opening.result  # seq and trade None: a backtest's NoLedger, NoTrading
                if seq or trade is not None:
                    opened = dataclasses.replace(opened, seq=seq or None, trade=trade)
                await self._callback("on_open", opened)
                return opened
        price = await self.market.average_price(self.symbol, when)
        idle = step.idle_step(self.state, self._key, when, price)
        if self.strategy.on_idle is not None:  # no coroutine per tick for a missing callback
            await self._callback("on_idle", idle.result)
        self.state = idle.state
        return idle.result

    async def _tick_with_signal(self, signal: OpenSignal, when: int) -> TickResult | None:
        by_exchange, self._closed_on_restore = self._closed_on_restore, None
        if by_exchange is None:
            by_exchange = await self.trading.check(signal, when)
        if by_exchange is not None:
            return await self._close_by_exchange(by_exchange, when)
        price = await self.market.average_price(self.symbol, when)
        monitored = step.monitor_step(self.state, self._key, when, price, self.costs)
        result = monitored.result
        if result is None:
            log.warning(
                "%s %s: no 1m candle in the 5 minutes before %d; tick skipped, "
                "signal %s stays open",
                self.strategy.name,
                self.symbol,
                when,
                signal.id,
            )
        elif isinstance(result, ClosedResult):
            return await self._close(step.Step(result, monitored.state))
        elif self.strategy.on_active is not None:
            await self._callback("on_active", result)
        self.state = monitored.state
        return result

    def skip_screened(self, count: int, last: int) -> None:
        """`count` due calls up to `last` that the strategy's screen ruled out (backtests):
        they end as a call answering None ends, without running the strategy."""
        self.failures.calls += count
        self.ticks += count
        self.state = step.ruled_out(self.state, last)

    async def close_at(self, when: int, price: float) -> ClosedResult:
        """Close the open signal at a tick the backtest's scan found; same path as live."""
        await self.restore()
        try:
            closing = step.close_step(self.state, self._key, when, price, self.costs)
        except ValueError as exc:
            raise RuntimeError(str(exc)) from exc
        with tick_context(self.symbol, when, self.backtest, self._method, self._context_market):
            closed = await self._close(closing)
            await self._callback("on_tick", closed)  # as `tick` does for a live close
            return closed

    async def _close_by_exchange(self, close: ExchangeClose, when: int) -> ClosedResult:
        """A protective order filled on the exchange: the signal closes at its fill price."""
        closing = step.close_step(
            self.state, self._key, when, close.price, self.costs, reason=close.reason
        )
        closed = dataclasses.replace(closing.result, trade=close.report)
        return await self._close(step.Step(closed, closing.state), traded=True)

    async def _close(
        self, closing: step.Step[ClosedResult], *, traded: bool = False
    ) -> ClosedResult:
        closed = closing.result
        if not traded:  # sell first: a crash before the ledger's close re-runs an idempotent exit
            trade = await self.trading.exit(closed)
            if trade is not None:
                closed = dataclasses.replace(closed, trade=trade)
        seq = await self._ledger.record_closed(closed)  # ledger first: see _reconcile
        crash_point("close:ledger-written")
        if seq:
            closed = dataclasses.replace(closed, seq=seq)
        self.state = closing.state
        await self._persist()
        crash_point("close:state-written")
        await self._callback("on_close", closed)
        return closed

    async def _call_strategy(self) -> object:
        self.failures.calls += 1
        try:
            call = self._get_signal(self.symbol)
            if self._timeout is None:  # unbounded (backtests): no extra coroutine per call
                self._in_call = "get_signal"
                try:
                    result = await call
                finally:
                    self._in_call = None
            else:
                result = await self._bounded("get_signal", call)
        except ExchangeError:
            raise  # the exchange failed, not the strategy: reported as such, retried next tick
        except Exception as exc:
            if self.stop_now.is_set():
                log.info("%s: get_signal cancelled: btkit is stopping", self.symbol)
                return None
            self._strategy_failed(exc)
            return None
        if self.failures.in_a_row:
            log.warning(
                "strategy %s: get_signal works again for %s after %d failure(s) in a row",
                self.strategy.name,
                self.symbol,
                self.failures.in_a_row,
            )
        self.failures.in_a_row = 0
        return result

    async def _bounded(self, what: str, call: Awaitable[T]) -> T:
        """Await a strategy call within the timeout; names it for the loop watchdog."""
        self._in_call = what
        try:
            if self._timeout is None:
                return await call
            task = asyncio.ensure_future(call)
            stopping = asyncio.ensure_future(self.stop_now.wait())
            try:
                finished = await self._own_time_bounded(task, stopping)
            finally:
                stopping.cancel()
            if finished:
                return task.result()
            task.cancel()
            if self.stop_now.is_set():
                raise StrategyError(f"{what} cancelled: btkit is stopping")
            raise StrategyError(
                f"{what} did not return within {self._timeout:g} s of its own time "
                "(BTKIT_STRATEGY_TIMEOUT_SECONDS; waits for market data do not count); "
                "it was cancelled"
            )
        finally:
            self._in_call = None

    async def _own_time_bounded(
        self, task: asyncio.Future[T], stopping: asyncio.Future[Literal[True]]
    ) -> bool:
        """Wait until `task` ends (True), a stop, or the timeout of the strategy's own
        time (False): seconds spent waiting for market data are given back."""
        timeout, market = self._timeout, self._timed_market
        assert timeout is not None
        assert market is not None
        loop = asyncio.get_running_loop()
        started, waited_before = loop.time(), market.waited()
        left = timeout
        while True:
            waiting: set[asyncio.Future[Any]] = {task, stopping}
            done, _ = await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return True
            if stopping in done:
                return False
            left = timeout - (loop.time() - started - (market.waited() - waited_before))
            if left <= 0:
                return False

    def _strategy_failed(self, exc: Exception) -> None:
        """The first failure with its traceback, then counts; loud after N in a row."""
        failures = self.failures
        failures.failed += 1
        failures.in_a_row += 1
        failures.last_error = f"{type(exc).__name__}: {exc}"
        where = f"strategy {self.strategy.name} get_signal for {self.symbol}"
        if failures.failed == 1:
            log.error(
                "strategy %s raised in get_signal for %s (file %s): %s; counted as no "
                "signal. Later failures are counted, not printed again",
                self.strategy.name,
                self.symbol,
                self.strategy.source,
                failures.last_error,
                exc_info=exc if not isinstance(exc, StrategyError) else None,
            )
        elif failures.in_a_row >= self._warn_after and _is_milestone(
            failures.in_a_row, self._warn_after
        ):
            log.error(
                "%s has FAILED %d times in a row (last: %s): no signals are opened until it "
                "is fixed",
                where,
                failures.in_a_row,
                failures.last_error,
            )

    async def _persist(self) -> None:
        await self._store.save(self.state)

    async def _callback(self, name: CallbackName, result: TickResult) -> None:
        callback: Callback | None = getattr(self.strategy, name)
        if callback is None:
            return
        try:
            outcome = callback(result)
            if inspect.isawaitable(outcome):
                await self._bounded(name, outcome)
        except Exception:
            log.exception(
                "strategy %s: %s callback raised for %s", self.strategy.name, name, self.symbol
            )
