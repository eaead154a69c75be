"""Backtest results apart from the ledger, and `btkit runs`, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import sqlite3

from tests.conftest import json_events

BACKTEST = ("backtest", "ETHBTC", "LTCBTC", "-s", "my-strategy", "--json")


def _ledger_rows(project) -> tuple[int, list[tuple[str, str]]]:
    """(bytes of the ledger file, the (run, mode) of every event)."""
    path = project.root / "data" / "btkit.sqlite"
    size = path.stat().st_size
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT run_id, mode FROM events ORDER BY seq").fetchall()
    finally:
        db.close()
    return size, rows


def _run_files(project) -> list[str]:
    folder = project.root / "data" / "runs"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_backtests_leave_the_ledger_alone_and_report_from_the_run_store(replayed):
    project = replayed
    before = _ledger_rows(project)
    closed, said = [], []
    for _ in range(2):
        done = project.run(*BACKTEST)
        assert done.returncode == 0, done.stderr
        closed = [e for e in json_events(done.stdout) if e["action"] == "closed"]
        said.append(done.stderr)
    assert len(closed) > 20
    assert _ledger_rows(project) == before  # not a byte, not a row
    assert all("stored in data/runs/backtest-" in text for text in said)
    files = _run_files(project)
    assert len(files) == 2
    assert all(f.startswith("backtest-") and f.endswith(".npz") for f in files)
    for name in files:
        assert (project.root / "data" / "runs" / name).stat().st_mode & 0o777 == 0o600
    assert (project.root / "data" / "runs").stat().st_mode & 0o777 == 0o700
    report = project.run("report", "my-strategy", "--mode", "backtest", "--format", "json")
    assert report.returncode == 0, report.stderr
    document = json.loads(report.stdout)
    assert document["run_id"] in {f.removesuffix(".npz") for f in files}
    assert [
        (c["id"], c["close_time"], c["pnl_percentage"]) for c in document["closed_signals"]
    ] == [
        (c["signal"]["id"], c["close_timestamp"], c["pnl"]["pnl_percentage"])
        for c in sorted(
            closed, key=lambda c: (c["close_timestamp"], c["symbol"], c["signal"]["id"])
        )
    ]
    events = json_events(project.run("events", "--mode", "backtest").stdout)
    assert len(events) == 2 * (2 * len(closed) + len(document["still_open"]))
    assert {e["run_id"] for e in events} == {f.removesuffix(".npz") for f in files}
    live = json.loads(project.run("report", "my-strategy", "--format", "json").stdout)
    assert live["run_id"] == "live"  # the live report is the replay's, as before


def test_runs_lists_and_prunes_and_never_touches_live_history(replayed):
    project = replayed
    ledger_before = _ledger_rows(project)
    window = ("--start", "2018-01-20T12:00", "--end", "2018-01-20T20:00")
    for symbols in (("ETHBTC",), ("LTCBTC",), ("ETHBTC", "LTCBTC")):
        done = project.run("backtest", *symbols, "-s", "my-strategy", *window)
        assert done.returncode == 0, done.stderr
    listed = json.loads(project.run("runs", "--json").stdout)
    assert [r["symbols"] for r in listed] == [["ETHBTC"], ["LTCBTC"], ["ETHBTC", "LTCBTC"]]
    for run in listed:
        assert set(run) == {
            "id", "store", "strategy", "exchange", "symbols", "start", "end", "created",
            "trades", "size", "jobs",
        }  # fmt: skip
        assert run["store"] == "runs"
        assert run["strategy"] == "my-strategy"
        assert run["size"] == (project.root / "data" / "runs" / f"{run['id']}.npz").stat().st_size
    table = project.run("runs")
    assert table.returncode == 0
    assert all(run["id"] in table.stdout for run in listed)
    assert "3 run(s)" in table.stdout

    dry = project.run("runs", "prune", "--keep", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would remove backtest-") == 2
    assert len(_run_files(project)) == 3
    pruned = project.run("runs", "prune", "--keep", "1")
    assert pruned.returncode == 0, pruned.stderr
    freed = sum(r["size"] for r in listed[:2])
    assert f"removed 2 run(s), freeing {freed / 1024:,.1f} KB" in pruned.stdout
    assert listed[0]["id"] in pruned.stdout
    assert _run_files(project) == [f"{listed[2]['id']}.npz"]
    again = project.run("runs", "prune", "--keep", "1")
    assert again.returncode == 0
    assert "nothing to prune" in again.stdout
    report = project.run("report", "my-strategy", "--mode", "backtest", "--format", "json")
    assert json.loads(report.stdout)["run_id"] == listed[2]["id"]

    unknown = project.run("runs", "prune", "backtest-0123456789ab")
    assert unknown.returncode == 2
    assert "No backtest run backtest-0123456789ab; nothing was removed" in unknown.stderr
    for bad in (("runs", "prune"), ("runs", "prune", listed[2]["id"], "--keep", "1")):
        refused = project.run(*bad)
        assert refused.returncode == 2, bad
        assert refused.stderr.startswith("error: ")
    unknown_report = project.run(
        "report", "my-strategy", "--mode", "backtest", "--run", listed[0]["id"]
    )
    assert unknown_report.returncode == 2
    assert f"There is no backtest run {listed[0]['id']!r}" in unknown_report.stderr
    by_id = project.run("runs", "prune", listed[2]["id"])
    assert by_id.returncode == 0, by_id.stderr
    assert _run_files(project) == []
    assert "No backtest runs" in project.run("runs").stdout
    assert _ledger_rows(project) == ledger_before
    for text in (project.run("runs", "-h").stdout, project.run("runs", "prune", "-h").stdout):
        assert "Examples:" in text
        assert "btkit runs prune --keep 5" in text


def test_a_backtest_killed_while_storing_leaves_no_run_that_looks_complete(project):
    done = project.run(
        "backtest", "ETHBTC", "-s", "my-strategy", env={"BTKIT_FAULT_KILL_AT": "run:temp-written"}
    )
    assert done.returncode == -signal.SIGKILL
    folder = project.root / "data" / "runs"
    leftovers = list(folder.iterdir())
    assert [p.name.startswith(".backtest-") for p in leftovers] == [True]  # only the temp file
    assert json.loads(project.run("runs", "--json").stdout) == []
    report = project.run("report", "my-strategy", "--mode", "backtest")
    assert report.returncode == 2
    assert "No backtest runs of strategy 'my-strategy'" in report.stderr
    assert "nothing to prune" in project.run("runs", "prune", "--keep", "0").stdout
    os.utime(leftovers[0], (0, 0))  # an hour on, no writer can still own it
    pruned = project.run("runs", "prune", "--keep", "0")
    assert "left by a backtest killed while storing its run" in pruned.stdout
    assert list(folder.iterdir()) == []
    assert not (project.root / "data" / "btkit.sqlite").exists()  # backtests make no ledger
    rerun = project.run("backtest", "ETHBTC", "-s", "my-strategy")
    assert rerun.returncode == 0, rerun.stderr
    assert len(json.loads(project.run("runs", "--json").stdout)) == 1
