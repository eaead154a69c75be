"""The command line: the only module that imports Typer.

Each command turns options into Settings, calls one runtime function, and maps
a BtkitError to a red message and its exit status. Heavy modules are imported
inside commands so `btkit --help` answers at once.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:  # imported in the commands, so `btkit --help` stays fast
    from rich.console import Console

    from btkit.settings import Settings

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    help=(
        "btkit: run crypto signal strategies live, crash-safe, with the code you backtest. "
        "It announces signals (opened / closed, with PnL after costs); it places orders only "
        "with `btkit live --trade paper|live`."
    ),
    epilog=(
        "Start with `btkit init`, then `btkit live ETHBTC --strategy my-strategy` (offline "
        "replay). `btkit COMMAND -h` shows each command's options and examples."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=CONTEXT_SETTINGS,
)

DATES = "Dates are UTC: 2018-01-21, 2018-01-21T10:00, or with an offset (2018-01-21T10:00+02:00)."

StrategiesDir = Annotated[
    Path | None,
    typer.Option("--strategies-dir", help="Folder of strategy files [env BTKIT_STRATEGIES_DIR]"),
]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Candles and state [env BTKIT_DATA_DIR]")
]
LogsDir = Annotated[Path | None, typer.Option("--logs-dir", help="Reports [env BTKIT_LOGS_DIR]")]
LogLevel = Annotated[
    str | None,
    typer.Option(
        "--log-level",
        help="DEBUG, INFO, WARNING or ERROR [env BTKIT_LOG_LEVEL; default INFO for live, "
        "WARNING for the others]",
    ),
]
ParamsOption = Annotated[
    str | None,
    typer.Option(
        "--params",
        metavar="NAME",
        help="Run with a parameter set saved by `btkit sweep` (default: the declared defaults)",
    ),
]
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
BOOLEAN_WORDS = frozenset({"true", "false", "yes", "no", "on", "off"})

_secrets: list[str] = []
"""The configured secrets, once settings are loaded: redacted from every message."""


def _print_error(message: str, label: str = "[bold red]error:[/bold red]") -> None:
    from rich.console import Console
    from rich.markup import escape

    from btkit.cli.console import redact

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"{label} {escape(redact(message, _secrets))}"
    )


def _fail(message: str, code: int) -> NoReturn:
    _print_error(message)
    raise typer.Exit(code)


def _settings(**overrides: Any) -> Settings:
    import pydantic
    import pydantic_settings

    from btkit.cli.console import redact_standard_streams
    from btkit.domain.errors import ConfigError
    from btkit.settings import Settings

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        _fail(str(exc), exc.exit_code)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        _fail(f"invalid settings ({problems}). Check BTKIT_* variables and .env.", 2)
    except pydantic_settings.SettingsError as exc:  # a dict setting that is not JSON
        _fail(
            f"invalid settings: {exc}. A setting holding several values takes JSON, e.g. "
            """BTKIT_PAPER_BALANCES='{"USDT": 10000, "BTC": 1}'. Check BTKIT_* variables """
            "and .env.",
            2,
        )
    _secrets[:] = settings.secret_values()
    redact_standard_streams(_secrets)  # whatever prints them: a proxy's echo, a traceback
    return settings


def _logging(settings: Settings, option: str | None, default: str) -> None:
    """Set up logging at --log-level, else BTKIT_LOG_LEVEL, else the command's default."""
    from btkit.cli.console import setup_logging

    level = (option or settings.log_level or default).upper()
    if level not in LEVELS:
        _fail(f"--log-level must be one of {', '.join(LEVELS)}, not {option!r}", 2)
    setup_logging(level, secrets=_secrets)


def _check_symbols(symbols: list[str] | None) -> list[str]:
    """Catch `--json true`: flags take no value, so `true` would become a symbol."""
    for symbol in symbols or []:
        if symbol.lower() in BOOLEAN_WORDS:
            _fail(
                f"{symbol!r} is not a symbol. Options such as --json, --restart and --drain "
                f"are flags: write `--json`, not `--json {symbol}`.",
                2,
            )
    return symbols or []


