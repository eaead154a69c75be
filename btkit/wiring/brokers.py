"""The live broker: real orders on a ccxt exchange, with the user's API keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from btkit.adapters.brokers.ccxt_broker import CcxtBroker
from btkit.adapters.exchanges.replay import REPLAY
from btkit.domain.errors import ConfigError
from btkit.ports import Broker
from btkit.settings import Settings
from btkit.wiring.exchanges import ccxt_options, check_exchange_id


def live_broker(
    settings: Settings,
    exchange_name: str,
    *,
    sandbox: bool,
    retry_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Broker:
    """A `CcxtBroker` for `exchange_name`; ConfigError (exit 2) without credentials."""
    if exchange_name == REPLAY:
        raise ConfigError(
            "--trade live needs a real exchange; the offline replay has no account. "
            "Use --trade paper with --exchange replay."
        )
    check_exchange_id(exchange_name, settings.candles_dir)
    options = ccxt_options(settings, exchange_name, sandbox=sandbox)
    if options.credentials is None:
        upper = exchange_name.upper()
        raise ConfigError(
            f"--trade live on {exchange_name} needs API keys: set "
            f"BTKIT_CREDENTIALS__{upper}__API_KEY and BTKIT_CREDENTIALS__{upper}__SECRET "
            "in the environment or .env (a key allowed to trade spot, never to withdraw)."
        )
    return CcxtBroker(exchange_name, options, sleep=retry_sleep)
