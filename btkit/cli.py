"""The command line: the only module that imports Typer.

Each command turns options into Settings, calls one runtime function, and maps
a BtkitError to a red message and its exit status. Heavy modules are imported
inside commands so `btkit --help` answers at once.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:  # imported in the commands, so `btkit --help` stays fast
    from rich.console import Console

    from btkit.settings import Settings

app = typer.Typer(
    help="btkit: run crypto signal strategies live, crash-safe, with the code you backtest.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

StrategiesDir = Annotated[
    Path | None,
    typer.Option("--strategies-dir", help="Folder of strategy files [env BTKIT_STRATEGIES_DIR]"),
]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Candles and state [env BTKIT_DATA_DIR]")
]
LogsDir = Annotated[Path | None, typer.Option("--logs-dir", help="Reports [env BTKIT_LOGS_DIR]")]
LogLevel = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR")]


def _fail(message: str, code: int) -> NoReturn:
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/bold red] {message}"
    )
    raise typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    import pydantic

    from btkit.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"invalid settings ({problems}). Check BTKIT_* variables and .env.", 2)


def _console() -> Console:
    """Rich on stdout; wide when piped, so tables are not squeezed into 80 columns."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    return console


def _exit_with(command: Callable[[], int]) -> NoReturn:
    """Run a command; a BtkitError becomes a red message and its exit status."""
    from btkit.errors import BtkitError

    try:
        code = command()
    except BtkitError as exc:
        _fail(str(exc), exc.exit_code)
    raise typer.Exit(code)


def _times(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """--start / --end as ms UTC; a bad date exits 2 with the expected format."""
    from btkit.timefmt import parse_utc

    try:
        return (parse_utc(start) if start else None, parse_utc(end) if end else None)
    except ValueError as exc:
        _fail(f"{exc} (in --start/--end or --since/--until)", 2)


def _parse_speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if speed <= 0:
        _fail(
            f"--speed must be a positive number of simulated minutes per second or 'max', "
            f"not {text!r}",
            2,
        )
    return speed


@app.command()
def live(
    symbols: Annotated[list[str], typer.Argument(help="Symbols, e.g. BTCUSDT ETHUSDT")],
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy name")],
    exchange: Annotated[
        str, typer.Option("--exchange", "-e", help="'replay' (offline) or a ccxt id, e.g. binance")
    ] = "replay",
    speed: Annotated[str, typer.Option(help="Simulated minutes per second, or 'max'")] = "max",
    start: Annotated[
        str | None,
        typer.Option(help="Simulated time from here, UTC (replay default: data start + warm-up)"),
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Last simulated tick, UTC (default: end of the data)")
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Replay: start over; old state is kept aside")
    ] = False,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Use the exchange's testnet, where ccxt has one")
    ] = False,
    drain: Annotated[
        bool, typer.Option("--drain", help="On stop, wait for open signals to close first")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print each event as one JSON object per line")
    ] = False,
    strategies_dir: StrategiesDir = None,
    data_dir: DataDir = None,
    logs_dir: LogsDir = None,
    log_level: LogLevel = "INFO",
) -> None:
    """Run a strategy on symbols until stopped (or until the replayed history ends)."""
    from btkit.runtime.stop_signals import StopLatch

    latch = StopLatch()
    latch.install()  # first: a SIGTERM while the heavy modules load still stops cleanly
    from btkit.console import choose_mode, make_printer, setup_logging
    from btkit.runtime.assembly import RunOptions
    from btkit.runtime.daemon import run_daemon

    settings = _settings(strategies_dir=strategies_dir, data_dir=data_dir, logs_dir=logs_dir)
    setup_logging(log_level, secrets=settings.secret_values())
    start_ms, end_ms = _times(start, end)
    options = RunOptions(
        start_ms=start_ms,
        end_ms=end_ms,
        speed=_parse_speed(speed),
        restart=restart,
        sandbox=sandbox,
    )
    printer = make_printer(choose_mode(json_output, sys.stdout))
    _exit_with(
        lambda: asyncio.run(
            run_daemon(
                settings,
                symbols,
                strategy=strategy,
                exchange=exchange,
                printer=printer,
                options=options,
                drain=drain,
                latch=latch,
            )
        )
    )