def _console() -> Console:
    """Rich on stdout; wide when piped, so tables are not squeezed into 80 columns."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    return console


def _exit_with(command: Callable[[], int], *, interrupted: str) -> NoReturn:
    """Run a command; a BtkitError becomes a red message and its exit status, Ctrl-C 130."""
    from btkit.domain.errors import BtkitError

    try:
        code = command()
    except BtkitError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _print_error(interrupted, "[bold yellow]interrupted:[/bold yellow]")
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def _times(
    start: str | None, end: str | None, names: tuple[str, str] = ("--start", "--end")
) -> tuple[int | None, int | None]:
    """--start / --end as ms UTC; a bad date, or a start after the end, exits 2."""
    from btkit.domain.timefmt import parse_utc

    try:
        first, last = (parse_utc(start) if start else None, parse_utc(end) if end else None)
    except ValueError as exc:
        _fail(f"{exc} (in {names[0]}/{names[1]})", 2)
    if first is not None and last is not None and first > last:
        _fail(f"{names[0]} {start} is after {names[1]} {end}; swap them?", 2)
    return first, last


def _param_values(settings: Settings, strategy: str, name: str | None) -> Any:
    """The saved parameter set `name` of `strategy` (None without --params); exits 2 if unknown."""
    if name is None:
        return None
    from btkit.adapters.store.param_sets import load_param_set
    from btkit.domain.errors import BtkitError

    try:
        return tuple(load_param_set(settings.data_dir, strategy, name).items())
    except BtkitError as exc:
        _fail(str(exc), exc.exit_code)


def _parse_speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if speed <= 0 or speed != speed or speed == float("inf"):
        _fail(
            f"--speed must be a positive number of simulated minutes per second or 'max', "
            f"not {text!r}",
            2,
        )
    return speed


TRADE_MODES = ("off", "paper", "live")


def _check_trade_options(trade: str | None, stake: float | None) -> None:
    """`--trade` and `--stake` say what is wrong before anything starts (exit 2)."""
    if trade is not None and trade not in TRADE_MODES:
        _fail(
            f"--trade must be off (announce signals only), paper (a simulated wallet) or live "
            f"(real orders), not {trade!r}",
            2,
        )
    if stake is not None and not (stake > 0 and stake != float("inf")):
        _fail(
            f"--stake must be a positive quote amount per signal, e.g. --stake 100, not {stake:g}",
            2,
        )


def _flag(*names: str, **options: Any) -> Any:
    """A boolean flag: `--json`, shown without a value (`--json true` is not how to use it)."""
    return typer.Option(*names, metavar="", **options)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"btkit {version('btkit')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        _flag("--version", callback=_version, is_eager=True, help="Show the version"),
    ] = False,
) -> None:
    """btkit: run crypto signal strategies live, crash-safe, with the code you backtest.

    It announces signals (opened / closed, with PnL after fees and slippage); it
    places orders only with `btkit live --trade paper` (a simulated wallet) or
    `--trade live` (real orders, with --confirm-live).
    """


def _examples(*lines: str) -> str:
    """An epilog of examples, one per line (blank lines keep them apart in Rich help)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines) + f"\n\n{DATES}"


