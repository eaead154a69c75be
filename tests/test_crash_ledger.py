"""SIGKILL at every dangerous step of an open and a close, on the real process."""

from __future__ import annotations

import signal
import sqlite3

import pytest

from tests.conftest import ALWAYS_LONG, Lines


def ledger_rows(path):
    db = sqlite3.connect(path)
    try:
        opened = db.execute("SELECT signal_id FROM events WHERE action = 'opened'").fetchall()
        closed = db.execute(
            "SELECT signal_id, closed_at, close_reason, round(pnl_percentage, 9) FROM events "
            "WHERE action = 'closed' ORDER BY closed_at"
        ).fetchall()
    finally:
        db.close()
    return [r[0] for r in opened], closed


@pytest.mark.parametrize(
    "point",
    ["open:state-written", "open:ledger-written", "close:ledger-written", "close:state-written"],
)
def test_kill_9_between_any_two_steps_loses_and_duplicates_nothing(project, point):
    project.write_strategy("always_long.py", ALWAYS_LONG)
    args = ("live", "ETHBTC", "LTCBTC", "-s", "always-long", "--json")
    reference = project.clone_data("ref-data")
    assert project.run(*args, "--data-dir", reference).returncode == 0
    ref_opened, ref_closed = ledger_rows(project.root / reference / "btkit.sqlite")

    for nth in (2, 5):  # two crashes at this point, at different signals
        killed = project.run(*args, env={"BTKIT_FAULT_KILL_AT": f"{point}:{nth}"})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
    finished = project.run(*args)
    assert finished.returncode == 0, finished.stderr

    opened, closed = ledger_rows(project.root / "data" / "btkit.sqlite")
    assert sorted(opened) == sorted(ref_opened)  # each signal opened exactly once
    assert closed == ref_closed  # closed at most once, none lost, same figures
    leftovers = [
        p.name
        for p in project.signal_dir.iterdir()
        if p.name.endswith(".tmp") or ".corrupt-" in p.name
    ]
    assert leftovers == []


def test_two_daemons_share_one_ledger_and_report_reads_while_they_run(project):
    args = ("-s", "my-strategy", "--json", "--speed", "1500")
    with (
        project.start("live", "ETHBTC", *args) as eth,
        project.start("live", "LTCBTC", *args) as ltc,
    ):
        try:
            Lines(eth.stdout).wait_for(lambda line: '"opened"' in line)
            during = project.run("report", "my-strategy", "--format", "json")
            assert eth.wait(timeout=60) == 0
            assert ltc.wait(timeout=60) == 0
        finally:
            eth.kill()
            ltc.kill()
    assert during.returncode == 0, during.stderr
    opened, closed = ledger_rows(project.root / "data" / "btkit.sqlite")
    db = sqlite3.connect(project.root / "data" / "btkit.sqlite")
    symbols = {r[0] for r in db.execute("SELECT DISTINCT symbol FROM events")}
    db.close()
    assert symbols == {"ETHBTC", "LTCBTC"}
    assert len(opened) == len(set(opened))
    assert len(closed) >= 10


def test_restart_is_a_new_run_and_a_crash_in_it_keeps_its_reused_signal_ids(project):
    """The restarted replay re-creates the old run's signal ids; the old closes must not
    clear the new opens, and the report shows the latest run only."""
    project.write_strategy("always_long.py", ALWAYS_LONG)
    args = ("live", "ETHBTC", "-s", "always-long", "--json")
    first = project.run(*args)
    assert first.returncode == 0, first.stderr
    first_opened, first_closed = ledger_rows(project.root / "data" / "btkit.sqlite")
    killed = project.run(*args, "--restart", env={"BTKIT_FAULT_KILL_AT": "open:ledger-written:2"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = project.run(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "closed in the ledger just before a crash" not in resumed.stderr

    db = sqlite3.connect(project.root / "data" / "btkit.sqlite")
    runs = [r[0] for r in db.execute("SELECT DISTINCT run_id FROM events ORDER BY rowid")]
    second_closed = db.execute(
        "SELECT signal_id, closed_at, close_reason, round(pnl_percentage, 9) FROM events "
        "WHERE action = 'closed' AND run_id = ? ORDER BY closed_at",
        (runs[-1],),
    ).fetchall()
    db.close()
    assert len(runs) == 2
    assert second_closed == first_closed  # the same replay again, nothing dropped
    report = project.run("report", "always-long", "--format", "json")
    assert report.returncode == 0, report.stderr
    assert f'"{runs[-1]}"' in report.stdout
    everything = project.run("report", "always-long", "--format", "json", "--run", "all")
    assert everything.returncode == 0, everything.stderr
    assert len(everything.stdout) > len(report.stdout)
    assert len(first_opened) == len(set(first_opened))
