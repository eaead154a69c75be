"""Fault injection for crash tests only: inert unless BTKIT_FAULT_KILL_AT is set.

`BTKIT_FAULT_KILL_AT=<point>[:<n>]` makes the process SIGKILL itself the n-th
time (default 1st) it passes `<point>`, so tests can prove that a crash between
any two steps of an open or a close loses and duplicates nothing. Points:
`open:state-written`, `open:ledger-written`, `close:ledger-written`,
`close:state-written`.
"""

from __future__ import annotations

import os
import signal

_ENV = "BTKIT_FAULT_KILL_AT"
_passes: dict[str, int] = {}


def crash_point(name: str) -> None:
    setting = os.environ.get(_ENV)
    if not setting:
        return
    point, _, count = setting.rpartition(":")
    if not count.isdigit():
        point, count = setting, "1"
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
