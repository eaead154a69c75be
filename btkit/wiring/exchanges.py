"""Turn an exchange name into an exchange; unknown names list close matches."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Awaitable, Callable
from pathlib import Path

from btkit.adapters.exchanges.ccxt_exchange import (
    CcxtExchange,
    CcxtOptions,
    Credentials,
    known_exchange_ids,
)
from btkit.adapters.exchanges.replay import REPLAY, ReplayExchange
from btkit.adapters.exchanges.retry import RetryPolicy
from btkit.domain.errors import ConfigError
from btkit.ports import Clock, Exchange
from btkit.settings import Settings


def ccxt_options(
    settings: Settings, exchange_id: str, *, sandbox: bool = False, persistent: bool = False
) -> CcxtOptions:
    """`persistent`: retry until the outage budget is spent (simulated runs, downloads)."""
    keys = settings.credentials.get(exchange_id.lower())
    credentials = None
    if keys is not None:
        credentials = Credentials(
            keys.api_key.get_secret_value(),
            keys.secret.get_secret_value(),
            keys.password.get_secret_value() if keys.password else None,
        )
    return CcxtOptions(
        sandbox=sandbox,
        base_url=settings.exchange_url,
        timeout_ms=int(settings.exchange_timeout_seconds * 1000),
        rate_limit_ms=settings.exchange_rate_limit_ms,
        page_limit=settings.exchange_page_limit,
        retry=RetryPolicy(
            settings.retry_max,
            settings.retry_base_seconds,
            settings.retry_cap_seconds,
            budget_seconds=settings.outage_budget_minutes * 60,
            persistent=persistent,
        ),
        credentials=credentials,
    )


def check_exchange_id(name: str, candles_dir: Path) -> None:
    known = known_exchange_ids()
    if name not in known:
        close = difflib.get_close_matches(name, [REPLAY, *known], n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"Unknown exchange {name!r}.{hint} Use 'replay' (offline, candle files in "
            f"{candles_dir}) or a ccxt exchange id such as binance, bybit, kraken."
        )


def open_exchange(
    name: str,
    *,
    settings: Settings,
    clock: Clock,
    sandbox: bool = False,
    persistent: bool = False,
    retry_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Exchange:
    candles_dir = settings.candles_dir
    if name == REPLAY:
        if sandbox:
            raise ConfigError("--sandbox applies to real exchanges, not to replay.")
        return ReplayExchange(candles_dir, clock)
    check_exchange_id(name, candles_dir)
    options = ccxt_options(settings, name, sandbox=sandbox, persistent=persistent)
    return CcxtExchange(name, clock, options, sleep=retry_sleep)
