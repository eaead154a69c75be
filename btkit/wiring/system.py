"""The operating system's side of a daemon: stop signals and the systemd notify socket."""

from __future__ import annotations

from btkit.adapters.system.stop_signals import StopLatch
from btkit.adapters.system.systemd import Notifier


def stop_latch() -> StopLatch:
    """SIGINT/SIGTERM/SIGHUP caught from now on (installed), handed to the loop later."""
    latch = StopLatch()
    latch.install()
    return latch


def systemd_notifier() -> Notifier:
    """Talks to systemd when it started us (NOTIFY_SOCKET); silent otherwise."""
    return Notifier.from_environment()
