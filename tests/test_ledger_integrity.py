"""The ledger never swallows a write, says who holds its lock, and stays owner-only."""

from __future__ import annotations

import dataclasses
import math
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from btkit.adapters.store.ledger import LedgerLockedError, Query, SqliteLedger
from btkit.adapters.store.lock_holders import write_lock_pids
from btkit.adapters.store.signal_state import JsonSignalStore
from btkit.domain.errors import StorageError
from tests.conftest import Project
from tests.test_ledger import SIGNAL, closed


def rows(path: Path) -> list[tuple[str, str, object]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT signal_id, action, pnl_percentage FROM events").fetchall()
    finally:
        db.close()


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (lambda: closed(pnl=math.nan), "pnl_percentage is nan"),
        (lambda: closed(when=SIGNAL.timestamp + 60_000, pnl=math.inf), "pnl_percentage is inf"),
    ],
)
def test_a_close_that_is_not_a_number_is_refused_loudly(tmp_path, event, field):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    ledger.write_opened(SIGNAL)
    with pytest.raises(StorageError, match=field):
        ledger.write_closed(event())
    assert rows(tmp_path / "btkit.sqlite") == [("sig-1", "opened", None)]
    ledger.write_closed(closed())  # the same close with a real PnL is recorded
    assert ledger.read(Query("strat")).trades[0].pnl_percentage == 1.5


