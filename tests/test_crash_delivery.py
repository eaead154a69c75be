"""SIGKILL at every crash point of the real process: every ledger event still reaches the
stream (`--json` stdout of some run) at least once, in order per symbol, and nothing else."""

from __future__ import annotations

import signal

from bench.delivery_check import check_delivery
from btkit.adapters.store.ledger import SqliteLedger
from tests.conftest import ALWAYS_LONG

POINTS = (
    "open:state-written",
    "open:ledger-written",
    "close:ledger-written",
    "close:state-written",
    "event:printed",  # written to stdout, not yet marked delivered
)


def test_a_kill_at_every_crash_point_loses_no_event_from_the_stream(project):
    project.write_strategy("always_long.py", ALWAYS_LONG)
    args = ("live", "ETHBTC", "LTCBTC", "-s", "always-long", "--json")
    streams = []
    for point in POINTS:  # one after another, each run resuming the last one's replay
        killed = project.run(*args, env={"BTKIT_FAULT_KILL_AT": f"{point}:2"})
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        streams.append(killed.stdout)
    finished = project.run(*args)
    assert finished.returncode == 0, finished.stderr
    streams.append(finished.stdout)

    delivery = check_delivery(project.root / "data" / "btkit.sqlite", streams)
    assert delivery.lost == []  # every ledger event reached some run's stream
    assert delivery.unknown == []  # nothing the ledger lacks, each with the ledger's seq
    assert delivery.out_of_order == []  # per symbol, first appearances in seq order
    assert delivery.ledger_events > 20
    assert delivery.flagged >= len(POINTS)  # each kill left at least one to redeliver
    assert delivery.repeats >= 1  # the event printed before the kill came again
    assert "event(s) redelivered from before a crash" in finished.stderr
    ledger = SqliteLedger(project.root / "data" / "btkit.sqlite")
    ledger.resume_run("always-long", "replay")
    assert ledger.undelivered("always-long", "replay", ["ETHBTC", "LTCBTC"]) == []  # all marked
    ledger.close()
