"""Who holds a SQLite database's write lock, so "database is locked" can name a process.

In WAL mode a writer holds a POSIX write lock on byte 120 of `<db>-shm`
(SQLite's WAL_WRITE_LOCK); a connection in exclusive locking mode (or a
rollback-journal writer) holds write locks on the database file itself, where
WAL connections otherwise hold only read locks. Linux lists every POSIX lock in `/proc/locks` with
the owner's pid and the file's inode; elsewhere (or without /proc) the caller
falls back to advice (`fuser`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

WAL_WRITE_LOCK_BYTE = 120


@dataclass(frozen=True, slots=True)
class LockHolder:
    pid: int
    command: str
    """The holder's command line, or "" if it cannot be read."""


def write_lock_pids(proc_locks: str, inode: int, byte: int | None) -> list[int]:
    """Pids holding a POSIX write lock over `byte` (None: any byte) of the file with `inode`.

    Lines look like `1: POSIX  ADVISORY  WRITE 1234 fd:01:5678 120 120`;
    blocked waiters (`1: -> POSIX ...`) hold nothing and are skipped.
    """
    pids: list[int] = []
    for line in proc_locks.splitlines():
        fields = line.split()
        if len(fields) < 8 or fields[1] == "->" or fields[1] not in ("POSIX", "OFDLCK"):
            continue
        _, _, _, mode, pid, device_inode, start, end = fields[:8]
        if mode != "WRITE" or device_inode.rsplit(":", 1)[-1] != str(inode):
            continue
        try:
            covers = byte is None or (int(start) <= byte and (end == "EOF" or byte <= int(end)))
            holder = int(pid)
        except ValueError:
            continue
        if covers and holder > 0 and holder not in pids:
            pids.append(holder)
    return pids


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    text = " ".join(text.split())  # one line, even for `python -c` scripts
    return text if len(text) <= 160 else text[:159] + "…"


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def write_lock_holders(database: Path) -> list[LockHolder]:
    """The processes holding `database`'s write lock; [] when that cannot be told."""
    try:
        locks = Path("/proc/locks").read_text()
    except OSError:
        return []
    pids: list[int] = []
    for inode, byte in (
        (_inode(f"{database}-shm"), WAL_WRITE_LOCK_BYTE),
        (_inode(str(database)), None),
    ):
        if inode is not None:
            pids += [pid for pid in write_lock_pids(locks, inode, byte) if pid not in pids]
    return [LockHolder(pid, _command(pid)) for pid in pids]
