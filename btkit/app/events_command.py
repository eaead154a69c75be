"""`btkit events`: the ledger's events as JSON lines, in sequence order, for another process.

A consumer keeps the highest `seq` it has handled and passes it back as
`--since`, so it reads each event exactly once across its own restarts;
`--follow` keeps reading as daemons append. Read-only: it never creates a ledger.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import IO

from btkit.adapters.store.ledger import Mode, SqliteLedger
from btkit.adapters.store.ledger_errors import translated_ledger_errors
from btkit.domain.errors import ConfigError
from btkit.domain.model import OpenedResult, OpenSignal, StreamedResult, result_to_dict
from btkit.settings import Settings
from btkit.wiring.ledger import open_ledger_for_reading
from btkit.wiring.runs import legacy_ledger, open_run_store

BATCH = 1000
"""Events read per query: a long backlog streams out without being held in memory."""


def event_line(run_id: str, mode: str, event: StreamedResult) -> str:
    """One event as `btkit live --json` prints it, plus its ledger run and mode."""
    document = result_to_dict(event)
    document["run_id"] = run_id
    document["mode"] = mode
    return json.dumps(document, separators=(",", ":"))


def run_events(
    settings: Settings,
    *,
    strategy: str | None = None,
    symbol: str | None = None,
    since: int = 0,
    mode: Mode = "live",
    follow: bool = False,
    stop: threading.Event | None = None,
    poll_seconds: float = 0.5,
    out: IO[str] | None = None,
) -> int:
    """Print events with seq > `since`; with `follow`, wait for more until `stop` is set.

    New events are noticed through `PRAGMA data_version` (it changes when another
    connection commits), checked every `poll_seconds`.
    """
    out = out or sys.stdout
    stop = stop or threading.Event()
    if mode == "backtest" and follow:
        raise ConfigError(
            "--follow reads live events as daemons record them; a backtest run is stored "
            "whole when it ends. Drop --follow (or see `btkit runs`)."
        )
    try:
        if mode == "backtest":
            _print_backtest_events(settings, out, since, strategy, symbol)
            return 0
        ledger = open_ledger_for_reading(settings)
        try:
            with translated_ledger_errors(ledger.path):
                _print_events(
                    ledger, out, stop, since, strategy, symbol, mode, follow, poll_seconds
                )
        finally:
            ledger.close()
    except BrokenPipeError:
        # The reader went away (`| head -1`): nothing left to do, and nothing to say.
        if out is sys.stdout:  # so the flush at exit does not fail again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
    return 0


def _print_backtest_events(
    settings: Settings, out: IO[str], since: int, strategy: str | None, symbol: str | None
) -> None:
    """Old backtest rows of the ledger by seq (> `since`), then every stored run's events.

    Stored runs have no seq (null): they are printed whole, oldest run first, each
    run's events in time order.
    """
    with legacy_ledger(settings) as ledger:
        last = since
        while ledger is not None:
            batch = ledger.events_after(
                last, strategy=strategy, symbol=symbol, mode="backtest", limit=BATCH
            )
            out.write("".join(event_line(run, "backtest", e) + "\n" for run, e in batch))
            if len(batch) < BATCH:
                break
            last = batch[-1][1].seq or last
    store = open_run_store(settings)
    infos, _ = store.runs(strategy)
    for info in infos:
        if symbol is not None and symbol not in info.symbols:
            continue
        run = store.read(info.run_id)
        events: list[tuple[int, str, int, StreamedResult]] = []
        for closed in run.closed:
            events.append((closed.signal.timestamp, closed.symbol, 0, opened_event(closed.signal)))
            events.append((closed.close_timestamp, closed.symbol, 1, closed))
        events += [(s.timestamp, s.symbol, 0, opened_event(s)) for s in run.still_open]
        events.sort(key=lambda item: item[:3])
        out.write(
            "".join(
                event_line(info.run_id, "backtest", event) + "\n"
                for _, name, _, event in events
                if symbol is None or name == symbol
            )
        )
    out.flush()


def opened_event(signal: OpenSignal) -> OpenedResult:
    return OpenedResult(
        strategy_name=signal.strategy_name,
        exchange_name=signal.exchange_name,
        symbol=signal.symbol,
        timestamp=signal.timestamp,
        current_price=signal.price_open,
        signal=signal,
    )


def _print_events(
    ledger: SqliteLedger,
    out: IO[str],
    stop: threading.Event,
    since: int,
    strategy: str | None,
    symbol: str | None,
    mode: Mode,
    follow: bool,
    poll_seconds: float,
) -> None:
    last = since
    while not stop.is_set():
        version = ledger.data_version()  # before the read: a commit after it is seen
        batch = ledger.events_after(last, strategy=strategy, symbol=symbol, mode=mode, limit=BATCH)
        if batch:
            out.write("".join(event_line(run, mode, e) + "\n" for run, e in batch))
            out.flush()
            last = batch[-1][1].seq or last
        if len(batch) == BATCH:
            continue
        if not follow:
            break
        while not stop.wait(poll_seconds) and ledger.data_version() == version:
            pass
