"""`btkit download`: 1m candles from a ccxt exchange into `<data>/candles/<SYMBOL>-1m.csv`.

Resumable: it starts after the last candle already on disk (CSV or part
file), so only what is missing is fetched. Only finished candles are written.
A failed request is retried until the outage budget is spent; whatever was
fetched before a failure is still merged into the CSV, never left in `.part`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from btkit.adapters.exchanges.replay import REPLAY
from btkit.domain.errors import BtkitError, ConfigError
from btkit.domain.model import MINUTE_MS
from btkit.engine.intervals import floor_to
from btkit.ports import Exchange
from btkit.settings import Settings
from btkit.wiring.candles import open_candle_appender
from btkit.wiring.clocks import wall_clock
from btkit.wiring.exchanges import open_exchange

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int, int], None]
"""(symbol, first minute to fetch, reached, end)."""


@dataclass(frozen=True, slots=True)
class Downloaded:
    symbol: str
    added: int
    gaps: int
    path: str


async def download(
    settings: Settings,
    exchange_id: str,
    symbols: Sequence[str],
    *,
    start_ms: int,
    end_ms: int | None,
    progress: Progress,
) -> list[Downloaded]:
    if exchange_id == REPLAY:
        raise ConfigError("download fetches from a real exchange: give a ccxt id, e.g. binance.")
    clock = wall_clock()
    exchange = open_exchange(exchange_id, settings=settings, clock=clock, persistent=True)
    try:
        resolved = await exchange.check_symbols(symbols)
        now = floor_to(clock.now_ms(), MINUTE_MS)
        end = now if end_ms is None else min(floor_to(end_ms, MINUTE_MS), now)
        return [await _one(exchange, settings, s, start_ms, end, progress) for s in resolved]
    finally:
        await exchange.close()


async def _one(
    exchange: Exchange,
    settings: Settings,
    symbol: str,
    start_ms: int,
    end: int,
    progress: Progress,
) -> Downloaded:
    appender = open_candle_appender(settings, symbol)
    last = appender.last_timestamp()
    first = floor_to(start_ms, MINUTE_MS)
    cursor = first if last is None else max(first, last + MINUTE_MS)
    page = settings.exchange_page_limit
    gaps = 0
    previous = last
    try:
        while cursor < end:
            candles = [
                c
                for c in await exchange.fetch_candles(symbol, "1m", cursor, page)
                if cursor <= c.timestamp < end
            ]
            if not candles:
                break  # the exchange has nothing more in the range
            for candle in candles:
                if previous is not None and candle.timestamp - previous > MINUTE_MS:
                    gaps += 1
                previous = candle.timestamp
            appender.append(candles)
            cursor = candles[-1].timestamp + MINUTE_MS
            progress(symbol, first, cursor, end)
    except BaseException:
        try:
            appender.commit()  # what came before the failure is good: keep it in the CSV
        except BtkitError as exc:
            log.error("%s: fetched candles stay in %s: %s", symbol, appender.part, exc)
        raise
    progress(symbol, first, end, end)
    return Downloaded(symbol, appender.commit(), gaps, str(appender.path))
