"""`btkit runs` and `btkit runs prune` as commands: a table or JSON, and what was removed."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from btkit.app.runs import Listing, Pruned, RunRow, list_runs, prune_runs
from btkit.domain.errors import ConfigError
from btkit.domain.timefmt import format_time
from btkit.engine.retention import Retention
from btkit.settings import Settings
from btkit.wiring.clocks import wall_time_ms
from btkit.wiring.runs import open_run_store


def size_text(size: int | None) -> str:
    if size is None:
        return "in ledger"
    if size < 1024 * 1024:
        return f"{size / 1024:,.1f} KB"
    return f"{size / 1024 / 1024:,.2f} MB"


def _period(row: RunRow) -> str:
    if row.start is None or row.end is None:
        return "?"
    return f"{format_time(row.start)} to {format_time(row.end)}"


def _kind(row: RunRow) -> str:
    if row.store == "sweeps":
        return f"sweep, {row.jobs or 0:,} jobs"
    return "backtest (ledger)" if row.store == "ledger" else "backtest"


def _warn(listing: Listing, console: Console) -> None:
    for problem in listing.problems:
        console.print(f"warning: {problem}", markup=False, highlight=False, soft_wrap=True)


def run_list_runs(
    settings: Settings, *, strategy: str | None, as_json: bool, stdout: Console, stderr: Console
) -> int:
    listing = list_runs(settings, strategy)
    _warn(listing, stderr)
    if as_json:
        text = json.dumps([r.to_json() for r in listing.rows], indent=2, allow_nan=False)
        stdout.print(text, markup=False, highlight=False, soft_wrap=True)
        return 0
    if not listing.rows:
        which = f" of {strategy}" if strategy else ""
        stdout.print(
            f"No backtest runs{which} in {open_run_store(settings).folder}; `btkit backtest` "
            "stores one per run.",
            highlight=False,
            soft_wrap=True,
        )
        return 0
    table = Table(title=f"Stored runs ({open_run_store(settings).folder}, sweeps too)")
    for name in ("Run", "Kind", "Strategy", "Symbols", "Period", "Created", "Trades", "Size"):
        table.add_column(name, justify="right" if name in ("Trades", "Size") else "left")
    for row in listing.rows:
        table.add_row(
            row.run_id,
            _kind(row),
            row.strategy,
            " ".join(row.symbols),
            _period(row),
            format_time(row.created_at) if row.created_at else "unknown",
            f"{row.trades:,}",
            size_text(row.size),
        )
    stdout.print(table)
    total = sum(r.size or 0 for r in listing.rows)
    stdout.print(
        f"{len(listing.rows)} run(s), {size_text(total)}. "
        "`btkit report STRATEGY --mode backtest --run ID` reports one; "
        "`btkit runs prune --keep N` removes old ones.",
        highlight=False,
        soft_wrap=True,
    )
    return 0


def run_prune_runs(
    settings: Settings,
    *,
    run_ids: Sequence[str] = (),
    keep: int | None,
    older_than: float | None,
    strategy: str | None,
    dry_run: bool,
    stdout: Console,
    stderr: Console,
) -> int:
    if run_ids:
        if keep is not None or older_than is not None:
            raise ConfigError("give run ids, or --keep / --older-than, not both.")
        pruned = prune_runs(
            settings, run_ids, now=wall_time_ms(), strategy=strategy, dry_run=dry_run
        )
        _report(pruned, None, strategy, stdout)
        return 0
    try:
        rule = Retention(keep, older_than)
    except ValueError as exc:
        raise ConfigError(f"{exc} (e.g. `btkit runs prune --keep 5`).") from None
    pruned = prune_runs(settings, rule, now=wall_time_ms(), strategy=strategy, dry_run=dry_run)
    _report(pruned, rule, strategy, stdout)
    return 0


def _report(pruned: Pruned, rule: Retention | None, strategy: str | None, console: Console) -> None:
    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    verb = "would remove" if pruned.dry_run else "removed"
    if not pruned.removed and not pruned.leftovers and rule is not None:
        rules = []
        if rule.keep is not None:
            rules.append(f"--keep {rule.keep}")
        if rule.older_than_days is not None:
            rules.append(f"--older-than {rule.older_than_days:g}")
        which = f" of {strategy}" if strategy else ""
        say(f"nothing to prune: no backtest run{which} matches {' '.join(rules)}.")
        return
    for row in pruned.removed:
        created = format_time(row.created_at) if row.created_at else "unknown"
        say(
            f"{verb} {row.run_id} ({_kind(row)}, {row.strategy}, {' '.join(row.symbols) or '?'}, "
            f"{_period(row)}, created {created}, {row.trades:,} trades, {size_text(row.size)})"
        )
    for leftover in pruned.leftovers:
        say(f"{verb} {leftover} (left by a backtest killed while storing its run)")
    old = sum(1 for r in pruned.removed if r.store == "ledger")
    summary = f"{verb} {len(pruned.removed)} run(s), freeing {size_text(pruned.freed_bytes)}"
    if old:
        if pruned.dry_run:
            summary += f"; {old} of them are old runs in the ledger (their rows go)"
        else:
            summary += (
                f"; {pruned.ledger_events:,} old backtest events deleted from the ledger "
                f"({size_text(pruned.ledger_freed)} of its pages are free for reuse; the file "
                "keeps its size)"
            )
    say(summary + ". Live history is untouched.")
