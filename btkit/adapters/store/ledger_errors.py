"""SQLite errors met while reading the ledger, as btkit errors naming the file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from btkit.adapters.store.ledger import unreadable_ledger


@contextmanager
def translated_ledger_errors(path: Path) -> Iterator[None]:
    """A damaged ledger read by a report is a StorageError naming it, never a traceback."""
    try:
        yield
    except sqlite3.Error as exc:
        raise unreadable_ledger(path, exc) from exc
