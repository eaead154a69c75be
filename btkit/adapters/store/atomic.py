"""Crash-safe file replacement: a reader sees the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from btkit.domain.errors import StorageError

TEMP_SUFFIX = ".tmp"


def ensure_private_dir(folder: Path) -> None:
    """Create `folder` and every missing parent owner-only (0700), whatever the umask.

    `Path.mkdir(parents=True)` gives the parents the umask's mode (0777 under
    umask 000); folders that already exist are left as they are.
    """
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        for new in reversed(missing):
            try:
                new.mkdir(mode=0o700)
            except FileExistsError:  # created meanwhile by another process: theirs
                continue
            new.chmod(0o700)
        if not folder.is_dir():
            folder.mkdir()  # raises the OS's own reason (e.g. a file in the way)
    except OSError as exc:
        raise StorageError(
            f"Cannot create folder {folder}: {exc.strerror}. Check the disk and the folder's "
            "permissions (or point --data-dir / --logs-dir elsewhere), then restart."
        ) from exc


def atomic_write_bytes(
    path: Path,
    data: bytes | Iterable[bytes | memoryview],
    *,
    before_rename: Callable[[], None] | None = None,
) -> None:
    """Write to a temp file in the same folder, fsync, rename over `path`, fsync the folder.

    `data` may come in pieces (e.g. views of arrays), written in order without
    being joined first. The file is created readable by the owner only. Errors
    (disk full, read-only folder) leave the previous file untouched and raise
    StorageError.
    `before_rename` runs once the temp file is durable (crash tests kill there).
    """
    folder = path.parent
    fd = -1
    temp_name = ""
    try:
        fd, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            for piece in [data] if isinstance(data, bytes) else data:
                handle.write(piece)
            handle.flush()
            os.fsync(handle.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(temp_name, path)
        temp_name = ""
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise StorageError(
            f"Cannot write {path}: {exc.strerror or exc}. The previous file is intact; "
            "free disk space or fix the folder's permissions, then restart."
        ) from exc
    finally:
        if fd >= 0:
            os.close(fd)
        if temp_name:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)


def write_private(path: Path, data: bytes | Iterable[bytes | memoryview]) -> Path:
    """`atomic_write_bytes`, creating the folder (owner-only) when it is missing."""
    ensure_private_dir(path.parent)
    atomic_write_bytes(path, data)
    return path


def check_writable(folder: Path) -> None:
    """Fail early, with the reason, if `folder` cannot take a small durable write.

    The probe is a unique temp file, so daemons starting together never remove
    each other's probes.
    """
    ensure_private_dir(folder)
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".btkit-write-check-")
        try:
            os.write(fd, b"ok\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        raise StorageError(
            f"Cannot write to {folder}: {exc.strerror or exc}. Free disk space or fix the "
            "folder's permissions (or point --data-dir / --logs-dir elsewhere), then restart."
        ) from exc


def remove_stale_temp_files(folder: Path, target_name: str) -> list[Path]:
    """Delete temp files a crash left behind for `target_name`; the target is always whole."""
    removed = []
    for leftover in folder.glob(f".{target_name}.*{TEMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed.append(leftover)
    return removed