@app.command()
def backtest(
    symbols: Annotated[list[str], typer.Argument(help="Symbols with candle files, e.g. ETHBTC")],
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy name")],
    exchange: Annotated[
        str, typer.Option("--exchange", "-e", help="Name recorded with the results")
    ] = "replay",
    start: Annotated[
        str | None, typer.Option(help="First tick, UTC (default: data start + warm-up)")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Last tick, UTC (default: data end)")] = None,
    step: Annotated[str, typer.Option(help="Time between frame ticks: 1m 3m 5m 15m 30m 1h")] = "1m",
    out: Annotated[
        Path | None, typer.Option(help="Report path (default: <logs>/backtest/<strategy>.md)")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print each closed signal as one JSON line")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes for several symbols (default: cores)")
    ] = None,
    strategies_dir: StrategiesDir = None,
    data_dir: DataDir = None,
    logs_dir: LogsDir = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Run a strategy over candle history with the live engine's decisions, fast."""
    from rich.console import Console

    from btkit.console import setup_logging
    from btkit.runtime.backtest_command import run_backtest_command

    setup_logging(log_level)
    settings = _settings(strategies_dir=strategies_dir, data_dir=data_dir, logs_dir=logs_dir)
    start_ms, end_ms = _times(start, end)
    _exit_with(
        lambda: run_backtest_command(
            settings,
            symbols,
            strategy_name=strategy,
            exchange=exchange,
            start=start_ms,
            end=end_ms,
            out=out,
            json_lines=json_output,
            workers=workers,
            step=step,
            stdout=_console(),
            stderr=Console(stderr=True, highlight=False),
        )
    )


@app.command()
def download(
    symbols: Annotated[list[str], typer.Argument(help="Symbols, e.g. BTCUSDT ETH/USDT")],
    exchange: Annotated[str, typer.Option("--exchange", "-e", help="A ccxt exchange id")],
    days: Annotated[int | None, typer.Option(min=1, help="The last N days (default 7)")] = None,
    start: Annotated[str | None, typer.Option(help="From this time, UTC")] = None,
    end: Annotated[str | None, typer.Option(help="Until this time, UTC (default: now)")] = None,
    data_dir: DataDir = None,
    log_level: LogLevel = "WARNING",
) -> None:
    """Fetch 1m candles into <data>/candles/<SYMBOL>-1m.csv (resumable, crash-safe)."""
    from btkit.clock import WallClock
    from btkit.console import setup_logging
    from btkit.runtime.download_command import run_download

    settings = _settings(data_dir=data_dir)
    setup_logging(log_level, secrets=settings.secret_values())
    if days is not None and start is not None:
        _fail("give --days or --start, not both", 2)
    start_ms, end_ms = _times(start, end)
    if start_ms is None:
        start_ms = (end_ms or WallClock().now_ms()) - (days or 7) * 86_400_000
    _exit_with(
        lambda: run_download(
            settings, exchange, symbols, start_ms=start_ms, end_ms=end_ms, console=_console()
        )
    )


@app.command()
def service(
    symbols: Annotated[
        list[str] | None, typer.Argument(help="Symbols for the unit (none with --template)")
    ] = None,
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="Strategy name")] = "",
    exchange: Annotated[str, typer.Option("--exchange", "-e", help="Exchange")] = "binance",
    write: Annotated[Path | None, typer.Option(help="Write the unit here too")] = None,
    template: Annotated[
        bool, typer.Option("--template", help="btkit@.service: one instance per symbol (%i)")
    ] = False,
    user: Annotated[bool, typer.Option("--user", help="A user unit (systemctl --user)")] = False,
    strategies_dir: StrategiesDir = None,
    data_dir: DataDir = None,
    logs_dir: LogsDir = None,
) -> None:
    """Print (and --write) a systemd unit that runs this `btkit live` command."""
    from btkit.runtime.service import UnitSpec, btkit_command, render_unit, unit_name
    from btkit.store.atomic import atomic_write_bytes

    if not strategy:
        _fail("--strategy is required", 2)
    if not symbols and not template:
        _fail("give the symbols, or --template for one instance per symbol", 2)
    settings = _settings(strategies_dir=strategies_dir, data_dir=data_dir, logs_dir=logs_dir)
    workdir = Path.cwd()
    spec = UnitSpec(
        command=btkit_command(),
        workdir=workdir,
        strategies_dir=(workdir / settings.strategies_dir).resolve(),
        data_dir=(workdir / settings.data_dir).resolve(),
        logs_dir=(workdir / settings.logs_dir).resolve(),
        symbols=symbols or [],
        strategy=strategy,
        exchange=exchange,
        template=template,
        user=user,
    )
    text = render_unit(spec)
    typer.echo(text, nl=False)
    if write is not None:
        try:
            atomic_write_bytes(write, text.encode())
        except OSError as exc:
            _fail(f"cannot write {write}: {exc}", 2)
        scope = "--user " if user else ""
        name = unit_name(spec)
        instance = name.replace("@", f"@{(symbols or ['BTCUSDT'])[0]}") if template else name
        typer.echo(
            f"# wrote {write}; install it as {name} in "
            f"{'~/.config/systemd/user/' if user else '/etc/systemd/system/'}, then: "
            f"systemctl {scope}daemon-reload && systemctl {scope}enable --now {instance}",
            err=True,
        )


