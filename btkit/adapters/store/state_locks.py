"""Whether a daemon holds a state file (for `btkit status`), without waiting for it."""

from __future__ import annotations

from pathlib import Path

import filelock


def is_owned(path: Path) -> bool:
    """True when another process holds the state file's lock: a daemon runs it."""
    lock = filelock.FileLock(f"{path}.lock", timeout=0, mode=0o600)
    try:
        lock.acquire()
    except filelock.Timeout:
        return True
    lock.release()
    return False
