"""`btkit list` (what a folder holds) and `btkit init` (set up an empty folder)."""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from btkit.adapters.store.atomic import ensure_private_dir
from btkit.domain.errors import ConfigError, StorageError
from btkit.domain.timefmt import format_time
from btkit.settings import ExchangeCredentials, Settings
from btkit.strategies import scan_strategies


def run_list(settings: Settings, console: Console) -> int:
    _list_strategies(settings, console)
    _list_candles(settings, console)
    return 0


def _list_strategies(settings: Settings, console: Console) -> None:
    folder = settings.strategies_dir
    if not folder.is_dir():
        console.print(
            f"No strategies folder {escape(str(folder))}: `btkit init` or "
            "`btkit new-strategy NAME` creates one.",
            highlight=False,
        )
        return
    scanned = scan_strategies(folder)
    table = Table(title=f"Strategies in {folder}")
    for column in ("Name", "Interval", "Warm-up", "File"):
        table.add_column(column)
    for name, definition in sorted(scanned.found.items()):
        source = definition.source.name if definition.source else "?"
        table.add_row(name, definition.interval, f"{definition.warmup_minutes} min", escape(source))
    console.print(table)
    if not scanned.found:
        console.print("No strategies yet: `btkit new-strategy NAME` writes one.", highlight=False)
    for _, error in scanned.broken:
        console.print(f"[red]broken:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)


def _list_candles(settings: Settings, console: Console) -> None:
    folder = settings.candles_dir
    paths = sorted(folder.glob("*-1m.csv")) if folder.is_dir() else []
    if not paths:
        console.print(
            f"No candle files in {escape(str(folder))}: fetch some with "
            "`btkit download BTCUSDT --exchange binance --days 7`.",
            highlight=False,
        )
        return
    table = Table(title=f"Candle files in {folder} (for replay and backtest)")
    for column in ("Symbol", "From", "To", "Size"):
        table.add_column(column, justify="right" if column == "Size" else "left")
    for path in paths:
        first, last = _first_and_last(path)
        table.add_row(
            escape(path.name.removesuffix("-1m.csv")),
            format_time(first) if first is not None else "?",
            format_time(last) if last is not None else "?",
            f"{path.stat().st_size / 1e6:,.1f} MB",
        )
    console.print(table)


def _first_and_last(path: Path) -> tuple[int | None, int | None]:
    """The first and last candle times, from the file's two ends (no full parse)."""
    try:
        with path.open("rb") as file:
            head = file.read(4096).splitlines()
            file.seek(max(file.seek(0, os.SEEK_END) - 4096, 0))
            tail = file.read().splitlines()
    except OSError:
        return None, None
    return _timestamp(head[1:2]), _timestamp(tail[-1:])


def _timestamp(lines: list[bytes]) -> int | None:
    try:
        return int(float(lines[0].split(b",", 1)[0]))
    except (IndexError, ValueError):
        return None


def example_env() -> str:
    """A .env naming every BTKIT_ setting, commented out at its default."""
    lines = [
        "# btkit settings: uncomment a line to change it. Command-line options win over",
        "# these, and BTKIT_* environment variables win over this file.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        if name == "credentials":
            continue
        value = field.get_default(call_default_factory=True)
        default = "" if value is None else str(value)
        if isinstance(value, dict):  # pydantic-settings reads a dict setting as JSON
            default = json.dumps(value)
        lines += [f"# {field.description}", f"# BTKIT_{name.upper()}={default}", ""]
    lines += [
        "# API keys are optional: public candles need none. Per exchange, e.g. binance:",
    ]
    for name in ExchangeCredentials.model_fields:
        lines.append(f"# BTKIT_CREDENTIALS__BINANCE__{name.upper()}=")
    return "\n".join(lines) + "\n"


def run_init(folder: Path, console: Console) -> int:
    """Create what btkit expects in `folder`; existing files are kept as they are."""
    strategy = files("btkit").joinpath("templates/my_strategy.py.tmpl").read_text()
    created: list[str] = []
    kept: list[str] = []
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file: give `btkit init` a folder (created if missing).")
    for sub in ("strategies", "data/candles", "logs"):
        path = folder / sub
        (kept if path.is_dir() else created).append(f"{path}/")
        ensure_private_dir(path)
    for path, text in (
        (folder / "strategies" / "my_strategy.py", strategy),
        (folder / ".env", example_env()),
    ):
        if path.exists():
            kept.append(str(path))
            continue
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
        except OSError as exc:
            raise StorageError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
        created.append(str(path))
    if created:
        console.print(f"created: {escape(', '.join(created))}", highlight=False, soft_wrap=True)
    if kept:
        console.print(f"kept as they were: {escape(', '.join(kept))}", highlight=False)
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {folder} && "
    console.print(
        "next steps:\n"
        f"  {where}btkit download BTCUSDT --exchange binance --days 7   (candles, no keys needed)\n"
        "  btkit backtest BTCUSDT --strategy my-strategy\n"
        "  btkit live BTCUSDT --strategy my-strategy --exchange replay",
        highlight=False,
        markup=False,
    )
    return 0