@app.command()
def report(
    strategy: Annotated[str, typer.Argument(help="Strategy name")],
    mode: Annotated[str, typer.Option(help="live or backtest (the latest backtest run)")] = "live",
    symbol: Annotated[str | None, typer.Option(help="Only this symbol")] = None,
    since: Annotated[str | None, typer.Option(help="Signals opened from this time, UTC")] = None,
    until: Annotated[str | None, typer.Option(help="Signals opened before this time")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write here (default: <logs>/<mode>/<strategy>.md)")
    ] = None,
    report_format: Annotated[str, typer.Option("--format", help="md or json")] = "md",
    run: Annotated[
        str | None, typer.Option(help="A ledger run id, or 'all' (default: the latest run)")
    ] = None,
    data_dir: DataDir = None,
    logs_dir: LogsDir = None,
) -> None:
    """Print and write a strategy's report from the ledger (works while daemons run)."""

    from btkit.runtime.report_command import run_report
    from btkit.store.ledger import Query

    if mode not in ("live", "backtest"):
        _fail(f"--mode must be live or backtest, not {mode!r}", 2)
    if report_format not in ("md", "json"):
        _fail(f"--format must be md or json, not {report_format!r}", 2)
    settings = _settings(data_dir=data_dir, logs_dir=logs_dir)
    since_ms, until_ms = _times(since, until)
    query = Query(
        strategy=strategy,
        mode="live" if mode == "live" else "backtest",
        symbol=symbol,
        since=since_ms,
        until=until_ms,
        run_id=run,
    )
    _exit_with(
        lambda: run_report(
            settings, query, out=out, as_json=report_format == "json", console=_console()
        )
    )


@app.command()
def status(data_dir: DataDir = None) -> None:
    """Show the open signals in the state files, and which have no daemon."""
    from btkit.runtime.report_command import run_status

    raise typer.Exit(run_status(_settings(data_dir=data_dir), _console()))


_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@app.command("new-strategy")
def new_strategy(
    name: Annotated[str, typer.Argument(help="Strategy name, e.g. my-breakout")],
    strategies_dir: StrategiesDir = None,
) -> None:
    """Write a commented strategy file to start from."""
    from importlib.resources import files

    if not _NAME.match(name):
        _fail(f"strategy name {name!r}: use lower-case letters, digits, '-' and '_'", 2)
    folder = _settings(strategies_dir=strategies_dir).strategies_dir
    target = folder / f"{name.replace('-', '_')}.py"
    if target.exists():
        _fail(f"{target} already exists; pick another name or edit that file", 2)
    template = files("btkit").joinpath("templates/strategy.py.tmpl").read_text()
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(template.replace("{{name}}", name))
    typer.echo(f"wrote {target}; try it with: btkit live ETHBTC --strategy {name}")


def main() -> None:
    app()
