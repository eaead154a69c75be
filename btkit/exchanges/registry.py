"""Turn an exchange name into an exchange; unknown names list close matches."""

from __future__ import annotations

import difflib
from pathlib import Path

from btkit.clock import Clock
from btkit.errors import ConfigError
from btkit.exchanges.base import Exchange
from btkit.exchanges.ccxt_exchange import CcxtExchange, known_exchange_ids
from btkit.exchanges.replay import REPLAY, ReplayExchange


def open_exchange(name: str, *, candles_dir: Path, clock: Clock) -> Exchange:
    if name == REPLAY:
        return ReplayExchange(candles_dir, clock)
    known = known_exchange_ids()
    if name not in known:
        close = difflib.get_close_matches(name, [REPLAY, *known], n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"Unknown exchange {name!r}.{hint} Use 'replay' (offline, candle files in "
            f"{candles_dir}) or a ccxt exchange id such as binance, bybit, kraken."
        )
    return CcxtExchange(name)