@app.command(
    epilog=_examples(
        "btkit live ETHBTC LTCBTC --strategy my-strategy    (offline replay, the default)",
        "btkit live ETHBTC -s my-strategy --restart --start 2018-01-21 --speed 60",
        "btkit live BTCUSDT -s my-strategy --exchange binance --json | jq .",
        "btkit live BTCUSDT -s my-strategy -e binance --trade paper --stake 100   (paper wallet)",
        "btkit live BTCUSDT -s my-strategy -e binance --trade live --stake 100 --confirm-live",
    )
)
def live(
    symbols: Annotated[
        list[str], typer.Argument(metavar="SYMBOL", help="Symbols, e.g. BTCUSDT ETHUSDT")
    ],
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", metavar="NAME", help="Strategy name")
    ],
    exchange: Annotated[
        str,
        typer.Option(
            "--exchange", "-e", metavar="ID", help="'replay' (offline) or a ccxt id, e.g. binance"
        ),
    ] = "replay",
    speed: Annotated[str, typer.Option(help="Simulated minutes per second, or 'max'")] = "max",
    start: Annotated[
        str | None,
        typer.Option(
            metavar="DATE",
            help="Simulated time from here, UTC (replay default: data start + warm-up)",
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(metavar="DATE", help="Last simulated tick, UTC (default: end of the data)"),
    ] = None,
    restart: Annotated[
        bool, _flag("--restart", help="Replay: start over; old state is kept aside")
    ] = False,
    sandbox: Annotated[
        bool, _flag("--sandbox", help="Use the exchange's testnet, where ccxt has one")
    ] = False,
    drain: Annotated[
        bool, _flag("--drain", help="On stop, wait for open signals to close first")
    ] = False,
    json_output: Annotated[
        bool, _flag("--json", help="Print each event as one JSON object per line")
    ] = False,
    trade: Annotated[
        str | None,
        typer.Option(
            metavar="off|paper|live",
            help="off: announce signals only; paper: trade a simulated wallet; live: REAL "
            "orders with real money (needs API keys and --confirm-live) [env BTKIT_TRADE; "
            "default off]",
        ),
    ] = None,
    stake: Annotated[
        float | None,
        typer.Option(
            metavar="AMOUNT",
            help="Quote amount per signal, e.g. 100 (USDT on BTCUSDT) [env BTKIT_STAKE; "
            "default 10 % of the free quote balance]",
        ),
    ] = None,
    confirm_live: Annotated[
        bool,
        _flag(
            "--confirm-live",
            help="Confirm --trade live: real orders with real money [env BTKIT_CONFIRM_LIVE=1]",
        ),
    ] = False,
    params: ParamsOption = None,
    strategies_dir: StrategiesDir = None,
    data_dir: DataDir = None,
    logs_dir: LogsDir = None,
    log_level: LogLevel = None,
) -> None:
    """Run a strategy on symbols until stopped (or until the replayed history ends).

    With --trade paper or live it also trades each signal (spot, longs only): a
    market buy, take-profit and stop-loss resting on the exchange, a sell at the close.
    """
    import asyncio

    from btkit.wiring.system import stop_latch

    latch = stop_latch()  # first: a SIGTERM while the heavy modules load still stops cleanly
    from btkit.app.daemon import run_daemon
    from btkit.cli.console import choose_mode, make_printer
    from btkit.wiring.live import RunOptions

    _check_symbols(symbols)
    _check_trade_options(trade, stake)
    settings = _settings(
        strategies_dir=strategies_dir,
        data_dir=data_dir,
        logs_dir=logs_dir,
        trade=trade,
        stake=stake,
        confirm_live=True if confirm_live else None,
    )
    _logging(settings, log_level, "INFO")
    start_ms, end_ms = _times(start, end)
    options = RunOptions(
        start_ms=start_ms,
        end_ms=end_ms,
        speed=_parse_speed(speed),
        restart=restart,
        sandbox=sandbox,
        params=_param_values(settings, strategy, params),
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
        ),
        interrupted="stopped before start-up finished; state files are unchanged.",
    )


@app.command(
    epilog=_examples(
        "btkit backtest ETHBTC LTCBTC --strategy my-strategy",
        "btkit backtest ETHBTC -s my-strategy --start 2018-01-21 --end 2018-01-25T12:00",
        "btkit backtest ETHBTC -s my-strategy --step 15m --json > closed.jsonl",
    )
)
def backtest(
    symbols: Annotated[
        list[str],
        typer.Argument(metavar="SYMBOL", help="Symbols with candle files, e.g. ETHBTC"),
    ],
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", metavar="NAME", help="Strategy name")
    ],
    exchange: Annotated[
        str, typer.Option("--exchange", "-e", metavar="ID", help="Name recorded with the results")
    ] = "replay",
    start: Annotated[
        str | None,
        typer.Option(metavar="DATE", help="First tick, UTC (default: data start + warm-up)"),
    ] = None,
    end: Annotated[
        str | None, typer.Option(metavar="DATE", help="Last tick, UTC (default: data end)")
    ] = None,
    step: Annotated[str, typer.Option(help="Time between frame ticks: 1m 3m 5m 15m 30m 1h")] = "1m",
    out: Annotated[
        Path | None, typer.Option(help="Report path (default: <logs>/backtest/<strategy>.md)")
    ] = None,
    json_output: Annotated[
        bool, _flag("--json", help="Print each closed signal as one JSON line")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes for several symbols (default: cores)")
    ] = None,
    params: ParamsOption = None,
    no_screen: Annotated[
        bool,
        _flag(
            "--no-screen",
            help="Ignore the strategy's screen: call get_signal at every due tick (slower)",
        ),
    ] = False,
    check_screen: Annotated[
        bool,
        _flag(
            "--check-screen",
            help="Also call get_signal where the screen says no signal, and fail if one opens",
        ),
    ] = False,
    strategies_dir: StrategiesDir = None,
    data_dir: DataDir = None,
    logs_dir: LogsDir = None,
    log_level: LogLevel = None,
) -> None:
    """Run a strategy over candle history with the live engine's decisions, fast."""
    from rich.console import Console

    from btkit.cli.backtest_command import run_backtest_command

    _check_symbols(symbols)
    settings = _settings(strategies_dir=strategies_dir, data_dir=data_dir, logs_dir=logs_dir)
    _logging(settings, log_level, "WARNING")
    start_ms, end_ms = _times(start, end)
    values = _param_values(settings, strategy, params)
    if no_screen and check_screen:
        _fail("--no-screen and --check-screen contradict each other: choose one.", 2)
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
            params=None if values is None else dict(values),
            screen="off" if no_screen else "check" if check_screen else "use",
            stdout=_console(),
            stderr=Console(stderr=True, highlight=False),
        ),
        interrupted="backtest stopped; nothing was recorded and no report was written.",
    )


