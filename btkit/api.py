"""The library API of the seeds, in Python: `Live`, `Backtest`, listeners.

    async for result in Live.run("BTCUSDT", strategy="my-strategy", exchange="binance"):
        ...

The CLI is a thin layer over the same `open_live` assembly used here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from btkit.domain.errors import BtkitError
from btkit.domain.model import ClosedResult, OpenSignal, StreamedResult
from btkit.drivers.backtest import BacktestRun
from btkit.drivers.live import LiveSession
from btkit.settings import Settings
from btkit.wiring.live import RunOptions, open_live

if TYPE_CHECKING:
    from btkit.adapters.store.ledger import LedgerContents, Mode, Query

log = logging.getLogger(__name__)

Listener = Callable[[StreamedResult], object]


class BackgroundRun:
    """Returned by `background`: call it to stop the run; `await handle.wait()` for its end.

    Live: no new signals, open ones close first. Backtest: the run ends at its
    next tick, keeping the results so far.
    """

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self._stopped = False
        self._stoppers: list[Callable[[], None]] = []

    def __call__(self) -> None:
        self._stopped = True
        for stopper in self._stoppers:
            stopper()

    def on_stop(self, stopper: Callable[[], None]) -> None:
        """Register how to stop the run once it exists (at once if already asked)."""
        self._stoppers.append(stopper)
        if self._stopped:
            stopper()

    async def wait(self) -> None:
        """Wait for the run to end; re-raises its error."""
        if self.task is not None:
            await self.task


async def _start(
    handle: BackgroundRun,
    work: Coroutine[Any, Any, None],
    name: str,
    tasks: set[asyncio.Task[None]],
) -> BackgroundRun:
    """Run `work` as a task kept referenced until it ends, and let it start."""
    handle.task = asyncio.create_task(work, name=name)
    tasks.add(handle.task)
    handle.task.add_done_callback(tasks.discard)
    await asyncio.sleep(0)
    return handle


class LiveUtils:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every `opened`/`closed` event; returns an unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def run(
        self,
        symbol: str,
        *,
        strategy: str,
        exchange: str,
        settings: Settings | None = None,
        options: RunOptions = RunOptions(),
        _attach: Callable[[LiveSession], None] | None = None,
    ) -> AsyncIterator[StreamedResult]:
        """Yield `opened`/`closed` results for one symbol; errors propagate to the caller."""
        async with open_live(
            settings or Settings(), [symbol], strategy, exchange, options=options
        ) as setup:
            if _attach is not None:
                _attach(setup.session)
            async for result in setup.session.events():
                self._emit(result)
                yield result
            if setup.session.failed_symbols:
                raise BtkitError(
                    f"{symbol}: its loop stopped on an error (logged above); open signals "
                    "are safe in their state files"
                )

    async def background(self, symbol: str, **kwargs: Any) -> BackgroundRun:
        """Run `run(...)` as a task for its side effects; call the result to stop it."""
        handle = BackgroundRun()

        def attach(session: LiveSession) -> None:
            handle.on_stop(lambda: session.stop(drain=True))

        async def consume() -> None:
            async for _ in self.run(symbol, _attach=attach, **kwargs):
                pass

        return await _start(handle, consume(), f"btkit-live-{symbol}", self._tasks)

    def get_report(self, strategy: str, *, settings: Settings | None = None) -> str:
        """The live report as Markdown, from the ledger: any process, any time."""
        from btkit.adapters.report.builder import markdown_report

        contents, query = _read_ledger(settings or Settings(), strategy, "live")
        return markdown_report(contents, query)

    def dump(
        self, strategy: str, path: Path | None = None, *, settings: Settings | None = None
    ) -> Path:
        """Write the live report (default `<logs>/live/<strategy>.md`) and its picture."""
        from btkit.adapters.report.builder import default_report_path, write_markdown_report

        settings = settings or Settings()
        contents, query = _read_ledger(settings, strategy, "live")
        target = path or default_report_path(settings.logs_dir, query)
        return write_markdown_report(contents, query, target)

    def _emit(self, result: StreamedResult) -> None:
        for listener in list(self._listeners):
            try:
                listener(result)
            except Exception:
                log.exception("a listen_signal_live listener raised")


@dataclass
class _RunResults:
    closed: list[ClosedResult] = field(default_factory=list)
    still_open: OpenSignal | None = None


class BacktestUtils:
    """`Backtest.run` yields `closed` results over history and ends with the frame.

    Reports cover the latest run of each symbol per strategy in this process:
    running the same backtest again replaces its results, never adds to them.
    """

    def __init__(self) -> None:
        self._latest: dict[str, dict[str, _RunResults]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(
        self,
        symbol: str,
        *,
        strategy: str,
        exchange: str = "replay",
        start: str | int | None = None,
        end: str | int | None = None,
        step: str = "1m",
        settings: Settings | None = None,
        _attach: Callable[[BacktestRun], None] | None = None,
    ) -> AsyncIterator[ClosedResult]:
        from btkit.app.backtest_jobs import plan, prepare

        # Loading strategies and candles takes a while: off the event loop.
        planned = await asyncio.to_thread(
            plan,
            settings or Settings(),
            [symbol],
            strategy,
            exchange,
            start=_time(start),
            end=_time(end),
            step=step,
        )
        definition = planned.strategy
        run = prepare(planned.jobs[0], definition, planned.history[symbol])
        if _attach is not None:
            _attach(run)
        results = _RunResults()
        self._latest.setdefault(definition.name, {})[symbol] = results
        async for result in run.results():
            results.closed.append(result)
            yield result
        results.still_open = run.still_open

    async def background(self, symbol: str, **kwargs: Any) -> BackgroundRun:
        """Run `run(...)` as a task and return at once; call the result to stop it early."""
        handle = BackgroundRun()

        def attach(run: BacktestRun) -> None:
            handle.on_stop(run.request_stop)

        async def consume() -> None:
            async for _ in self.run(symbol, _attach=attach, **kwargs):
                pass

        return await _start(handle, consume(), f"btkit-backtest-{symbol}", self._tasks)

    def get_report(self, strategy: str) -> str:
        """The report of the latest run of each symbol of `strategy` in this process."""
        from btkit.adapters.report.builder import results_report

        runs = list(self._latest.get(strategy, {}).values())
        return results_report(
            f"Backtest report: {strategy}",
            [closed for run in runs for closed in run.closed],
            [run.still_open for run in runs if run.still_open is not None],
            {"Mode": "backtest"},
        )

    def dump(
        self, strategy: str, path: Path | None = None, settings: Settings | None = None
    ) -> Path:
        from btkit.adapters.store.atomic import write_private

        target = path or (settings or Settings()).logs_dir / "backtest" / f"{strategy}.md"
        return write_private(target, self.get_report(strategy).encode())


def _read_ledger(settings: Settings, strategy: str, mode: Mode) -> tuple[LedgerContents, Query]:
    from btkit.adapters.store.ledger import Query
    from btkit.wiring.ledger import read_events

    query = Query(strategy=strategy, mode=mode)
    return read_events(settings, query), query


def _time(value: str | int | None) -> int | None:
    from btkit.domain.timefmt import parse_utc

    return parse_utc(value) if isinstance(value, str) else value


Live = LiveUtils()
Backtest = BacktestUtils()
listen_signal_live = Live.listen
