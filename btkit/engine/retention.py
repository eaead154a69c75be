"""Which stored backtest runs a prune removes (`btkit runs prune`): pure, no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Retention:
    keep: int | None = None
    """Keep the `keep` newest runs of each strategy."""
    older_than_days: float | None = None
    """Remove only runs created more than this many days ago."""

    def __post_init__(self) -> None:
        if self.keep is None and self.older_than_days is None:
            raise ValueError("say what to prune: --keep N and/or --older-than DAYS")
        if self.keep is not None and self.keep < 0:
            raise ValueError(f"--keep must be 0 or more, not {self.keep}")
        if self.older_than_days is not None and not self.older_than_days >= 0:
            raise ValueError(f"--older-than must be 0 or more days, not {self.older_than_days}")


@dataclass(frozen=True, slots=True)
class RunStamp:
    run_id: str
    strategy: str
    created_at: int


def runs_to_prune(runs: Sequence[RunStamp], rule: Retention, now: int) -> list[str]:
    """Ids of the runs that break every given rule, oldest first.

    With both rules a run goes only when it is outside its strategy's `keep`
    newest *and* older than the age: a prune never removes more than either
    rule alone would. Ties in creation time are broken by id, so the choice is
    the same on every call.
    """
    by_strategy: dict[str, list[RunStamp]] = defaultdict(list)
    for run in runs:
        by_strategy[run.strategy].append(run)
    kept: set[str] = set()
    if rule.keep is not None:
        for group in by_strategy.values():
            newest = sorted(group, key=lambda r: (r.created_at, r.run_id), reverse=True)
            kept.update(r.run_id for r in newest[: rule.keep])
    cutoff = None if rule.older_than_days is None else now - rule.older_than_days * DAY_MS
    doomed = [r for r in runs if r.run_id not in kept and (cutoff is None or r.created_at < cutoff)]
    return [r.run_id for r in sorted(doomed, key=lambda r: (r.created_at, r.run_id))]