# --- sweep -----------------------------------------------------------------------

METRICS = ("sharpe", "total-return", "profit-factor")


@app.command(
    epilog=_examples(
        "btkit sweep ETHBTC LTCBTC --strategy my-strategy --start 2018-01-21 --end 2018-01-30",
        "btkit sweep ETHBTC -s my-strategy --samples 50 --metric total-return --folds 3",
        "btkit sweep ETHBTC -s my-strategy --max-drawdown 20 --json | jq .best",
        "btkit sweep ETHBTC -s my-strategy --cluster tcp://10.0.0.5:8786   (pip install "
        "'btkit[cluster]')",
        "btkit backtest ETHBTC -s my-strategy --params best   (the saved winner)",
    )
)
def sweep(
    symbols: Annotated[
        list[str],
        typer.Argument(metavar="SYMBOL", help="Symbols with candle files, e.g. ETHBTC"),
    ],
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", metavar="NAME", help="Strategy name")
    ],
    start: Annotated[
        str | None,
        typer.Option(metavar="DATE", help="Period start, UTC (default: data start + warm-up)"),
    ] = None,
    end: Annotated[
        str | None, typer.Option(metavar="DATE", help="Period end, UTC (default: data end)")
    ] = None,
    grid: Annotated[
        bool, _flag("--grid", help="Every combination of the declared values (the default)")
    ] = False,
    samples: Annotated[
        int | None, typer.Option(min=1, help="N random combinations instead of the grid")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of --samples (same seed, same points)")] = 0,
    metric: Annotated[
        str, typer.Option(help="Rank by: sharpe, total-return or profit-factor")
    ] = "sharpe",
    max_drawdown: Annotated[
        float | None,
        typer.Option(metavar="PCT", min=0.0, help="Never choose a set whose drawdown exceeds PCT"),
    ] = None,
    folds: Annotated[
        int,
        typer.Option(min=1, help="Walk-forward: tune on each of K windows, test on the next"),
    ] = 1,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Local processes (default: cores)")
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help="Run the jobs on this Dask scheduler instead"),
    ] = None,
    save: Annotated[
        str, typer.Option(metavar="NAME", help="Save the best parameter set under this name")
    ] = "best",
    json_output: Annotated[bool, _flag("--json", help="Print the results as JSON")] = False,
    strategies_dir: StrategiesDir = None,
    data_dir: DataDir = None,
    logs_dir: LogsDir = None,
    log_level: LogLevel = None,
) -> None:
    """Backtest parameter sets x symbols, rank them, and check the best out of sample.

    Finished jobs are kept in <data>/sweeps/, so an interrupted sweep resumes where it
    stopped; the report goes to <logs>/sweep/<strategy>.md.
    """
    from rich.console import Console

    from btkit.app.sweep_plan import SweepOptions
    from btkit.cli.sweep_command import Engine, Ranking, run_sweep_command

    _check_symbols(symbols)
    if grid and samples is not None:
        _fail("give --grid or --samples N, not both", 2)
    if metric not in METRICS:
        _fail(f"--metric must be one of {', '.join(METRICS)}, not {metric!r}", 2)
    if not _NAME.match(save):
        _fail(f"--save {save!r}: use lower-case letters, digits, '-' and '_'", 2)
    settings = _settings(strategies_dir=strategies_dir, data_dir=data_dir, logs_dir=logs_dir)
    _logging(settings, log_level, "WARNING")
    start_ms, end_ms = _times(start, end)
    options = SweepOptions(start=start_ms, end=end_ms, samples=samples, seed=seed, folds=folds)
    _exit_with(
        lambda: run_sweep_command(
            settings,
            symbols,
            strategy_name=strategy,
            options=options,
            ranking=Ranking(metric, max_drawdown),
            engine=Engine(workers, cluster),
            save_as=save,
            json_output=json_output,
            stdout=_console(),
            stderr=Console(stderr=True, highlight=False),
        ),
        interrupted="sweep stopped; finished jobs are kept in <data>/sweeps/ and the same "
        "command resumes after them.",
    )


