"""`btkit runs`: list and prune stored backtest runs; live history is never touched.

Runs live in the run store (`<data>/runs/`, one file each). Backtest runs that an
older btkit recorded in the ledger are listed beside them (store `ledger`) and can
be pruned too: only their rows go, never a live event. Each strategy's finished
sweep jobs (`<data>/sweeps/jobs.sqlite`, kept so a sweep resumes) are one more row,
`sweep-<strategy>` (store `sweeps`), kept or pruned apart from its backtests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from btkit.domain.errors import ConfigError, StorageError
from btkit.engine.retention import Retention, RunStamp, runs_to_prune
from btkit.settings import Settings
from btkit.wiring.runs import existing_sweep_store, legacy_ledger, open_run_store

SWEEP_PREFIX = "sweep-"


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    store: Literal["runs", "ledger", "sweeps"]
    strategy: str
    exchange: str
    frames: tuple[tuple[str, int, int], ...]
    created_at: int
    trades: int
    size: int | None
    """Bytes of the run's file; None for rows inside the ledger (they share its file)."""
    jobs: int | None = None
    """Sweeps: the finished jobs kept for resuming, every parameter set of the strategy."""

    @property
    def retention_group(self) -> str:
        """Sweeps are kept or pruned apart from the strategy's backtest runs."""
        return f"sweep:{self.strategy}" if self.store == "sweeps" else self.strategy

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(symbol for symbol, _, _ in self.frames)

    @property
    def start(self) -> int | None:
        return min((start for _, start, _ in self.frames), default=None)

    @property
    def end(self) -> int | None:
        return max((end for _, _, end in self.frames), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "store": self.store,
            "strategy": self.strategy,
            "exchange": self.exchange,
            "symbols": list(self.symbols),
            "start": self.start,
            "end": self.end,
            "created": self.created_at or None,
            "trades": self.trades,
            "size": self.size,
            "jobs": self.jobs,
        }


@dataclass
class Listing:
    rows: list[RunRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Files or a ledger that could not be read: named, left as they are."""


@dataclass
class Pruned:
    removed: list[RunRow] = field(default_factory=list)
    freed_bytes: int = 0
    """Run files removed, plus stale temp files."""
    ledger_events: int = 0
    """Old backtest events deleted from the ledger."""
    ledger_freed: int = 0
    """Bytes of ledger pages that deleting them freed: reused by SQLite, the file keeps its size."""
    leftovers: list[Path] = field(default_factory=list)
    """Temp files of runs whose writer was killed before the run was whole."""
    dry_run: bool = False


def _legacy_frames(details: str) -> tuple[tuple[str, int, int], ...]:
    try:
        found = json.loads(details)
        return tuple((str(s), int(a), int(b)) for s, (a, b) in found.items())
    except (ValueError, TypeError, AttributeError):
        return ()


def list_runs(settings: Settings, strategy: str | None = None) -> Listing:
    """Every stored run, oldest first; runs an older btkit kept in the ledger included."""
    listing = Listing()
    infos, listing.problems = open_run_store(settings).runs(strategy)
    listing.rows = [
        RunRow(i.run_id, "runs", i.strategy, i.exchange, i.frames, i.created_at, i.trades, i.size)
        for i in infos
    ]
    try:
        with legacy_ledger(settings) as ledger:
            old = ledger.backtest_runs() if ledger is not None else []
    except StorageError as exc:
        listing.problems.append(f"{exc} (its old backtest runs are not listed)")
        old = []
    listing.rows += [
        RunRow(run_id, "ledger", name, exchange, _legacy_frames(details), created, trades, None)
        for run_id, name, exchange, created, details, trades in old
        if strategy is None or name == strategy
    ]
    try:
        with existing_sweep_store(settings) as sweeps:
            groups = sweeps.groups() if sweeps is not None else []
    except StorageError as exc:
        listing.problems.append(f"{exc} (its sweeps are not listed)")
        groups = []
    listing.rows += [
        RunRow(
            f"{SWEEP_PREFIX}{g.strategy}",
            "sweeps",
            g.strategy,
            "replay",
            tuple((symbol, g.start, g.end) for symbol in g.symbols),
            g.created_at,
            g.trades,
            g.size,
            g.jobs,
        )
        for g in groups
        if strategy is None or g.strategy == strategy
    ]
    listing.rows.sort(key=lambda r: (r.created_at, r.run_id))
    return listing


def prune_runs(
    settings: Settings,
    rule: Retention | Sequence[str],
    *,
    now: int,
    strategy: str | None = None,
    dry_run: bool = False,
) -> Pruned:
    """Remove the runs `rule` selects, or the runs named (with `dry_run`, only say which).

    An id that names no run is a ConfigError listing the runs, and nothing is removed.
    """
    listing = list_runs(settings, strategy)
    if isinstance(rule, Retention):
        stamps = [RunStamp(r.run_id, r.retention_group, r.created_at) for r in listing.rows]
        chosen = set(runs_to_prune(stamps, rule, now))
    else:
        chosen = set(rule)
        unknown = sorted(chosen - {r.run_id for r in listing.rows})
        if unknown:
            which = f" of {strategy}" if strategy else ""
            known = ", ".join(r.run_id for r in listing.rows[-10:]) or "none"
            raise ConfigError(
                f"No backtest run{which} {', '.join(unknown)}; nothing was removed. "
                f"Stored runs (newest last): {known}; `btkit runs` lists them all."
            )
    store = open_run_store(settings)
    outcome = Pruned(dry_run=dry_run)
    outcome.removed = [r for r in listing.rows if r.run_id in chosen]
    outcome.leftovers = store.stale_temp_files(now / 1000)
    files = [r for r in outcome.removed if r.store == "runs"]
    old = [r.run_id for r in outcome.removed if r.store == "ledger"]
    sweeps = [r.strategy for r in outcome.removed if r.store == "sweeps"]
    outcome.freed_bytes = sum(r.size or 0 for r in files) + _sizes(outcome.leftovers)
    if dry_run:
        outcome.freed_bytes += sum(r.size or 0 for r in outcome.removed if r.store == "sweeps")
        return outcome
    if sweeps:
        with existing_sweep_store(settings) as sweep_store:
            if sweep_store is not None:
                outcome.freed_bytes += sweep_store.delete_groups(sweeps)
    store.delete(r.run_id for r in files)
    for leftover in outcome.leftovers:
        leftover.unlink(missing_ok=True)
    if old:
        with legacy_ledger(settings, write=True) as ledger:
            if ledger is not None:
                free_before = ledger.free_bytes()
                outcome.ledger_events = ledger.delete_backtest_runs(old)
                outcome.ledger_freed = max(ledger.free_bytes() - free_before, 0)
    return outcome


def _sizes(paths: Sequence[Path]) -> int:
    total = 0
    for path in paths:
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            continue
    return total
