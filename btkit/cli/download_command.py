"""`btkit download` as a command: a progress bar per symbol, then a summary."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from btkit.app.download import download
from btkit.domain.model import MINUTE_MS
from btkit.settings import Settings


def run_download(
    settings: Settings,
    exchange: str,
    symbols: Sequence[str],
    *,
    start_ms: int,
    end_ms: int | None,
    console: Console,
) -> int:
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} min"),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    tasks: dict[str, TaskID] = {}

    def progress(symbol: str, first: int, reached: int, end: int) -> None:
        if symbol not in tasks:
            tasks[symbol] = bars.add_task(symbol, total=max((end - first) // MINUTE_MS, 1))
        bars.update(tasks[symbol], completed=(reached - first) // MINUTE_MS)

    with bars:
        results = asyncio.run(
            download(
                settings, exchange, symbols, start_ms=start_ms, end_ms=end_ms, progress=progress
            )
        )
    for result in results:
        console.print(
            f"{result.symbol}: {result.added:,} new candles in {result.path}"
            + (f" ({result.gaps} gap(s) kept as gaps)" if result.gaps else ""),
            highlight=False,
            soft_wrap=True,
        )
    return 0
