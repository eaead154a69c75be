"""A thread that notices when the asyncio loop stops turning.

A strategy that blocks (a `time.sleep`, a synchronous HTTP call, a long
computation) inside `get_signal` freezes every symbol of the process, and no
asyncio timeout can interrupt it. This thread sees the loop's pulse stop, names
the strategy call in progress and the line it is on, and, once a stop has been
requested, ends the process after a grace period: the main thread is inside the
strategy, so no btkit write is in progress and every state file is whole.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger(__name__)

BLOCKED_EXIT_STATUS = 1


class LoopWatchdog:
    def __init__(
        self,
        *,
        blocked_after: float,
        describe: Callable[[], str | None],
        stop_requested: threading.Event,
        exit_process: Callable[[int], None] = os._exit,
    ) -> None:
        """`describe` names the strategy call in progress (None: not in a strategy)."""
        self._blocked_after = blocked_after
        self._describe = describe
        self._stop_requested = stop_requested
        self._exit = exit_process
        self._pulse = time.monotonic()
        self._closed = threading.Event()
        self._main = threading.main_thread().ident
        self._thread = threading.Thread(target=self._watch, name="btkit-loop-watchdog", daemon=True)

    async def run(self) -> None:
        """The loop's pulse; start the thread and keep this task running alongside."""
        self._thread.start()
        try:
            while True:
                self._pulse = time.monotonic()
                await asyncio.sleep(min(0.5, self._blocked_after / 4))
        finally:
            self._closed.set()

    def _watch(self) -> None:
        reported = False
        while not self._closed.wait(min(0.25, self._blocked_after / 8)):
            lag = time.monotonic() - self._pulse
            if lag < self._blocked_after:
                reported = False
                continue
            culprit = self._describe()
            if not reported:
                reported = True
                log.error(
                    "the event loop has been BLOCKED for %.0f s%s, at %s: every symbol is "
                    "frozen. Strategy code must not block: use `await` (e.g. asyncio.sleep, an "
                    "async HTTP client) or asyncio.to_thread",
                    lag,
                    f" by {culprit}" if culprit else "",
                    self._main_line(),
                )
            if culprit and self._stop_requested.is_set():
                log.critical(
                    "stop requested, but %s still blocks the event loop (%.0f s); exiting now "
                    "without finishing the tick. State files are whole; the next start "
                    "resumes from them",
                    culprit,
                    lag,
                )
                logging.shutdown()
                self._exit(BLOCKED_EXIT_STATUS)
                return

    def _main_line(self) -> str:
        frame = sys._current_frames().get(self._main or 0)
        if frame is None:
            return "an unknown line"
        last = traceback.extract_stack(frame)[-1]
        return f"{last.filename}:{last.lineno} ({last.line})"
