"""Trading wiring: one Trader per symbol over a broker and the ledger, and the safety
check that stands between `--trade live` and real money."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from btkit.adapters.exchanges.replay import REPLAY
from btkit.domain.errors import ConfigError
from btkit.domain.model import OpenSignal
from btkit.domain.orders import TradeMode
from btkit.drivers.runner import NO_TRADING
from btkit.drivers.trader import OpenPositions, Trader, TraderOptions
from btkit.engine.risk import RiskLimits
from btkit.ports import Broker, Clock, OrderLog, Trading
from btkit.settings import Settings

log = logging.getLogger(__name__)


def trader_options(settings: Settings) -> TraderOptions:
    return TraderOptions(
        limits=RiskLimits(
            max_open_positions=settings.max_open_positions,
            max_stake=settings.max_stake,
            daily_loss_limit=settings.daily_loss_limit,
        ),
        stake=settings.stake,
        reconcile_ms=round(settings.reconcile_seconds * 1000),
        lookups=max(settings.retry_max, 1),
        backoff_seconds=settings.retry_base_seconds,
    )


def build_trading(
    settings: Settings,
    *,
    broker: Broker,
    order_log: OrderLog,
    symbols: Sequence[str],
    clock: Clock,
) -> dict[str, Trading]:
    """One Trader per symbol; they share one count of open positions (a limit across all).
    `--trade off`: NoTrading for each (signals are announced only)."""
    if settings.trade == "off":
        return {symbol: NO_TRADING for symbol in symbols}
    if broker.mode != settings.trade:
        raise ValueError(f"a {broker.mode} broker wired for --trade {settings.trade}")
    positions = OpenPositions()
    options = trader_options(settings)
    return {
        symbol: Trader(
            symbol,
            broker=broker,
            order_log=order_log,
            clock=clock,
            positions=positions,
            options=options,
        )
        for symbol in symbols
    }


def check_trade_mode(settings: Settings, exchange_name: str, sandbox: bool) -> None:
    """Refuse `--trade live` unless it can only mean what the user wants: ConfigError
    (exit 2) saying what would happen and how to confirm it."""
    if settings.trade != "live":
        return
    if exchange_name == REPLAY:
        raise ConfigError(
            "--trade live needs a real exchange; 'replay' has no account. Use --trade paper "
            "with replay, or name an exchange such as binance."
        )
    keys = settings.credentials.get(exchange_name.lower())
    blank = keys is not None and not (
        keys.api_key.get_secret_value().strip() and keys.secret.get_secret_value().strip()
    )
    if keys is None or blank:
        prefix = f"BTKIT_CREDENTIALS__{exchange_name.upper()}__"
        raise ConfigError(
            f"--trade live on {exchange_name} needs API keys: set {prefix}API_KEY and "
            f"{prefix}SECRET (in the environment or .env)."
        )
    if not settings.confirm_live:
        where = f"{exchange_name} (sandbox)" if sandbox else exchange_name
        stake = (
            f"{settings.stake:g} quote per signal"
            if settings.stake is not None
            else "10 % of the free quote balance per signal"
        )
        limit = f", at most {settings.max_stake:g}" if settings.max_stake is not None else ""
        raise ConfigError(
            f"--trade live would place real orders on {where} with stake {stake}{limit}, up "
            f"to {settings.max_open_positions} open positions. To confirm, add --confirm-live "
            "or set BTKIT_CONFIRM_LIVE=1."
        )


def warn_untraded_positions(
    settings: Settings,
    order_log: Callable[[TradeMode], OrderLog],
    open_signals: Sequence[tuple[str, OpenSignal | None]],
) -> None:
    """`--trade off` on a signal that holds a paper or live position still only announces
    it (as always), but its close will sell nothing and the next trading run halts the
    symbol: say so at start, while the user can still choose the right mode."""
    if settings.trade != "off":
        return
    for mode in ("paper", "live"):
        orders = order_log(mode)
        for symbol, signal in open_signals:
            if signal is not None and signal.id in orders.open_trades(symbol):
                log.warning(
                    "%s: the open signal %s holds a %s position (see btkit positions), but "
                    "this run has --trade off: it is monitored and announced only, its close "
                    "sells nothing, and the next --trade %s run will halt %s. Stop and start "
                    "again with --trade %s to keep trading it.",
                    symbol,
                    signal.id[:8],
                    mode,
                    mode,
                    symbol,
                    mode,
                )