@app.command(
    epilog=_examples(
        "btkit download BTCUSDT ETHUSDT --exchange binance --days 30",
        "btkit download ETH/BTC -e binance --start 2024-01-01 --end 2024-02-01",
    )
)
def download(
    symbols: Annotated[
        list[str], typer.Argument(metavar="SYMBOL", help="Symbols, e.g. BTCUSDT ETH/USDT")
    ],
    exchange: Annotated[
        str, typer.Option("--exchange", "-e", metavar="ID", help="A ccxt exchange id")
    ],
    days: Annotated[int | None, typer.Option(min=1, help="The last N days (default 7)")] = None,
    start: Annotated[str | None, typer.Option(metavar="DATE", help="From this time, UTC")] = None,
    end: Annotated[
        str | None, typer.Option(metavar="DATE", help="Until this time, UTC (default: now)")
    ] = None,
    data_dir: DataDir = None,
    log_level: LogLevel = None,
) -> None:
    """Fetch 1m candles into <data>/candles/<SYMBOL>-1m.csv (resumable, crash-safe)."""
    from btkit.cli.download_command import run_download
    from btkit.wiring.clocks import wall_time_ms

    _check_symbols(symbols)
    settings = _settings(data_dir=data_dir)
    _logging(settings, log_level, "WARNING")
    if days is not None and start is not None:
        _fail("give --days or --start, not both", 2)
    start_ms, end_ms = _times(start, end)
    if start_ms is None:
        start_ms = (end_ms or wall_time_ms()) - (days or 7) * 86_400_000
    _exit_with(
        lambda: run_download(
            settings, exchange, symbols, start_ms=start_ms, end_ms=end_ms, console=_console()
        ),
        interrupted="download stopped; the candles fetched so far are kept and the next "
        "run resumes after them.",
    )


@app.command(
    epilog=_examples(
        "btkit service BTCUSDT --strategy my-strategy --exchange binance "
        "--write btkit-my-strategy.service",
        "btkit service --template -s my-strategy -e binance --write /etc/systemd/system/"
        "btkit@.service",
        "btkit service BTCUSDT -s my-strategy -e binance --user "
        "--write ~/.config/systemd/user/btkit-my-strategy.service",
    )
)
def service(
    symbols: Annotated[
        list[str] | None,
        typer.Argument(metavar="SYMBOL", help="Symbols for the unit (none with --template)"),
    ] = None,
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", metavar="NAME", help="Strategy name")
    ] = "",
    exchange: Annotated[
        str,
        typer.Option(
            "--exchange", "-e", metavar="ID", help="'replay' (offline) or a ccxt id, e.g. binance"
        ),
    ] = "replay",
    write: Annotated[Path | None, typer.Option(help="Write the unit here too")] = None,
    template: Annotated[
        bool, _flag("--template", help="btkit@.service: one instance per symbol (%i)")
    ] = False,
    user: Annotated[bool, _flag("--user", help="A user unit (systemctl --user)")] = False,
    strategies_dir: StrategiesDir = None,
    data_dir: DataDir = None,
    logs_dir: LogsDir = None,
) -> None:
    """Print (and --write) a systemd unit that runs this `btkit live` command.

    The strategy, exchange and (for replay) candle files are checked first, as
    `btkit live` checks them, so the unit never starts into a crash loop.
    """
    from btkit.adapters.store.atomic import atomic_write_bytes
    from btkit.app.service import UnitSpec, btkit_command, check_unit, render_unit, unit_name
    from btkit.domain.errors import BtkitError

    _check_symbols(symbols)
    if not strategy:
        _fail("--strategy is required, e.g. --strategy my-strategy (see `btkit list`)", 2)
    if not symbols and not template:
        _fail("give the symbols, or --template for one instance per symbol", 2)
    if symbols and template:
        _fail("--template takes no symbols: the instance name is the symbol", 2)
    settings = _settings(strategies_dir=strategies_dir, data_dir=data_dir, logs_dir=logs_dir)
    _logging(settings, None, "WARNING")
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
    try:
        check_unit(spec, settings)
    except BtkitError as exc:
        _fail(f"{exc} No unit was written.", exc.exit_code)
    text = render_unit(spec)
    if write is not None:
        try:
            atomic_write_bytes(write.expanduser(), text.encode())
        except BtkitError as exc:
            _fail(f"cannot write the unit to {write}: {exc}", 2)
    typer.echo(text, nl=False)
    if write is not None:
        scope = "--user " if user else ""
        name = unit_name(spec)
        instance = name.replace("@", f"@{(symbols or ['BTCUSDT'])[0]}") if template else name
        typer.echo(
            f"# wrote {write}; install it as {name} in "
            f"{'~/.config/systemd/user/' if user else '/etc/systemd/system/'}, then: "
            f"systemctl {scope}daemon-reload && systemctl {scope}enable --now {instance}",
            err=True,
        )


