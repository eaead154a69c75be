from __future__ import annotations

import asyncio
import json
import stat

import pytest

from btkit.adapters.store.signal_state import JsonSignalStore, state_file_name
from btkit.domain.errors import StateLockedError
from btkit.domain.model import OpenSignal, PersistedState

SIGNAL = OpenSignal(
    id="abc",
    position="long",
    price_open=1.0,
    price_take_profit=1.1,
    price_stop_loss=0.9,
    minute_estimated_time=30,
    symbol="ETHBTC",
    strategy_name="strat",
    exchange_name="replay",
    timestamp=60_000,
)


def make_store(folder, strategy="strat"):
    return JsonSignalStore(
        folder,
        exchange_name="replay",
        strategy_name=strategy,
        symbol="ETHBTC",
        now_ms=lambda: 1_516_000_000_000,
    )


def test_round_trip_is_atomic_and_owner_only(tmp_path):
    store = make_store(tmp_path)
    state = PersistedState(SIGNAL, last_signal_call=60_000, last_tick=120_000)
    asyncio.run(store.save(state))
    assert store.load() == state
    assert store.path.name == "replay-strat-ETHBTC.json"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [store.path.name]  # no temp file left
    asyncio.run(store.save(PersistedState(None, 60_000, 180_000)))
    assert json.loads(store.path.read_text())["signal"] is None


def test_missing_file_means_no_open_signal(tmp_path):
    assert make_store(tmp_path).load() == PersistedState()


@pytest.mark.parametrize("content", [b"{not json", b"", b'{"version": 1}', b'{"signal": 3}'])
def test_corrupt_file_is_moved_aside_and_kept(tmp_path, caplog, content):
    store = make_store(tmp_path)
    store.path.write_bytes(content)
    assert store.load() == PersistedState()
    kept = list(tmp_path.glob("replay-strat-ETHBTC.json.corrupt-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == content
    assert not store.path.exists()
    assert "CORRUPT STATE FILE" in caplog.text


@pytest.mark.parametrize(
    "names",
    [("replay", "other", "ETHBTC"), ("binance", "strat", "ETHBTC"), ("replay", "strat", "LTCBTC")],
)
def test_another_runs_state_file_is_moved_aside_not_overwritten(tmp_path, caplog, names):
    asyncio.run(make_store(tmp_path).save(PersistedState(SIGNAL, 60_000, 120_000)))
    original = (tmp_path / "replay-strat-ETHBTC.json").read_bytes()
    other = make_store(tmp_path)
    other._names = names
    assert other.load() == PersistedState()
    asyncio.run(other.save(PersistedState(None, 1, 2)))  # the run goes on and saves its own state
    kept = list(tmp_path.glob("replay-strat-ETHBTC.json.foreign-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes() == original
    assert "FOREIGN STATE FILE" in caplog.text
    assert "belongs to exchange replay, strategy strat, symbol ETHBTC" in caplog.text


def test_leftover_temp_files_are_removed_on_acquire(tmp_path):
    store = make_store(tmp_path)
    leftover = tmp_path / ".replay-strat-ETHBTC.json.abc123.tmp"
    leftover.write_text("half")
    store.acquire()
    try:
        assert not leftover.exists()
    finally:
        store.release()


def test_second_owner_is_refused(tmp_path):
    first, second = make_store(tmp_path), make_store(tmp_path)
    first.acquire()
    try:
        with pytest.raises(StateLockedError, match="Another btkit process already runs strat"):
            second.acquire()
    finally:
        first.release()


def test_names_that_could_escape_the_folder_are_refused():
    with pytest.raises(ValueError, match="cannot be part of a state file name"):
        state_file_name("replay", "strat", "../../etc/passwd")


def test_daemons_starting_together_do_not_trip_over_each_others_write_probe(tmp_path):
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from btkit.adapters.store.atomic import check_writable\n"
        "while time.time() < float(sys.argv[2]):\n"
        "    pass\n"
        "for _ in range(200):\n"
        "    check_writable(Path(sys.argv[1]))\n"
    )
    go = str(time.time() + 0.5)
    probes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), go], stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    for process in probes:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    assert list(tmp_path.iterdir()) == []
