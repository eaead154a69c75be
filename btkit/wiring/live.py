"""Wiring for `btkit live` and `Live.run`: from settings and names to a running session.

Here (and in the rest of `btkit.wiring`) the concrete adapters are chosen:
exchange, clock, state files, ledger, report writer; every other module
receives its collaborators.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlparse

from btkit.adapters.clock import SimulatedClock
from btkit.adapters.exchanges.ccxt_exchange import CcxtExchange
from btkit.adapters.exchanges.replay import REPLAY, ReplayExchange
from btkit.adapters.exchanges.retry import StopAwareSleep
from btkit.adapters.report.builder import LiveReportWriter
from btkit.adapters.store.atomic import check_writable
from btkit.adapters.store.signal_state import JsonSignalStore
from btkit.domain.errors import ConfigError, StorageError
from btkit.domain.model import MINUTE_MS
from btkit.domain.timefmt import file_stamp, format_time
from btkit.drivers.live import LiveOptions, LiveSession
from btkit.drivers.runner import SymbolRunner
from btkit.engine.frames import default_start
from btkit.engine.intervals import floor_to
from btkit.engine.params import Value
from btkit.market.service import ExchangeMarket
from btkit.ports import Broker, Clock, Exchange, MarketData, OrderLog, Trading
from btkit.settings import Settings
from btkit.strategies import StrategyDef, resolve_strategy
from btkit.wiring.brokers import live_broker
from btkit.wiring.clocks import simulated_clock, wall_clock, wall_time_ms
from btkit.wiring.exchanges import open_exchange
from btkit.wiring.ledger import open_ledger
from btkit.wiring.paper import paper_broker, set_aside_wallet
from btkit.wiring.trading import build_trading, check_trade_mode, warn_untraded_positions

log = logging.getLogger(__name__)

STATE_WRITERS = 4
"""Threads that write and fsync state files: saves of different symbols overlap."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    start_ms: int | None = None
    """Simulated time from here (default for replay: data start plus warm-up)."""
    end_ms: int | None = None
    """Last simulated tick (default: the data's end, or now on a real exchange)."""
    speed: float | None = None
    """Simulated minutes per wall second; None runs as fast as possible."""
    restart: bool = False
    sandbox: bool = False
    params: tuple[tuple[str, Value], ...] | None = None
    """Parameter values to run the strategy with (`--params NAME`); None: as declared."""


@dataclass
class LiveSetup:
    session: LiveSession
    strategy: StrategyDef
    symbols: list[str]
    replay_start_ms: int | None = None
    exchange_label: str = ""
    already_finished: bool = False
    """A resumed replay whose saved cursor is at the end of its history."""
    trade_detail: str = ""
    """What the start-up panel says about trading (stake, wallet or account balances)."""