@app.command(
    epilog=_examples(
        "btkit report my-strategy",
        "btkit report my-strategy --mode backtest --format json | jq .summary",
        "btkit report my-strategy --symbol ETHBTC --since 2018-01-25 --until 2018-01-27",
    )
)
def report(
    strategy: Annotated[str, typer.Argument(help="Strategy name")],
    mode: Annotated[str, typer.Option(help="live or backtest (the latest backtest run)")] = "live",
    symbol: Annotated[str | None, typer.Option(help="Only this symbol")] = None,
    since: Annotated[
        str | None, typer.Option(metavar="DATE", help="Signals opened from this time, UTC")
    ] = None,
    until: Annotated[
        str | None, typer.Option(metavar="DATE", help="Signals opened before this time")
    ] = None,
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

    from btkit.adapters.store.ledger import Query
    from btkit.cli.report_command import run_report

    if mode not in ("live", "backtest"):
        _fail(f"--mode must be live or backtest, not {mode!r}", 2)
    if report_format not in ("md", "json"):
        _fail(f"--format must be md or json, not {report_format!r}", 2)
    settings = _settings(data_dir=data_dir, logs_dir=logs_dir)
    _logging(settings, None, "WARNING")
    since_ms, until_ms = _times(since, until, ("--since", "--until"))
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
        ),
        interrupted="report stopped; the ledger is unchanged.",
    )


@app.command(
    epilog=_examples(
        "btkit events --follow                              (every live event, then new ones)",
        "btkit events -s my-strategy --since 1200 --follow  (after the last seq you handled)",
        "btkit events --symbol ETHBTC | jq -c '{seq, action, id: .signal.id}'",
    )
)
def events(
    strategy: Annotated[
        str | None, typer.Option("--strategy", "-s", metavar="NAME", help="Only this strategy")
    ] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol")] = None,
    since: Annotated[
        int,
        typer.Option(
            metavar="SEQ", min=0, help="Only events with a higher seq (the last one you handled)"
        ),
    ] = 0,
    follow: Annotated[
        bool, _flag("--follow", "-f", help="Keep printing new events until Ctrl-C / SIGTERM")
    ] = False,
    mode: Annotated[str, typer.Option(help="live or backtest")] = "live",
    data_dir: DataDir = None,
) -> None:
    """Print the ledger's events as JSON lines in seq order, each once (works while daemons run).

    Each line is an event as `btkit live --json` prints it, with its `seq`, `run_id`
    and `mode`. Keep the last seq you handled and pass it as --since to read on
    from there, exactly once, from another process.
    """
    from btkit.wiring.system import stop_latch

    latch = stop_latch()  # Ctrl-C, SIGTERM or SIGHUP end --follow cleanly, exit 0
    from btkit.app.events_command import run_events

    if mode not in ("live", "backtest"):
        _fail(f"--mode must be live or backtest, not {mode!r}", 2)
    settings = _settings(data_dir=data_dir)
    _logging(settings, None, "WARNING")
    _exit_with(
        lambda: run_events(
            settings,
            strategy=strategy,
            symbol=symbol,
            since=since,
            mode="live" if mode == "live" else "backtest",
            follow=follow,
            stop=latch.requested,
        ),
        interrupted="events stopped; the ledger is unchanged.",
    )


