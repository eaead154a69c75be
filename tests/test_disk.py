"""Disk trouble: a read-only or full data folder gives a clear error and keeps the state."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import sqlite3
import subprocess

from tests.conftest import ALWAYS_LONG


def run_limited(project, args, file_size_limit):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        project.command(*args),
        cwd=project.root,
        env=project.env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        check=False,
    )


@contextlib.contextmanager
def read_only(folder):
    """A read-only copy of `folder`: a real read-only tmpfs where mounting is allowed."""
    if os.geteuid() == 0:
        content = folder.with_name(folder.name + ".copy")
        shutil.copytree(folder, content)
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "tmpfs", str(folder)], capture_output=True, check=False
            ).returncode
            == 0
        )
        if mounted:
            try:
                shutil.copytree(content, folder, dirs_exist_ok=True)
                subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
                yield "mount"
            finally:
                subprocess.run(["umount", str(folder)], check=False)
            return
    else:
        os.chmod(folder / "signal", 0o500)
        os.chmod(folder, 0o500)
        try:
            yield "chmod"
        finally:
            os.chmod(folder, 0o700)
            os.chmod(folder / "signal", 0o700)
        return
    yield "fsize"  # root without mount rights: an unwritable process instead


def test_a_read_only_data_folder_is_refused_at_start_and_state_kept(project):
    project.write_strategy("always_long.py", ALWAYS_LONG)
    args = ("live", "ETHBTC", "-s", "always-long")
    assert project.run(*args, "--end", "2018-01-20T12:00").returncode == 0
    state = project.signal_dir / "replay-always-long-ETHBTC.json"
    before = state.read_bytes()
    assert b'"signal": {' in before  # an open signal is on disk
    with read_only(project.root / "data") as how:
        done = run_limited(project, args, 0) if how == "fsize" else project.run(*args)
        after = state.read_bytes()
    assert done.returncode == 1
    assert "Cannot write" in done.stderr
    assert (
        "Read-only file system" in done.stderr
        or "Permission denied" in done.stderr
        or "File too large" in done.stderr
    )
    assert after == before


def test_a_disk_that_fills_mid_run_stops_cleanly_and_loses_nothing(project):
    project.write_strategy("always_long.py", ALWAYS_LONG)
    args = ("live", "ETHBTC", "LTCBTC", "-s", "always-long")
    reference = project.clone_data("ref-data")
    assert project.run(*args, "--data-dir", reference).returncode == 0

    full = run_limited(project, args, 48_000)  # the ledger outgrows this mid-run
    assert full.returncode == 1, full.stderr
    assert "disk is full" in full.stderr or "File too large" in full.stderr
    for path in project.signal_dir.glob("*.json"):
        assert path.read_text().startswith("{")  # whole, parseable state files

    resumed = project.run(*args)
    assert resumed.returncode == 0, resumed.stderr

    def closes(folder):
        db = sqlite3.connect(project.root / folder / "btkit.sqlite")
        rows = db.execute(
            "SELECT signal_id, closed_at, close_reason, pnl_percentage FROM "
            "events WHERE action = 'closed' ORDER BY closed_at, signal_id"
        ).fetchall()
        db.close()
        return rows

    assert closes("data") == closes(reference)
