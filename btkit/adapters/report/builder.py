"""A report from the ledger: Markdown (with the equity picture) or one JSON document."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from btkit.adapters.report.markdown import BASIS, ReportInput, render, render_forms
from btkit.adapters.report.picture import draw_equity_curve
from btkit.adapters.report.trade_section import TradeRow, json_section, markdown_lines, trade_rows
from btkit.adapters.store.atomic import write_private
from btkit.adapters.store.ledger import LedgerContents, Query, SqliteLedger
from btkit.adapters.store.order_ledger import TradeRecord, strategy_trades
from btkit.domain.model import ClosedResult, OpenSignal, signal_to_dict
from btkit.domain.timefmt import format_time
from btkit.engine.statistics import Trade, breakdown, summarize

log = logging.getLogger(__name__)

TERMINAL_EVENTS = 10
"""Events a terminal shows under the summary; the report file keeps every one."""
PICTURE_BASIS = "stake compounded trade after trade"


def default_report_path(logs_dir: Path, query: Query) -> Path:
    return logs_dir / query.mode / f"{query.strategy}.md"


def _context(query: Query, contents: LedgerContents) -> dict[str, str]:
    context: dict[str, str] = {"Mode": query.mode}
    if contents.run_id and query.mode == "backtest":
        context["Run"] = contents.run_id
    if query.symbol:
        context["Symbol"] = query.symbol
    if query.since is not None or query.until is not None:
        context["Signals opened"] = (
            f"from {format_time(query.since) if query.since else 'the start'} "
            f"until {format_time(query.until) if query.until else 'now'}"
        )
    return context


def _with_picture(text: str, picture: Path | None) -> str:
    if picture is None:
        return text
    link = os.path.relpath(picture, picture.parent)
    return text.replace("## Summary", f"![Equity curve]({link})\n\n## Summary", 1)


def _input(contents: LedgerContents, query: Query, fills: Sequence[TradeRow] = ()) -> ReportInput:
    title = f"{query.mode.capitalize()} report: {query.strategy}"
    context = _context(query, contents)
    return ReportInput(title, contents.trades, contents.still_open, context, markdown_lines(fills))


def fill_rows(contents: LedgerContents, records: Sequence[TradeRecord]) -> list[TradeRow]:
    """The report's trades that have fills, for its "Trades (fills)" section."""
    return trade_rows(records, contents.trades, contents.still_open)


def markdown_report(contents: LedgerContents, query: Query, *, picture: Path | None = None) -> str:
    return _with_picture(render(_input(contents, query)), picture)


def _picture_path(path: Path) -> Path:
    return path.with_suffix(".png")


def write_markdown_report(
    contents: LedgerContents,
    query: Query,
    path: Path,
    *,
    draw_picture: bool = True,
    fills: Sequence[TradeRow] = (),
) -> Path:
    """Write the Markdown and the equity picture beside it (same name, .png).

    Without `draw_picture` the picture already there (if any) is linked as it is.
    """
    write_report_forms(contents, query, path, draw_picture=draw_picture, fills=fills)
    return path


def write_report_forms(
    contents: LedgerContents,
    query: Query,
    path: Path,
    *,
    draw_picture: bool = True,
    fills: Sequence[TradeRow] = (),
) -> str:
    """Write the report and its picture; return the terminal form (summary, last events)."""
    picture: Path | None = _picture_path(path)
    if draw_picture:
        title = f"{query.strategy} ({query.mode}): {PICTURE_BASIS}"
        picture = draw_equity_curve(contents.trades, title, _picture_path(path))
    elif not (contents.trades and _picture_path(path).exists()):
        picture = None
    where = f"{path} (equity picture: {picture})" if picture else str(path)
    full, short = render_forms(
        _input(contents, query, fills), last_events=TERMINAL_EVENTS, full_report=where
    )
    write_private(path, _with_picture(full, picture).encode())
    return short


def results_report(
    title: str,
    closed: Sequence[ClosedResult],
    still_open: Sequence[OpenSignal],
    context: dict[str, str],
) -> str:
    """The Markdown report of results held in memory (a backtest before or without the ledger)."""
    trades = [Trade.from_closed(c) for c in closed]
    return render(ReportInput(title, trades, still_open, context))


def write_results_report(
    title: str,
    closed: Sequence[ClosedResult],
    still_open: Sequence[OpenSignal],
    context: dict[str, str],
    path: Path,
) -> Path:
    """`results_report` written to `path`, with its equity picture beside it."""
    trades = [Trade.from_closed(c) for c in closed]
    picture = draw_equity_curve(trades, f"{title}: {PICTURE_BASIS}", _picture_path(path))
    text = _with_picture(render(ReportInput(title, trades, still_open, context)), picture)
    return write_private(path, text.encode())


def json_report(
    contents: LedgerContents, query: Query, fills: Sequence[TradeRow] = ()
) -> dict[str, Any]:
    document = _json_report(contents, query)
    if fills:
        document["trades"] = json_section(fills)
    return document


def _json_report(contents: LedgerContents, query: Query) -> dict[str, Any]:
    return {
        "strategy": query.strategy,
        "mode": query.mode,
        "run_id": contents.run_id,
        "filters": {"symbol": query.symbol, "since": query.since, "until": query.until},
        "basis": BASIS,
        "summary": dataclasses.asdict(summarize(contents.trades)),
        "per_symbol": {
            k: dataclasses.asdict(v)
            for k, v in breakdown(contents.trades, lambda t: t.symbol).items()
        },
        "per_close_reason": {
            k: dataclasses.asdict(v)
            for k, v in breakdown(contents.trades, lambda t: t.close_reason).items()
        },
        "closed_signals": [
            {
                "id": t.signal_id,
                "symbol": t.symbol,
                "position": t.position,
                "open_time": t.opened_at,
                "close_time": t.closed_at,
                "price_open": t.price_open,
                "price_close": t.price_close,
                "price_take_profit": t.price_take_profit,
                "price_stop_loss": t.price_stop_loss,
                "close_reason": t.close_reason,
                "pnl_percentage": t.pnl_percentage,
            }
            for t in contents.trades
        ],
        "still_open": [signal_to_dict(s) for s in contents.still_open],
    }


class LiveReportWriter:
    """Rewrites `<logs>/live/<strategy>.md` from the ledger after `closed` events, off the loop.

    At most once per `min_interval` seconds (a fast replay closes many signals a
    second), the picture at most once per `picture_interval`. The rewrite (ledger
    read on its own connection, Markdown, picture) runs on a background thread: at
    most one runs and one waits, later requests join the waiting one. It starts
    only after the loop callbacks already queued (the consumer taking the `closed`
    event) have run. `flush` waits for it and writes the last state, picture
    included, on stop.
    """

    def __init__(
        self,
        ledger: SqliteLedger,
        logs_dir: Path,
        strategy: str,
        clock: Any,
        min_interval: float = 1.0,
        picture_interval: float = 60.0,
    ) -> None:
        self._ledger = ledger
        self._query = Query(strategy=strategy, mode="live")
        self._path = default_report_path(logs_dir, self._query)
        self._monotonic = clock
        self._min_interval = min_interval
        self._picture_interval = picture_interval
        self._last_write: float | None = None
        self._last_picture: float | None = None
        self._dirty = False
        self._picture_stale = False
        self._guard = threading.Lock()
        self._wanted: bool | None = None
        """A rewrite waits to run (True: with the picture); None: none waits."""
        self._worker: threading.Thread | None = None
        self._ended: threading.Thread | None = None
        """The last worker that found nothing more to do (joined by `wait`)."""
        self._reader: SqliteLedger | None = None

    def on_closed(self) -> None:
        """Ask for a rewrite (throttled); returns at once, the work runs on a thread."""
        now = self._monotonic()
        if self._last_write is not None and now - self._last_write < self._min_interval:
            self._dirty = True
            return
        draw = self._last_picture is None or now - self._last_picture >= self._picture_interval
        self._last_write = now
        self._dirty = False
        if draw:
            self._last_picture = now
        self._picture_stale = not draw
        with self._guard:
            self._wanted = bool(self._wanted) or draw
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._start()
            return
        loop.call_soon(self._start)  # after the consumer's turn: the event goes out first

    def wait(self) -> None:
        """Block until no rewrite runs (those requested meanwhile included)."""
        while True:
            with self._guard:
                worker = self._worker
                ended = self._ended
            if worker is None:
                if ended is not None:
                    ended.join()
                return
            worker.join()

    def flush(self) -> None:
        """On stop: wait for the rewrite in progress, then write the last state if needed."""
        self.wait()
        with self._guard:
            wanted, self._wanted = self._wanted, None
        try:
            if wanted is not None or self._dirty or self._picture_stale:
                self._rebuild(draw=True)
                self._dirty = self._picture_stale = False
        except Exception:  # derived data: never let it mask how the run ended
            log.exception("could not rewrite the live report on exit")
        finally:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _start(self) -> None:
        with self._guard:
            if self._worker is not None or self._wanted is None:
                return  # the running rewrite takes this request too
            self._worker = threading.Thread(
                target=self._work, name="btkit-live-report", daemon=True
            )
            self._worker.start()

    def _work(self) -> None:
        while True:
            with self._guard:
                draw, self._wanted = self._wanted, None
                if draw is None:
                    self._worker, self._ended = None, threading.current_thread()
                    return
            try:
                self._rebuild(draw=draw)
            except Exception:  # the report is derived data; the ledger already has the events
                log.exception("could not rewrite the live report; trading goes on")

    def _rebuild(self, *, draw: bool) -> None:
        contents = self._contents()
        assert self._reader is not None
        records = strategy_trades(self._reader.connection, self._query.strategy, contents.run_id)
        write_markdown_report(
            contents,
            self._query,
            self._path,
            draw_picture=draw,
            fills=fill_rows(contents, records),
        )

    def _contents(self) -> LedgerContents:
        """The ledger, read on a connection of the report's own (never the writer's)."""
        if self._reader is None:
            self._reader = SqliteLedger.open_for_reading(self._ledger.path)
        return self._reader.read(self._query)