@asynccontextmanager
async def open_live(
    settings: Settings,
    symbols: Sequence[str],
    strategy_name: str,
    exchange_name: str,
    *,
    options: RunOptions = RunOptions(),
    on_cycle: Callable[[LiveSession], None] | None = None,
) -> AsyncIterator[LiveSetup]:
    """Load the strategy, open the exchange, lock and restore state; release all on exit.

    Replay, or `--start` on a real exchange, runs on simulated time over history;
    a simulated run on a real exchange is labelled `<exchange>-sim`, so its state
    files and ledger events never mix with the real live run's.
    """
    _check_arguments(symbols, exchange_name, options)
    check_trade_mode(settings, exchange_name, options.sandbox)  # before anything is touched
    is_replay = exchange_name == REPLAY
    strategy = resolve_strategy(settings.strategies_dir, strategy_name)
    if options.params is not None:
        strategy = strategy.bind(dict(options.params))
    for folder in (settings.signal_dir, settings.logs_dir):
        check_writable(folder)  # a read-only or full disk is found before any trading
    ensure_file_descriptors(len(symbols))
    simulated = is_replay or options.start_ms is not None
    _check_live_clock(settings, simulated)
    clock: Clock = simulated_clock(options.speed) if simulated else wall_clock()
    retry_sleep = StopAwareSleep()
    async with AsyncExitStack() as stack:
        exchange = open_exchange(
            exchange_name,
            settings=settings,
            clock=clock,
            sandbox=options.sandbox,
            persistent=simulated,  # history can wait for the exchange: never skip a minute
            retry_sleep=retry_sleep,
        )
        stack.push_async_callback(exchange.close)
        resolved = await exchange.check_symbols(symbols)
        label = exchange.name if is_replay or not simulated else f"{exchange.name}-sim"
        writers = ThreadPoolExecutor(STATE_WRITERS, thread_name_prefix="btkit-state")
        stores = [
            _locked_store(stack, settings, label, strategy.name, s, writers) for s in resolved
        ]
        stack.callback(writers.shutdown)  # before the locks are released: writes end first
        if options.restart:
            _set_aside(stores)
        ledger = open_ledger(settings)
        stack.callback(ledger.close)
        if options.restart:  # a new run: reused signal ids never meet the old run's events
            run_id = ledger.start_run(strategy.name, label, wall_time_ms())
            log.info("--restart: recording into the new ledger run %s", run_id)
        else:
            ledger.resume_run(strategy.name, label)
        reports = LiveReportWriter(ledger, settings.logs_dir, strategy.name, time.monotonic)
        stack.callback(reports.flush)
        market = ExchangeMarket(exchange, report_gaps=not is_replay)
        trading, trade_detail = await _open_trading(
            stack,
            settings,
            TradingContext(
                exchange, exchange_name, label, strategy.name, simulated, options.sandbox
            ),
            market=market,
            clock=clock,
            order_log=lambda: ledger.order_log(strategy.name, label, settings.trade),
            symbols=resolved,
            fresh_wallet=options.restart,
        )
        runners = [
            SymbolRunner(
                symbol=symbol,
                strategy=strategy,
                exchange_name=label,
                market=market,
                store=store,
                costs=settings.costs,
                ledger=ledger,
                trading=trading.get(symbol),
                strategy_timeout=settings.strategy_timeout_seconds,
                warn_after_failures=settings.strategy_warn_after,
            )
            for symbol, store in zip(resolved, stores, strict=True)
        ]
        cursors = [r.last_tick for r in runners if r.last_tick is not None]
        if isinstance(clock, SimulatedClock) and cursors:
            clock.jump_to(min(cursors))  # trading's restore acts at the saved time, not at 0
        for runner in runners:
            await runner.restore()  # before the frame and the start-up panel read the cursor
        warn_untraded_positions(
            settings,
            lambda mode: ledger.order_log(strategy.name, label, mode),
            [(r.symbol, r.signal) for r in runners],
        )
        session_options = LiveOptions(
            settle_ms=0 if simulated else int(settings.tick_settle_seconds * 1000),
            outage_budget_ms=int(settings.outage_budget_minutes * MINUTE_MS),
            heartbeat_seconds=settings.heartbeat_seconds,
            symbol_restarts=settings.symbol_restarts,
            warn_after=settings.strategy_warn_after,
        )
        ends: dict[str, int] = {}
        start_ms = None
        already_finished = False
        if isinstance(clock, SimulatedClock):
            start_ms, ends = _simulated_frame(exchange, runners, strategy, options)
            clock.jump_to(start_ms)
            already_finished = _warn_if_finished(runners, ends)
        session = LiveSession(
            runners,
            clock,
            options=session_options,
            ends=ends,
            on_closed=lambda _: reports.on_closed(),
            on_stop=retry_sleep.stop.set,
            on_cycle=on_cycle,
            ledger=ledger,  # re-delivers what a crash kept from the consumer
        )
        # Start-up's objects (modules, strategies, candle files) live until exit: keep the
        # loop's full collections from scanning them all (0.1-0.5 s with 1 000 symbols).
        gc.collect()
        gc.freeze()
        stack.callback(gc.unfreeze)
        yield LiveSetup(
            session, strategy, resolved, start_ms, label, already_finished, trade_detail
        )


@dataclass(frozen=True, slots=True)
class TradingContext:
    exchange: Exchange
    exchange_name: str
    label: str
    strategy: str
    simulated: bool
    sandbox: bool


async def _open_trading(
    stack: AsyncExitStack,
    settings: Settings,
    where: TradingContext,
    *,
    market: MarketData,
    clock: Clock,
    order_log: Callable[[], OrderLog],
    symbols: Sequence[str],
    fresh_wallet: bool,
) -> tuple[dict[str, Trading], str]:
    """The broker of `--trade paper|live` and one Trader per symbol ({} when off)."""
    if settings.trade == "off":
        return {}, ""
    exchange = where.exchange
    broker: Broker
    if settings.trade == "live":
        broker = live_broker(settings, where.exchange_name, sandbox=where.sandbox)
    else:
        real = exchange if isinstance(exchange, CcxtExchange) else None
        if fresh_wallet:
            set_aside_wallet(settings, label=where.label, strategy=where.strategy)
        broker = paper_broker(
            settings,
            exchange_name=where.exchange_name,
            label=where.label,
            strategy=where.strategy,
            market=market,
            clock=clock,
            books=None if where.simulated else real,  # history has no order book
            rules=real,
        )
    stack.push_async_callback(broker.close)
    balances = await broker.balances()
    held = [f"{b.total:g} {code}" for code, b in sorted(balances.items()) if b.total > 0]
    stake = (
        f"{settings.stake:g} quote per signal"
        if settings.stake is not None
        else "10 % of the free quote balance per signal"
    )
    wallet = "paper wallet" if settings.trade == "paper" else f"{where.exchange_name} account"
    detail = f"stake {stake}; {wallet}: {', '.join(held[:6]) or 'empty'}"
    trading = build_trading(
        settings, broker=broker, order_log=order_log(), symbols=symbols, clock=clock
    )
    return trading, detail


