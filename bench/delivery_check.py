"""Did every ledger event reach the stream? Compares a ledger with runs' `--json` stdout.

Used by bench/crash_torture.py and the crash tests. An event is (run, signal
id, action); the streams are read in the order the runs happened. It also works
on ledgers written before sequence numbers existed (ordered by rowid then), so
the bench can measure an older btkit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Delivery:
    ledger_events: int = 0
    streamed: int = 0
    """Event lines in all streams, repeats included."""
    lost: list[tuple[str, str, str]] = field(default_factory=list)
    """In the ledger, in no stream."""
    unknown: list[tuple[str, str]] = field(default_factory=list)
    """In a stream, not in the ledger (or with another seq than the ledger's)."""
    out_of_order: list[str] = field(default_factory=list)
    """Symbols whose first appearances are not in ledger order."""
    repeats: int = 0
    """Lines that repeat an event already streamed."""
    flagged: int = 0
    """Lines flagged redelivered."""
    lost_closed: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.unknown or self.out_of_order)


def _ledger(path: Path) -> list[tuple[int, str, str, str, str]]:
    """(order, run, signal, action, symbol) of every live event, in ledger order."""
    db = sqlite3.connect(path)
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(events)")}
        order = "seq" if "seq" in columns else "rowid"
        return db.execute(
            f"SELECT {order}, run_id, signal_id, action, symbol FROM events "
            f"WHERE mode = 'live' ORDER BY {order}"
        ).fetchall()
    finally:
        db.close()


def stream_events(stdout: str) -> list[dict[str, object]]:
    """The event lines of one run's `--json` stdout (a line cut by a kill is no event)."""
    events = []
    for line in stdout.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and document.get("action") in ("opened", "closed"):
            events.append(document)
    return events


def check_delivery(ledger: Path, streams: Sequence[str]) -> Delivery:
    """Every ledger event streamed at least once, nothing else, first appearances in order.

    `streams` are the runs' stdout in the order the runs happened. The runs record
    into one ledger run, so (signal id, action) names an event.
    """
    rows = _ledger(ledger)
    known = {(signal, action): (order, run, symbol) for order, run, signal, action, symbol in rows}
    result = Delivery(ledger_events=len(rows))
    seen: set[tuple[str, str]] = set()
    first_orders: dict[str, list[int]] = {}
    for stdout in streams:
        for event in stream_events(stdout):
            signal = event["signal"]
            assert isinstance(signal, dict)
            key = (str(signal["id"]), str(event["action"]))
            result.streamed += 1
            result.flagged += bool(event.get("redelivered"))
            stored = known.get(key)
            if stored is None or event.get("seq", stored[0]) != stored[0]:
                result.unknown.append(key)
                continue
            if key in seen:
                result.repeats += 1
                continue
            seen.add(key)
            first_orders.setdefault(stored[2], []).append(stored[0])
    for (signal, action), (_, run, _) in known.items():
        if (signal, action) not in seen:
            result.lost.append((run, signal, action))
            result.lost_closed += action == "closed"
    result.out_of_order = [s for s, orders in first_orders.items() if orders != sorted(orders)]
    return result
