"""The library API of the seeds, in Python: `Live.run`, `Live.background`, listeners.

    async for result in Live.run("BTCUSDT", strategy="my-strategy", exchange="binance"):
        ...

The CLI is a thin layer over the same `open_live` assembly used here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from btkit.domain import StreamedResult
from btkit.runtime.assembly import ReplayOptions, open_live
from btkit.runtime.live import LiveSession
from btkit.settings import Settings

log = logging.getLogger(__name__)

Listener = Callable[[StreamedResult], object]


class BackgroundRun:
    """Returned by `Live.background`: call it to stop new signals and let open ones close."""

    def __init__(self) -> None:
        self.session: LiveSession | None = None
        self.task: asyncio.Task[None] | None = None
        self._cancelled = False

    def __call__(self) -> None:
        self._cancelled = True
        if self.session is not None:
            self.session.stop(drain=True)

    def attach(self, session: LiveSession) -> None:
        self.session = session
        if self._cancelled:
            session.stop(drain=True)

    async def wait(self) -> None:
        """Wait for the run to end; re-raises its error."""
        if self.task is not None:
            await self.task


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
        replay: ReplayOptions = ReplayOptions(),
        _attach: Callable[[LiveSession], None] | None = None,
    ) -> AsyncIterator[StreamedResult]:
        """Yield `opened`/`closed` results for one symbol; errors propagate to the caller."""
        async with open_live(
            settings or Settings(), [symbol], strategy, exchange, replay=replay
        ) as setup:
            if _attach is not None:
                _attach(setup.session)
            async for result in setup.session.events():
                self._emit(result)
                yield result

    async def background(self, symbol: str, **kwargs: Any) -> BackgroundRun:
        """Run `run(...)` as a task for its side effects; call the result to stop it."""
        handle = BackgroundRun()

        async def consume() -> None:
            async for _ in self.run(symbol, _attach=handle.attach, **kwargs):
                pass

        handle.task = asyncio.create_task(consume(), name=f"btkit-live-{symbol}")
        self._tasks.add(handle.task)
        handle.task.add_done_callback(self._tasks.discard)
        await asyncio.sleep(0)
        return handle

    def _emit(self, result: StreamedResult) -> None:
        for listener in list(self._listeners):
            try:
                listener(result)
            except Exception:
                log.exception("a listen_signal_live listener raised")


Live = LiveUtils()
listen_signal_live = Live.listen
