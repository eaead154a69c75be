"""The equity curve: cumulative PnL % over time, as a PNG beside the Markdown report.

matplotlib is an optional extra (`pip install 'btkit[plot]'`); without it the
report still works and says how to get the picture.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from btkit.report.statistics import Trade
from btkit.store.atomic import write_private

INSTALL_HINT = "install the plot extra (`pip install 'btkit[plot]'`) for the equity curve picture"


def plotting_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def draw_equity_curve(trades: Sequence[Trade], title: str, path: Path) -> Path | None:
    """Write the picture; None when matplotlib is missing or there is nothing to draw."""
    if not trades or not plotting_available():
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    ordered = sorted(trades, key=lambda t: t.closed_at)
    stamps = [ordered[0].opened_at] + [t.closed_at for t in ordered]
    times = np.array(stamps, dtype="datetime64[ms]")
    equity = [0.0]
    for trade in ordered:
        equity.append(equity[-1] + trade.pnl_percentage)
    figure, axes = pyplot.subplots(figsize=(10, 4), dpi=100)
    try:
        axes.plot(times, equity, drawstyle="steps-post", color="#1f77b4", linewidth=1.2)
        axes.axhline(0, color="#888888", linewidth=0.8)
        axes.fill_between(times, equity, 0, step="post", alpha=0.15, color="#1f77b4")
        axes.set_title(title)
        axes.set_ylabel("cumulative PnL %")
        axes.grid(alpha=0.3)
        figure.autofmt_xdate()
        figure.tight_layout()
        image = io.BytesIO()
        figure.savefig(image, format="png")
        write_private(path, image.getvalue())
    finally:
        pyplot.close(figure)
    return path