def _check_live_clock(settings: Settings, simulated: bool) -> None:
    """Real orders are placed now: a replay of history may only trade a local stand-in."""
    if settings.trade != "live" or not simulated:
        return
    host = urlparse(settings.exchange_url or "").hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(
            "--trade live places real orders now, on the wall clock; --start/--end replay "
            "history. Drop --start/--end to trade live, or use --trade paper to trade the "
            "replay on a simulated wallet."
        )


def ensure_file_descriptors(symbols: int) -> None:
    """Each symbol holds its state file's lock open: raise the soft limit if needed."""
    needed = symbols + 256  # plus the ledger, sockets, candle files, Python itself
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ConfigError(
            f"{symbols} symbols need about {needed} open files, but this process may open "
            f"at most {hard}. Raise the limit (LimitNOFILE= in the systemd unit, or "
            "ulimit -n), or split the symbols over several daemons."
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _check_arguments(symbols: Sequence[str], exchange_name: str, options: RunOptions) -> None:
    if not symbols:
        raise ConfigError("Give at least one symbol, e.g. `btkit live BTCUSDT ...`.")
    if len(set(symbols)) != len(symbols):
        raise ConfigError(f"A symbol is given twice: {' '.join(symbols)}.")
    needs_simulation = options.restart or options.end_ms is not None
    if exchange_name != REPLAY and options.start_ms is None and needs_simulation:
        raise ConfigError("--end and --restart need simulated time: replay, or --start.")
    start, end = options.start_ms, options.end_ms
    if start is not None and end is not None and start > end:
        raise ConfigError("--start is after --end.")


def _simulated_frame(
    exchange: Exchange,
    runners: Sequence[SymbolRunner],
    strategy: StrategyDef,
    options: RunOptions,
) -> tuple[int, dict[str, int]]:
    """Start and per-symbol last tick of a simulated run (resuming from saved cursors)."""
    if isinstance(exchange, ReplayExchange):
        start = _replay_start(exchange, runners, strategy, options.start_ms)
        ends = {r.symbol: exchange.last_finish(r.symbol) for r in runners}
    else:
        cursors = [r.last_tick + MINUTE_MS for r in runners if r.last_tick is not None]
        requested = floor_to(options.start_ms or 0, MINUTE_MS)
        start = min(cursors) if cursors else requested
        now = floor_to(wall_time_ms(), MINUTE_MS)  # history only: never the future
        ends = {r.symbol: now for r in runners}
    if options.end_ms is not None:
        ends = {symbol: min(end, options.end_ms) for symbol, end in ends.items()}
    return start, ends


def _warn_if_finished(runners: Sequence[SymbolRunner], ends: dict[str, int]) -> bool:
    """A resumed replay with nothing left to replay says so, instead of `0 opened, 0 closed`."""
    finished = [
        r.symbol for r in runners if r.last_tick is not None and r.last_tick >= ends[r.symbol]
    ]
    if finished and len(finished) == len(runners):
        log.warning(
            "the saved replay of %s is already at its end (last tick %s): nothing to replay. "
            "Run again with --restart to replay from the start (the saved state is kept "
            "aside).",
            " ".join(finished),
            format_time(max(r.last_tick or 0 for r in runners)),
        )
        return True
    return False


def _locked_store(
    stack: AsyncExitStack,
    settings: Settings,
    exchange: str,
    strategy: str,
    symbol: str,
    writers: Executor,
) -> JsonSignalStore:
    store = JsonSignalStore(
        settings.signal_dir,
        exchange_name=exchange,
        strategy_name=strategy,
        symbol=symbol,
        now_ms=wall_time_ms,
        executor=writers,
    )
    store.acquire()
    stack.callback(store.release)
    return store


def _set_aside(stores: Sequence[JsonSignalStore]) -> None:
    """--restart: keep the old replay state under another name rather than delete it."""
    stamp = file_stamp(wall_time_ms())
    for store in stores:
        if store.path.exists():
            aside = store.path.with_name(f"{store.path.name}.restart-{stamp}")
            try:
                os.replace(store.path, aside)
            except OSError as exc:
                raise StorageError(f"Cannot move {store.path} aside: {exc.strerror}.") from exc
            log.info("--restart: previous replay state kept as %s", aside)


def _replay_start(
    exchange: ReplayExchange,
    runners: Sequence[SymbolRunner],
    strategy: StrategyDef,
    requested: int | None,
) -> int:
    cursors = [r.last_tick + MINUTE_MS for r in runners if r.last_tick is not None]
    if cursors:
        start = min(cursors)
        if requested is not None and floor_to(requested, MINUTE_MS) != start:
            raise ConfigError(
                f"--start {format_time(requested)} conflicts with the saved replay, which "
                f"resumes at {format_time(start)}. Add --restart to replay from --start "
                "(the saved state is kept aside), or drop --start to resume."
            )
        return start
    if requested is not None:
        return floor_to(requested, MINUTE_MS)
    return default_start((exchange.first_open(r.symbol) for r in runners), strategy.warmup_minutes)