def test_an_open_with_a_nan_price_is_refused_not_ignored(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    broken = dataclasses.replace(SIGNAL, price_open=math.nan)
    with pytest.raises(StorageError, match="price_open is nan, not a finite number"):
        ledger.write_opened(broken)
    assert rows(tmp_path / "btkit.sqlite") == []


def test_only_true_duplicates_are_skipped(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    ledger.write_opened(SIGNAL)
    ledger.write_opened(SIGNAL)  # a crash replay: same run, signal, action
    nameless = dataclasses.replace(SIGNAL, id="sig-2", symbol=None)
    with pytest.raises(StorageError, match="refused an event: NOT NULL constraint failed"):
        ledger.write_opened(nameless)
    assert rows(tmp_path / "btkit.sqlite") == [("sig-1", "opened", None)]


def test_a_different_event_under_the_same_key_is_refused_not_dropped(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    ledger.write_opened(SIGNAL)
    ledger.write_closed(closed())
    ledger.write_closed(closed())  # the same event again: a replayed crash step
    with pytest.raises(StorageError, match=r"already holds a different closed event") as caught:
        ledger.write_closed(closed(pnl=2.0))
    assert "pnl_percentage 1.5 -> 2.0" in str(caught.value)
    edited = dataclasses.replace(SIGNAL, price_take_profit=120.0)
    with pytest.raises(StorageError, match=r"price_take_profit 110\.0 -> 120\.0"):
        ledger.write_opened(edited)
    assert rows(tmp_path / "btkit.sqlite") == [("sig-1", "opened", None), ("sig-1", "closed", 1.5)]
    ledger.write_opened(dataclasses.replace(SIGNAL, id="sig-2"))  # no transaction left open
    assert len(rows(tmp_path / "btkit.sqlite")) == 3


def test_an_infinite_lifetime_is_stored_and_read_back(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    forever = dataclasses.replace(SIGNAL, minute_estimated_time=math.inf)
    ledger.write_opened(forever)
    assert ledger.read(Query("strat")).still_open == [forever]


HOLD_WRITE_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive":
    db.execute("PRAGMA locking_mode=EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE" if sys.argv[2] == "exclusive" else "BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
"""


def hold_write_lock(path: Path, how: str = "immediate") -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(path), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"  # waits for the condition, not a time
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    holder.communicate(timeout=60)  # closes its stdin: it ends, and so does its transaction


def test_a_locked_ledger_names_the_process_that_holds_it(tmp_path):
    path = tmp_path / "btkit.sqlite"
    ledger = SqliteLedger(path, busy_timeout=0.2)
    holder = hold_write_lock(path)
    try:
        with pytest.raises(LedgerLockedError) as caught:
            ledger.write_opened(SIGNAL)
    finally:
        release(holder)
    message = str(caught.value)
    assert f"pid {holder.pid} ({sys.executable} -c " in message  # its command line, one line
    assert "for more than 0.2 s" in message
    assert "disk space" not in message
    ledger.write_opened(SIGNAL)  # released: the write goes through
    assert len(ledger.read(Query("strat")).still_open) == 1


def test_a_ledger_locked_exclusively_is_not_called_damaged(tmp_path):
    path = tmp_path / "btkit.sqlite"
    SqliteLedger(path).close()
    holder = hold_write_lock(path, "exclusive")
    try:
        with pytest.raises(LedgerLockedError) as caught:
            SqliteLedger(path, busy_timeout=0.2)
    finally:
        release(holder)
    assert f"pid {holder.pid} (" in str(caught.value)
    assert "damaged" not in str(caught.value)


def test_lock_holders_are_read_from_proc_locks():
    proc_locks = (
        "1: POSIX  ADVISORY  READ 4242 fd:01:777 128 128\n"
        "2: POSIX  ADVISORY  WRITE 5151 fd:01:777 120 120\n"
        "2: -> POSIX  ADVISORY  WRITE 6262 fd:01:777 120 120\n"
        "3: POSIX  ADVISORY  WRITE 7373 fd:01:778 120 120\n"
        "4: FLOCK  ADVISORY  WRITE 8484 fd:01:777 0 EOF\n"
        "5: OFDLCK ADVISORY  WRITE -1 fd:01:777 0 EOF\n"
        "6: POSIX  ADVISORY  WRITE 9595 00:2a:777 100 EOF\n"
    )
    assert write_lock_pids(proc_locks, 777, 120) == [5151, 9595]
    assert write_lock_pids(proc_locks, 777, None) == [5151, 9595]  # FLOCK/OFD: not SQLite's
    assert write_lock_pids(proc_locks, 778, None) == [7373]
    assert write_lock_pids("", 777, 120) == []


def test_a_locked_ledger_stops_live_with_the_holder_and_exit_1(project: Project):
    first = project.run("live", "ETHBTC", "-s", "my-strategy", "--json")
    assert first.returncode == 0, first.stderr
    holder = hold_write_lock(project.root / "data" / "btkit.sqlite")
    try:
        locked = project.run("live", "ETHBTC", "-s", "my-strategy", "--json", "--restart")
    finally:
        release(holder)
    assert locked.returncode == 1
    assert f"pid {holder.pid}" in locked.stderr
    assert "is locked" in locked.stderr
    assert "disk space" not in locked.stderr
    assert "Traceback" not in locked.stderr


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}


def test_ledger_and_lock_files_are_owner_only_under_umask_000(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "new" / "nested" / "btkit.sqlite"
        ledger = SqliteLedger(path)
        ledger.write_opened(SIGNAL)  # the -wal and -shm files exist while it is open
        store = JsonSignalStore(
            tmp_path / "new" / "signal",
            exchange_name="replay",
            strategy_name="strat",
            symbol="ETHBTC",
            now_ms=lambda: 1,
        )
        store.acquire()
        try:
            modes = _modes(tmp_path / "new")
        finally:
            store.release()
            ledger.close()
    finally:
        os.umask(old)
    assert {"nested/btkit.sqlite-wal", "nested/btkit.sqlite-shm"} <= set(modes)
    assert "signal/replay-strat-ETHBTC.json.lock" in modes
    wrong = {name: oct(mode) for name, mode in modes.items() if mode not in (0o600, 0o700)}
    assert wrong == {}
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_every_file_a_live_run_writes_is_owner_only_under_umask_000(project: Project):
    def live_under_umask_000() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            project.command("live", "ETHBTC", "-s", "my-strategy", "--data-dir", "fresh/data"),
            cwd=project.root,
            env={**project.env(), "BTKIT_LOGS_DIR": "fresh/logs"},
            capture_output=True,
            text=True,
            timeout=120,
            umask=0,
            check=False,
        )

    done = live_under_umask_000()
    # No candles in the fresh folder: the run stops with a clear error, after its folders exist.
    assert done.returncode == 2, done.stderr
    (project.root / "fresh" / "data" / "candles").mkdir(mode=0o755)
    for csv in (project.root / "data" / "candles").glob("*.csv"):
        (project.root / "fresh" / "data" / "candles" / csv.name).write_bytes(csv.read_bytes())
    done = live_under_umask_000()
    assert done.returncode == 0, done.stderr
    modes = _modes(project.root / "fresh")
    theirs = ("data/candles", "data/candles/ETHBTC-1m.csv", "data/candles/LTCBTC-1m.csv")
    ours = {name: mode for name, mode in modes.items() if name not in theirs}
    assert "data/btkit.sqlite" in ours
    assert "logs/live/my-strategy.md" in ours
    wrong = {name: oct(mode) for name, mode in ours.items() if mode not in (0o600, 0o700)}
    assert wrong == {}
    assert stat.S_IMODE((project.root / "fresh").stat().st_mode) == 0o700


HUGE_NOTE = """
from btkit import Signal, get_average_price, strategy

@strategy("chatty", interval="5m", warmup_minutes=10)
async def chatty(symbol):
    price = await get_average_price(symbol)
    return Signal("long", price, price * 1.01, price * 0.99, 60, note="x" * 10_000_000)
"""


def test_a_huge_note_is_rejected_and_the_ledger_stays_small(project: Project):
    project.write_strategy("chatty.py", HUGE_NOTE)
    done = project.run("live", "ETHBTC", "-s", "chatty", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "note is 10000000 bytes, more than the 4096 allowed" in done.stderr
    assert "x" * 100 not in done.stderr  # the note itself is not logged
    ledger = project.root / "data" / "btkit.sqlite"
    assert not ledger.exists() or ledger.stat().st_size < 1_000_000
