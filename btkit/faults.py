"""Fault injection for crash tests only: inert unless BTKIT_FAULT_KILL_AT is set.

`BTKIT_FAULT_KILL_AT=<point>[:<n>]` makes the process SIGKILL itself the n-th
time (default 1st) it passes `<point>`, so tests can prove that a crash between
any two steps of an open or a close loses and duplicates nothing. Points:
`open:state-written`, `open:ledger-written`, `close:ledger-written`,
`close:state-written`, `event:printed` (an event written to stdout, not yet
marked delivered in the ledger), and `run:temp-written` (a backtest run's file
written and fsynced under its temp name, not yet renamed into place). The order
flow (btkit.drivers.trader): `order:entry-intent`, `order:entry-sent`,
`order:protect-intent`, `order:protected`, `order:protect-cancelled`,
`order:exit-sent`.
"""

from __future__ import annotations

import functools
import os
import signal

_ENV = "BTKIT_FAULT_KILL_AT"
_passes: dict[str, int] = {}


@functools.cache
def _target() -> tuple[str, int] | None:
    """The (point, n-th pass) to die at, read once per process."""
    setting = os.environ.get(_ENV)
    if not setting:
        return None
    point, _, count = setting.rpartition(":")
    if not count.isdigit():
        return setting, 1
    return point, int(count)


def crash_point(name: str) -> None:
    target = _target()
    if target is None or target[0] != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
