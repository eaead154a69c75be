"""The equity picture: the compounded stake and its drawdown over time, a PNG beside the report.

matplotlib is a core dependency (the picture is part of every report); it is
imported only when a picture is drawn, so commands that draw none start fast.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from btkit.adapters.store.atomic import write_private
from btkit.engine.statistics import Trade, drawdowns, equity_curve

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw_equity_curve(trades: Sequence[Trade], title: str, path: Path) -> Path | None:
    """Write the picture (owner-only, atomically); None when there is no closed trade."""
    if not trades:
        return None
    from matplotlib import pyplot

    figure = equity_figure(trades, title)
    try:
        image = io.BytesIO()
        figure.savefig(image, format="png")
        write_private(path, image.getvalue())
    finally:
        pyplot.close(figure)
    return path


def equity_figure(trades: Sequence[Trade], title: str) -> Figure:
    """Two panels over time: the stake's return (compounded) and its drawdown."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    ordered = sorted(trades, key=lambda t: (t.closed_at, t.opened_at, t.symbol))
    times = np.array(
        [ordered[0].opened_at] + [t.closed_at for t in ordered], dtype="datetime64[ms]"
    )
    pnls = np.fromiter((t.pnl_percentage for t in ordered), np.float64, len(ordered))
    equity = np.r_[1.0, equity_curve(pnls)]
    returns = (equity - 1.0) * 100.0
    falls = -drawdowns(equity)
    figure, (top, bottom) = pyplot.subplots(
        2, 1, figsize=(10, 5.5), dpi=100, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(times, returns, drawstyle="steps-post", color="#1f77b4", linewidth=1.2)
    top.axhline(0, color="#888888", linewidth=0.8)
    top.fill_between(times, returns, 0, step="post", alpha=0.15, color="#1f77b4")
    top.set_title(title)
    top.set_ylabel("return on the stake %")
    top.grid(alpha=0.3)
    bottom.fill_between(times, falls, 0, step="post", alpha=0.5, color="#d62728")
    bottom.plot(times, falls, drawstyle="steps-post", color="#d62728", linewidth=0.8)
    bottom.set_ylabel("drawdown %")
    bottom.set_ylim(min(float(falls.min()), -1.0) * 1.05, 0)
    bottom.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure
