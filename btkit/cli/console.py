"""What the user sees: a start-up panel and one line per `opened`/`closed` event.

Three modes: Rich on a terminal, plain lines when stdout is a pipe or file,
and JSON lines (`--json`) for jq and log shippers. Logs go to stderr.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import IO, Literal

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from btkit.domain.model import (
    ClosedResult,
    OpenedResult,
    StreamedResult,
    lifetime_text,
    result_to_dict,
)
from btkit.domain.orders import TradeReport
from btkit.domain.timefmt import format_time
from btkit.ports import EventPrinter, StartupInfo

OutputMode = Literal["rich", "plain", "json"]
TRADE_STYLES = {"live": "bold red", "paper": "yellow"}
"""The start-up panel's colour per trade mode: red is real money."""


def choose_mode(json_output: bool, stream: IO[str]) -> OutputMode:
    if json_output:
        return "json"
    return "rich" if stream.isatty() else "plain"


def make_printer(mode: OutputMode, stream: IO[str] | None = None) -> EventPrinter:
    stream = stream or sys.stdout
    if mode == "json":
        return JsonPrinter(stream)
    if mode == "plain":
        return PlainPrinter(stream)
    return RichPrinter(Console(file=stream, highlight=False))


def _price(value: float) -> str:
    return f"{value:.8g}"


REDELIVERED = "REDELIVERED"
"""Marks an event emitted again after a crash: it may have been seen before (same id)."""


def _event_fields(result: StreamedResult) -> list[str]:
    fields = _plain_fields(result)
    if result.redelivered:
        fields.append(REDELIVERED)
    return fields


def trade_text(report: TradeReport) -> str:
    """What trading did at an event, in a few words: `filled 0.012 @ 101.2, fee 0.0012`."""
    if report.status in ("skipped", "halted"):
        return f"trade {report.status}: {report.how}" if report.how else f"trade {report.status}"
    if report.filled > 0 and report.average is not None:
        text = f"filled {report.filled:.8g} @ {report.average:.8g}, fee {report.fee:.8g}"
        if report.filled < report.amount and report.status != "closed":
            text = f"partly {text} of {report.amount:.8g}"
        gap = report.gap_percent
        text = text if gap is None else f"{text}, gap {gap:+.3f}%"
        return f"{text} ({report.how})" if report.how else text
    text = f"order {report.status}"
    return f"{text}: {report.how}" if report.how else text


def _trade_field(result: StreamedResult) -> list[str]:
    return [] if result.trade is None else [f"{result.trade.mode}: {trade_text(result.trade)}"]


def _plain_fields(result: StreamedResult) -> list[str]:
    signal = result.signal
    head = [format_time(result.timestamp), result.action.upper(), result.symbol, signal.position]
    if isinstance(result, OpenedResult):
        return [
            *head,
            f"open {_price(signal.price_open)}",
            f"tp {_price(signal.price_take_profit)}",
            f"sl {_price(signal.price_stop_loss)}",
            lifetime_text(signal.minute_estimated_time),
            f"id {signal.id[:8]}",
            *_trade_field(result),
        ]
    return [
        *head,
        result.close_reason,
        f"{_price(result.pnl.price_open)} -> {_price(result.pnl.price_close)}",
        f"pnl {result.pnl.pnl_percentage:+.3f}%",
        f"id {signal.id[:8]}",
        *_trade_field(result),
    ]


TRADE_LABELS = {
    "live": "live: REAL ORDERS with real money",
    "paper": "paper: simulated wallet, no real orders",
}


def _trade_row(info: StartupInfo) -> tuple[str, str] | None:
    """Shown only when trading (`--trade off` keeps the panel as it always was)."""
    if info.trade == "off":
        return None
    label = TRADE_LABELS[info.trade]
    return ("trade", f"{label} ({info.trade_detail})" if info.trade_detail else label)


def _startup_rows(info: StartupInfo) -> list[tuple[str, str]]:
    rows = [
        ("strategy", f"{info.strategy} (every {info.interval}, {info.strategy_file})"),
        ("exchange", info.exchange),
        ("symbols", " ".join(info.symbols)),
    ]
    trade = _trade_row(info)
    if trade is not None:
        rows.append(trade)
    if info.replay:
        rows.append(("replay", info.replay))
    rows.extend(info.folders.items())
    restored = [
        f"{s.symbol} {s.position} open {_price(s.price_open)} since {format_time(s.timestamp)}"
        for s in info.restored
    ]
    rows.append(("restored", "; ".join(restored) if restored else "no open signals"))
    return rows


class PlainPrinter:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def startup(self, info: StartupInfo) -> None:
        for key, value in _startup_rows(info):
            self._line(f"{key}: {value}")

    def event(self, result: StreamedResult) -> None:
        self._line("  ".join(_event_fields(result)))

    def finish(self, message: str) -> None:
        self._line(message)

    def _line(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()


class JsonPrinter(PlainPrinter):
    """stdout carries only events, one JSON object a line; the rest goes to the log.

    Each line has the event's ledger `seq` and `redelivered` (true for an event
    emitted again after a crash): deduplicate by seq, or by signal id and action.
    """

    def startup(self, info: StartupInfo) -> None:
        for key, value in _startup_rows(info):
            logging.getLogger("btkit").info("%s: %s", key, value)

    def event(self, result: StreamedResult) -> None:
        self._line(json.dumps(result_to_dict(result), separators=(",", ":")))

    def finish(self, message: str) -> None:
        logging.getLogger("btkit").info("%s", message)


class RichPrinter:
    def __init__(self, console: Console) -> None:
        self._console = console

    def startup(self, info: StartupInfo) -> None:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan")
        table.add_column()
        style = TRADE_STYLES.get(info.trade, "")
        for key, value in _startup_rows(info):
            if key == "trade":
                table.add_row(key, Text(value, style=style))
            else:
                table.add_row(key, value)
        title = "btkit live: REAL ORDERS" if info.trade == "live" else "btkit live"
        self._console.print(Panel(table, title=title, expand=False, border_style=style or "none"))

    def event(self, result: StreamedResult) -> None:
        fields = [escape(field) for field in _plain_fields(result)]
        if isinstance(result, ClosedResult):
            colour = "green" if result.pnl.pnl_percentage >= 0 else "red"
            at = -3 if result.trade is not None else -2
            fields[at] = f"[{colour}]{fields[at]}[/{colour}]"
            fields[1] = "[magenta]CLOSED[/magenta]"
        else:
            fields[1] = "[cyan]OPENED[/cyan]"
        if result.redelivered:
            fields.append(f"[bold yellow]{REDELIVERED}[/bold yellow]")
        self._console.print("  ".join(fields))
        self._console.file.flush()  # on screen before the event counts as delivered

    def finish(self, message: str) -> None:
        self._console.print(f"[bold]{message}[/bold]")


REDACTED = "***"


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` with every configured secret replaced by ***."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactSecrets(logging.Filter):
    """Replace any configured secret that reaches a log record (traceback included) with ***."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        record.msg, record.args = redact(message, self._secrets), None
        if record.exc_info and not record.exc_text:
            # An exception's text (an echoed request header, say) is part of the line.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True


class RedactingStream(io.TextIOBase):
    """A text stream (stdout, stderr) that replaces configured secrets before they are written.

    Everything else (isatty, fileno, encoding) is the wrapped stream's, so Rich
    still sees a terminal or a pipe as it is.
    """

    def __init__(self, stream: IO[str], secrets: Sequence[str]) -> None:
        self._stream = stream
        self._secrets = [s for s in secrets if s]

    def write(self, text: str) -> int:
        self._stream.write(redact(text, self._secrets))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def redact_standard_streams(secrets: Sequence[str]) -> None:
    """Wrap sys.stdout and sys.stderr so no configured secret is ever printed."""
    if not [s for s in secrets if s]:
        return
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream, secrets))


def setup_logging(level: str, stream: IO[str] | None = None, secrets: Sequence[str] = ()) -> None:
    """Rich logs on a terminal; plain lines otherwise; no timestamps under systemd.

    ccxt logs request headers (API keys among them) at DEBUG, so its logger
    never goes below WARNING, and configured secrets are redacted from every line.
    """
    stream = stream or sys.stderr
    handler: logging.Handler
    if stream.isatty() and "JOURNAL_STREAM" not in os.environ:
        handler = RichHandler(console=Console(file=stream), show_path=False, log_time_format="%X")
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(stream)
        fmt = "%(levelname)s %(name)s: %(message)s"
        if "JOURNAL_STREAM" not in os.environ:
            fmt = "%(asctime)s " + fmt
        formatter = logging.Formatter(fmt, datefmt="%Y-%m-%dT%H:%M:%SZ")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("ccxt").setLevel(logging.WARNING)
