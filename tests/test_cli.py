"""The real `btkit` command in a subprocess, on temporary folders, replay exchange."""

from __future__ import annotations

import json
import shutil
import signal
import stat
import time

import pytest

from tests.conftest import ALWAYS_LONG, Lines, json_events, wait_for_paths, wait_until_catching


def test_live_replay_prints_events_writes_state_and_exits_zero(project):
    done = project.run(
        "live",
        "ETHBTC",
        "LTCBTC",
        "--strategy",
        "my-strategy",
        "--exchange",
        "replay",
        "--speed",
        "max",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "strategy: my-strategy (every 5m" in out
    assert "restored: no open signals" in out
    assert "OPENED  ETHBTC" in out
    assert "OPENED  LTCBTC" in out
    assert "CLOSED" in out
    assert "pnl " in out
    assert "stopped:" in out.splitlines()[-1]
    for symbol in ("ETHBTC", "LTCBTC"):
        path = project.signal_dir / f"replay-my-strategy-{symbol}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["last_tick"] is not None


def test_json_mode_prints_one_event_object_per_line(project):
    done = project.run("live", "ETHBTC", "-s", "my-strategy", "--json")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert {e["action"] for e in events} == {"opened", "closed"}
    closed = next(e for e in events if e["action"] == "closed")
    assert closed["close_reason"] in ("take_profit", "stop_loss", "time_expired")
    assert set(closed["pnl"]) == {"pnl_percentage", "price_open", "price_close"}
    assert closed["signal"]["position"] in ("long", "short")
    assert closed["close_timestamp"] == closed["timestamp"] > closed["signal"]["timestamp"]


def test_second_run_resumes_from_the_cursor(project):
    first = project.run("live", "ETHBTC", "-s", "my-strategy", "--json")
    second = project.run("live", "ETHBTC", "-s", "my-strategy", "--json")
    assert first.returncode == second.returncode == 0
    assert json_events(second.stdout) == []  # the history was already replayed
    assert "already at its end" in second.stderr
    assert "--restart" in second.stderr
    again = project.run("live", "ETHBTC", "-s", "my-strategy", "--json", "--restart")
    replayed, original = json_events(again.stdout), json_events(first.stdout)
    assert [e.pop("seq") for e in replayed] > [e.pop("seq") for e in original]  # new events
    assert replayed == original
    assert list(project.signal_dir.glob("*.restart-*"))  # old state kept, not deleted


def test_unknown_strategy_exchange_and_symbol_are_clear_errors(cli, project):
    unknown = cli.run("live", "ETHBTC", "-s", "my-strategi")
    assert unknown.returncode == 2
    assert "Did you mean my-strategy" in unknown.stderr
    exchange = cli.run("live", "ETHBTC", "-s", "my-strategy", "-e", "binanse")
    assert exchange.returncode == 2
    assert "Unknown exchange 'binanse'" in exchange.stderr
    symbol = cli.run("live", "BTCUSDT", "-s", "my-strategy")
    assert symbol.returncode == 2
    assert "Available: ETHBTC, LTCBTC" in symbol.stderr


def test_a_broken_strategy_file_is_a_warning_for_other_strategies(project):
    path = project.write_strategy("broken.py", "import math\nvalue = math.nope\n")
    done = project.run("live", "ETHBTC", "-s", "my-strategy", "--json")
    assert done.returncode == 0, done.stderr
    assert f"{path.name}:2 failed to import: AttributeError" in done.stderr
    assert json_events(done.stdout)
    backtest = project.run("backtest", "ETHBTC", "-s", "my-strategy")
    assert backtest.returncode == 0, backtest.stderr
    assert f"{path.name}:2 failed to import" in backtest.stderr


def test_a_broken_file_holding_the_strategy_is_an_error(project):
    path = project.write_strategy(
        "mine.py", 'from btkit import strategy\n@strategy("mine")\nasync def f(s):\n  return (\n'
    )
    done = project.run("live", "ETHBTC", "-s", "mine")
    assert done.returncode == 2
    assert f"{path.name}:4 failed to import: SyntaxError" in done.stderr
    missing = project.run("live", "ETHBTC", "-s", "elsewhere")
    assert missing.returncode == 2
    assert "'elsewhere' not found" in missing.stderr
    assert f"{path.name}:4 failed to import" in missing.stderr
    assert "'elsewhere' may be declared there" in missing.stderr


def test_a_strategy_that_raises_is_logged_and_the_loop_goes_on(project):
    project.write_strategy(
        "flaky.py",
        """
from btkit import Signal, get_average_price, strategy
calls = 0

@strategy("flaky", interval="5m", warmup_minutes=10)
async def flaky(symbol):
    global calls
    calls += 1
    if calls % 2:
        raise RuntimeError("flaky strategy bug")
    price = await get_average_price(symbol)
    return Signal("long", price, price * 1.002, price * 0.998, 30)
""",
    )
    done = project.run("live", "ETHBTC", "-s", "flaky", "--json")
    assert done.returncode == 0
    assert "flaky strategy bug" in done.stderr
    assert "strategy flaky raised in get_signal for ETHBTC" in done.stderr
    assert done.stderr.count("Traceback") == 1  # the first failure in full, then counted
    assert len(json_events(done.stdout)) > 10


def test_corrupt_state_file_is_moved_aside_and_the_run_goes_on(project):
    project.signal_dir.mkdir(parents=True)
    state = project.signal_dir / "replay-my-strategy-ETHBTC.json"
    state.write_text('{"version": 1, "signal": {"id": ')
    done = project.run("live", "ETHBTC", "-s", "my-strategy", "--json")
    assert done.returncode == 0
    assert "CORRUPT STATE FILE" in done.stderr
    kept = list(project.signal_dir.glob("replay-my-strategy-ETHBTC.json.corrupt-*"))
    assert len(kept) == 1
    assert kept[0].read_text() == '{"version": 1, "signal": {"id": '


def close_key(event):
    pnl = round(event["pnl"]["pnl_percentage"], 9)
    return event["signal"]["id"], event["close_reason"], event["close_timestamp"], pnl


def wait_for_line(process, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if predicate(line):
            return line
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"no matching line; stderr: {process.stderr.read()}")


def test_second_daemon_is_refused_and_sigterm_stops_cleanly(project):
    with project.start("live", "ETHBTC", "-s", "my-strategy", "--speed", "60", "--json") as first:
        try:
            wait_for_line(first, lambda line: '"opened"' in line)
            second = project.run("live", "ETHBTC", "-s", "my-strategy")
            assert second.returncode == 2
            assert "Another btkit process already runs my-strategy on replay ETHBTC" in (
                second.stderr
            )
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=60) == 0
            assert "SIGTERM: finishing the current tick" in first.stderr.read()
        finally:
            first.kill()
    state = json.loads((project.signal_dir / "replay-my-strategy-ETHBTC.json").read_text())
    assert state["last_tick"] is not None