@app.command(
    epilog=_examples(
        "btkit positions",
        "btkit positions --json | jq '.positions[] | {symbol, unrealised_pnl}'",
    )
)
def positions(
    json_output: Annotated[bool, _flag("--json", help="Print one JSON document")] = False,
    data_dir: DataDir = None,
) -> None:
    """Show open positions (paper and live), their exchange orders and unrealised PnL.

    From the ledger's fills and orders; the price is the last candle close in
    <data>/candles at or before now (the output says which). Halted symbols are
    listed with their reason. Read-only: works while daemons run.
    """
    from btkit.cli.positions_command import run_positions

    settings = _settings(data_dir=data_dir)
    _logging(settings, None, "WARNING")
    _exit_with(
        lambda: run_positions(settings, as_json=json_output, console=_console()),
        interrupted="positions stopped; the ledger is unchanged.",
    )


# --- runs ------------------------------------------------------------------------

runs_app = typer.Typer(
    no_args_is_help=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(runs_app, name="runs")
RunStrategy = Annotated[
    str | None, typer.Option("--strategy", "-s", metavar="NAME", help="Only this strategy")
]


@runs_app.callback(
    invoke_without_command=True,
    epilog=_examples(
        "btkit runs                              (every stored backtest run)",
        "btkit runs -s my-strategy --json | jq '.[].id'",
        "btkit runs prune --keep 5               (the 5 newest per strategy stay)",
    ).removesuffix(f"\n\n{DATES}"),
)
def runs(
    ctx: typer.Context,
    strategy: RunStrategy = None,
    json_output: Annotated[bool, _flag("--json", help="Print the runs as JSON")] = False,
    data_dir: DataDir = None,
) -> None:
    """List stored backtest runs: id, strategy, symbols, period, created, trades, size.

    Each backtest is kept as one compact file in <data>/runs/, apart from the live
    ledger; `btkit report STRATEGY --mode backtest --run ID` reports one. Runs an
    older btkit kept in the ledger are listed too (size: in ledger).
    """
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console

    from btkit.cli.runs_command import run_list_runs

    settings = _settings(data_dir=data_dir)
    _logging(settings, None, "WARNING")
    _exit_with(
        lambda: run_list_runs(
            settings,
            strategy=strategy,
            as_json=json_output,
            stdout=_console(),
            stderr=Console(stderr=True, highlight=False),
        ),
        interrupted="runs stopped.",
    )


@runs_app.command(
    "prune",
    epilog=_examples(
        "btkit runs prune --keep 5                  (the 5 newest runs of each strategy stay)",
        "btkit runs prune --older-than 30 --dry-run (say what would go)",
        "btkit runs prune -s my-strategy --keep 1 --older-than 7",
        "btkit runs prune backtest-3f2a9c1d0b7e",
    ).removesuffix(f"\n\n{DATES}"),
)
def runs_prune(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="[RUN_ID]...", help="Remove exactly these runs (see `btkit runs`)"),
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option(metavar="N", min=0, help="Keep the N newest runs of each strategy"),
    ] = None,
    older_than: Annotated[
        float | None,
        typer.Option(metavar="DAYS", min=0.0, help="Remove only runs created over DAYS days ago"),
    ] = None,
    strategy: RunStrategy = None,
    dry_run: Annotated[bool, _flag("--dry-run", help="Only say what would be removed")] = False,
    data_dir: DataDir = None,
) -> None:
    """Remove old backtest runs (and files of runs killed while being stored).

    Give run ids, or --keep and/or --older-than; with both, a run goes only when
    both say so. Live history is never touched; old backtest runs in the ledger
    are pruned too.
    """
    from rich.console import Console

    from btkit.cli.runs_command import run_prune_runs

    settings = _settings(data_dir=data_dir)
    _logging(settings, None, "WARNING")
    _exit_with(
        lambda: run_prune_runs(
            settings,
            run_ids=run_ids or [],
            keep=keep,
            older_than=older_than,
            strategy=strategy,
            dry_run=dry_run,
            stdout=_console(),
            stderr=Console(stderr=True, highlight=False),
        ),
        interrupted="prune stopped; every run is either whole or removed.",
    )


@app.command(epilog=_examples("btkit status", "btkit status --data-dir /srv/btkit/data"))
def status(data_dir: DataDir = None) -> None:
    """Show the open signals in the state files, which have no daemon, and trading halts."""
    from btkit.cli.report_command import run_status

    settings = _settings(data_dir=data_dir)
    _exit_with(lambda: run_status(settings, _console()), interrupted="status stopped.")


