"""OS stop signals for `btkit live`, caught from the command's first line to its exit.

Before the event loop runs (imports, settings, strategy loading) a plain
`signal.signal` handler only records the request, so SIGINT, SIGTERM or SIGHUP
never kills the process half-way. While the loop runs, asyncio's handlers (woken
through its self-pipe, whichever thread the kernel picked) hand every signal,
including those recorded earlier, to the daemon's listener. After the loop,
signals are recorded again and ignored: the process is already on its way out.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""SIGHUP (terminal closed, or `kill -HUP`) stops gracefully too: btkit has no reload."""


class StopLatch:
    def __init__(self) -> None:
        self.requested = threading.Event()
        """Set from the signal handler itself, so a thread sees it while the loop is blocked."""
        self.received: list[str] = []
        self._delivered = 0
        self._listener: Callable[[str], None] | None = None

    def install(self) -> None:
        """Record stop signals from now on (call as early as possible)."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.requested.set()
        self.received.append(signal.Signals(signum).name)

    def _flag(self, signum: int, frame: FrameType | None) -> None:
        self.requested.set()  # the loop itself hears of it through its wakeup fd

    def attach(self, loop: asyncio.AbstractEventLoop, listener: Callable[[str], None]) -> None:
        """Pass each stop signal to `listener` on `loop`, starting with any already received."""
        self._listener = listener
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._deliver, sig.name)
            # asyncio keeps the wakeup fd; our Python-level handler also runs while a
            # strategy blocks the loop, so the loop watchdog learns of the stop.
            signal.signal(sig, self._flag)
        self._flush()

    def _deliver(self, name: str) -> None:
        self.requested.set()
        self.received.append(name)
        self._flush()

    def _flush(self) -> None:
        while self._listener is not None and self._delivered < len(self.received):
            self._delivered += 1
            self._listener(self.received[self._delivered - 1])

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Back to recording only, so a late signal cannot change the exit status."""
        self._listener = None
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            signal.signal(sig, self._record)