def test_kill_9_with_an_open_signal_restores_it_and_closes_it_once(project):
    project.write_strategy("always_long.py", ALWAYS_LONG)
    args = ("live", "ETHBTC", "-s", "always-long", "--json")
    shutil.copytree(project.root / "data" / "candles", project.root / "ref-data" / "candles")
    reference = json_events(project.run(*args, "--data-dir", "ref-data").stdout)
    assert reference

    with project.start(*args, "--speed", "120") as victim:
        opened = json.loads(wait_for_line(victim, lambda line: '"opened"' in line))
        victim.kill()
    state = json.loads((project.signal_dir / "replay-always-long-ETHBTC.json").read_text())
    assert state["signal"]["id"] == opened["signal"]["id"]  # persisted before it was printed

    resumed = project.run(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"ETHBTC long open {opened['signal']['price_open']:.8g}" in resumed.stderr
    events = json_events(resumed.stdout)
    again = [e for e in events if e["redelivered"]]  # printed, maybe not yet marked delivered
    assert [(e["signal"]["id"], e["action"]) for e in again] in (
        [],
        [(opened["signal"]["id"], "opened")],
    )
    after = events[len(again) :]
    assert after[0]["action"] == "closed"
    assert after[0]["signal"]["id"] == opened["signal"]["id"]
    closes = [e["signal"]["id"] for e in after if e["action"] == "closed"]
    assert len(closes) == len(set(closes))
    # The interrupted run and an uninterrupted one close the same signals.
    ref_closed = [close_key(e) for e in reference if e["action"] == "closed"]
    got_closed = [close_key(e) for e in after if e["action"] == "closed"]
    assert ref_closed[-len(got_closed) :] == got_closed


def test_new_strategy_writes_a_template_that_runs(project):
    made = project.run("new-strategy", "my-breakout")
    assert made.returncode == 0, made.stderr
    assert (project.root / "strategies" / "my_breakout.py").exists()
    again = project.run("new-strategy", "my-breakout")
    assert again.returncode == 2
    assert "already exists" in again.stderr
    done = project.run("live", "ETHBTC", "-s", "my-breakout", "--json")
    assert done.returncode == 0, done.stderr
    assert "invalid signal" not in done.stderr
    assert any(e["action"] == "opened" for e in json_events(done.stdout))


def test_help_lists_every_command(cli, project):
    done = cli.run("--help")
    assert done.returncode == 0
    assert "live" in done.stdout
    assert "new-strategy" in done.stdout


SLOW_IMPORT = """
import os, pathlib, time
from btkit import Signal, strategy

pathlib.Path("importing").touch()
deadline = time.monotonic() + 120
while not pathlib.Path("go-on").exists() and time.monotonic() < deadline:
    time.sleep(0.01)

@strategy("slow-import", interval="5m")
async def slow_import(symbol):
    return None
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_during_start_up_ends_cleanly(project, sig):
    """The strategy file is still importing when the signal arrives: exit 0, no trading."""
    project.write_strategy("slow_import.py", SLOW_IMPORT)
    with project.start("live", "ETHBTC", "-s", "slow-import") as daemon:
        stderr = Lines(daemon.stderr)
        try:
            wait_for_paths(daemon, project.root / "importing")
            daemon.send_signal(sig)
            (project.root / "go-on").touch()
            code = daemon.wait(timeout=60)
        finally:
            daemon.kill()
        stdout = daemon.stdout.read()
    assert code == 0, stderr.text()
    assert sig.name in stderr.text()
    assert "stopped" in stdout
    assert "0 opened" in stdout
    assert "Traceback" not in stderr.text()
    assert not list(project.signal_dir.glob("*.tmp"))


def test_sigterm_the_moment_the_process_can_catch_it_ends_cleanly(project):
    with project.start("live", "ETHBTC", "LTCBTC", "-s", "my-strategy") as daemon:
        try:
            wait_until_catching(daemon)
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=60)
        finally:
            daemon.kill()
        stderr = daemon.stderr.read()
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_a_start_that_conflicts_with_the_saved_replay_is_an_error(project):
    first = project.run("live", "ETHBTC", "-s", "my-strategy", "--end", "2018-01-20 12:00")
    assert first.returncode == 0, first.stderr
    conflicting = project.run("live", "ETHBTC", "-s", "my-strategy", "--start", "2018-01-20 08:00")
    assert conflicting.returncode == 2
    assert "conflicts with the saved replay" in conflicting.stderr
    assert "--restart" in conflicting.stderr
    assert "OPENED" not in conflicting.stdout
    restarted = project.run(
        "live", "ETHBTC", "-s", "my-strategy", "--start", "2018-01-20 08:00", "--restart"
    )
    assert restarted.returncode == 0, restarted.stderr


BLOCKING = """
import time
from btkit import strategy

@strategy("blocking", interval="1m", warmup_minutes=10)
async def blocking(symbol):
    time.sleep(3600)  # a synchronous call: freezes the event loop
"""

HANGING = """
import asyncio
from btkit import strategy

@strategy("hanging", interval="1m", warmup_minutes=10)
async def hanging(symbol):
    await asyncio.Event().wait()  # never returns
"""


def test_a_strategy_that_blocks_the_loop_is_named_and_cannot_block_a_stop(project):
    project.write_strategy("blocking.py", BLOCKING)
    env = {"BTKIT_STRATEGY_TIMEOUT_SECONDS": "1"}
    with project.start("live", "ETHBTC", "-s", "blocking", env=env) as daemon:
        stderr = Lines(daemon.stderr)
        try:
            blocked = stderr.wait_for(lambda line: "BLOCKED" in line)
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=120)
        finally:
            daemon.kill()
    assert "strategy blocking get_signal for ETHBTC" in blocked
    assert "blocking.py:7" in blocked
    assert code == 1
    assert "stop requested, but strategy blocking get_signal" in stderr.text()
    assert not list(project.signal_dir.glob("*.tmp"))


def test_a_get_signal_that_never_returns_times_out_and_stops_cleanly(project):
    project.write_strategy("hanging.py", HANGING)
    env = {"BTKIT_STRATEGY_TIMEOUT_SECONDS": "0.5"}
    with project.start("live", "ETHBTC", "-s", "hanging", env=env) as daemon:
        stderr = Lines(daemon.stderr)
        try:
            stderr.wait_for(lambda line: "did not return within 0.5 s" in line)
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=120)
        finally:
            daemon.kill()
    assert code == 0, stderr.text()
    assert "Traceback" not in stderr.text()


HUNG_UNTIL_STOPPED = """
import asyncio, pathlib
from btkit import strategy

@strategy("hung", interval="1m", warmup_minutes=10)
async def hung(symbol):
    pathlib.Path("hanging-now").touch()
    await asyncio.Event().wait()  # never returns
"""


def test_a_stop_does_not_wait_for_a_hung_get_signal(project):
    project.write_strategy("hung.py", HUNG_UNTIL_STOPPED)
    env = {"BTKIT_STRATEGY_TIMEOUT_SECONDS": "3600"}  # far longer than the wait below
    with project.start("live", "ETHBTC", "-s", "hung", env=env) as daemon:
        stderr = Lines(daemon.stderr)
        try:
            wait_for_paths(daemon, project.root / "hanging-now")
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=120)
        finally:
            daemon.kill()
    assert code == 0, stderr.text()
    assert "get_signal cancelled: btkit is stopping" in stderr.text()
    assert "Traceback" not in stderr.text()