@app.command("list", epilog=_examples("btkit list", "btkit list --strategies-dir ~/strategies"))
def list_command(
    strategies_dir: StrategiesDir = None,
    data_dir: DataDir = None,
) -> None:
    """List the strategies (and strategy files that fail to load) and the candle files."""
    from btkit.cli.listing import run_list

    settings = _settings(strategies_dir=strategies_dir, data_dir=data_dir)
    _logging(settings, None, "WARNING")
    _exit_with(lambda: run_list(settings, _console()), interrupted="list stopped.")


@app.command(epilog=_examples("btkit init", "btkit init my-bot && cd my-bot"))
def init(
    folder: Annotated[Path, typer.Argument(help="Folder to set up (created if missing)")] = Path(
        "."
    ),
) -> None:
    """Set up a folder: strategies/ with the example strategy, data/, logs/, an example .env.

    Existing files are never overwritten.
    """
    from btkit.cli.listing import run_init

    _exit_with(lambda: run_init(folder, _console()), interrupted="init stopped.")


_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@app.command("new-strategy", epilog=_examples("btkit new-strategy my-breakout"))
def new_strategy(
    name: Annotated[str, typer.Argument(help="Strategy name, e.g. my-breakout")],
    strategies_dir: StrategiesDir = None,
) -> None:
    """Write a commented strategy file to start from."""
    from importlib.resources import files

    from btkit.adapters.store.atomic import ensure_private_dir
    from btkit.domain.errors import BtkitError

    if not _NAME.match(name):
        _fail(f"strategy name {name!r}: use lower-case letters, digits, '-' and '_'", 2)
    settings = _settings(strategies_dir=strategies_dir)
    folder = settings.strategies_dir
    target = folder / f"{name.replace('-', '_')}.py"
    if target.exists():
        _fail(f"{target} already exists; pick another name or edit that file", 2)
    template = files("btkit").joinpath("templates/strategy.py.tmpl").read_text()
    try:
        ensure_private_dir(folder)
        target.write_text(template.replace("{{name}}", name))
    except BtkitError as exc:
        _fail(str(exc), exc.exit_code)
    except OSError as exc:
        _fail(f"cannot write {target}: {exc.strerror or exc}", 2)
    typer.echo(
        f"wrote {target}\n"
        f"try it offline:  btkit backtest ETHBTC --strategy {name}\n"
        f"                 btkit live ETHBTC --strategy {name}\n"
        f"no candles yet?  btkit download BTCUSDT --exchange binance --days 7  "
        f"(then use BTCUSDT)"
    )


def _crash_report(exc: BaseException) -> Path | None:
    """Keep an unexpected error's traceback in an owner-only file, secrets redacted."""
    import tempfile
    import traceback

    from btkit.cli.console import redact

    text = redact("".join(traceback.format_exception(exc)), _secrets)
    try:
        fd, name = tempfile.mkstemp(prefix="btkit-crash-", suffix=".txt")
        with open(fd, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError:
        return None
    return Path(name)


def _program_name() -> str:
    """What Click calls the program in usage lines: `btkit`, or `python -m btkit`."""
    package = getattr(sys.modules.get("__main__"), "__package__", None)
    return f"python -m {package}" if package else Path(sys.argv[0]).name


def _command_help(args: list[str]) -> bool:
    """Show `btkit COMMAND ... --help` from COMMAND alone; False: not such a request.

    Through the group, Typer first coerces the group's own unset options (--help,
    --install-completion, --show-completion) and builds a pydantic adapter for
    each: pydantic is imported, 0.2 s of a help page. The page is the same.
    """
    if len(args) < 2:
        return False
    own = args[1 : args.index("--")] if "--" in args else args[1:]
    if not any(arg in CONTEXT_SETTINGS["help_option_names"] for arg in own):
        return False
    command = getattr(typer.main.get_command(app), "commands", {}).get(args[0])
    if command is None:
        return False
    command.main(args[1:], prog_name=f"{_program_name()} {args[0]}", **CONTEXT_SETTINGS)
    return True


def main() -> None:
    """The `btkit` entry point: every error ends as one clear line, never a raw traceback."""
    try:
        if not _command_help(sys.argv[1:]):
            app()
    except Exception as exc:  # a bug: say so, keep the traceback for the report
        path = _crash_report(exc)
        where = f"the traceback is in {path}" if path else "no traceback could be saved"
        _print_error(
            f"unexpected internal error: {type(exc).__name__}: {exc}. This is a bug in btkit "
            f"({where}; please attach it to a bug report). Files are written atomically, so "
            "state, ledger and candles are whole."
        )
        sys.exit(1)
