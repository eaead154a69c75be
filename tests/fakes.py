"""Fakes passed in through constructors (no patching of import paths): one per port."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from btkit.domain.errors import PermanentExchangeError
from btkit.domain.model import (
    MINUTE_MS,
    Candle,
    ClosedResult,
    OpenedResult,
    OpenSignal,
    PersistedState,
    StreamedResult,
)
from btkit.engine.intervals import interval_ms
from btkit.market.arrays import CandleArrays, aggregate
from btkit.ports import StartupInfo

T0 = 1_700_000_000_000 - 1_700_000_000_000 % (60 * MINUTE_MS)  # an hour boundary


def minute(n: int) -> int:
    return T0 + n * MINUTE_MS


def flat_candle(n: int, price: float, volume: float = 1.0) -> Candle:
    """A candle at minute n whose typical price is exactly `price`."""
    return Candle(minute(n), price, price, price, price, volume)


class ListExchange:
    """An exchange over a fixed list of 1m candles; `fail` makes fetches raise."""

    name = "fake"

    def __init__(
        self, candles: Sequence[Candle], fail: Callable[[], Exception | None] = lambda: None
    ):
        self.candles = sorted(candles, key=lambda c: c.timestamp)
        self.fail = fail
        self.fetches = 0
        self._series: dict[str, tuple[list[int], list[Candle]]] = {}
        """Interval -> (open times, candles), aggregated once: fetches stay cheap."""

    async def check_symbols(self, symbols: Sequence[str]) -> list[str]:
        return list(symbols)

    async def fetch_candles(
        self, symbol: str, interval: str, since_ms: int, limit: int
    ) -> list[Candle]:
        self.fetches += 1
        error = self.fail()
        if error is not None:
            raise error
        if interval not in self._series:
            step = interval_ms(interval)
            rows = self.candles
            if step != MINUTE_MS:
                fields = ("timestamp", "open", "high", "low", "close", "volume")
                arrays = CandleArrays(*[np.array([getattr(c, f) for c in rows]) for f in fields])
                rows = aggregate(arrays, step).to_candles()
            self._series[interval] = ([c.timestamp for c in rows], rows)
        times, rows = self._series[interval]
        first = bisect.bisect_left(times, since_ms)
        return rows[first : first + limit]

    async def close(self) -> None:
        pass


# --- One honest in-memory implementation per port (btkit/ports.py) -------------------
#
# Each fake does what the port promises, in memory, and remembers what it was asked,
# so a test can check *what* a driver did and *in which order* (a shared `journal`).


class FakeClock:
    """Clock: time jumps to each requested wake-up at once; records the sleeps.

    Fits one task. Several symbols in lockstep need the SimulatedClock adapter,
    which waits until every task sleeps before it moves time.
    """

    def __init__(self, now_ms: int) -> None:
        self.now = now_ms
        self.sleeps: list[int] = []
        self.participants = 0
        """join() minus leave(): back to 0 when every task that joined has left."""

    def now_ms(self) -> int:
        return self.now

    async def sleep_until(self, when_ms: int) -> None:
        self.sleeps.append(when_ms)
        self.now = max(self.now, when_ms)
        await asyncio.sleep(0)

    def join(self) -> None:
        self.participants += 1

    def leave(self) -> None:
        self.participants -= 1


class FakeExchange(ListExchange):
    """Exchange: ListExchange that knows its markets; unknown symbols raise as ccxt's do."""

    def __init__(self, candles: Sequence[Candle], markets: Sequence[str] = ("S",)) -> None:
        super().__init__(candles)
        self.markets = list(markets)
        self.closed = False

    async def check_symbols(self, symbols: Sequence[str]) -> list[str]:
        unknown = [s for s in symbols if s not in self.markets]
        if unknown:
            raise PermanentExchangeError(f"{self.name} has no market {unknown[0]!r}")
        return list(symbols)

    async def close(self) -> None:
        self.closed = True


class PriceMarket:
    """MarketData: the tick price is `prices[minute]`; candles are flat at that price.

    A minute missing from `prices` has no candle (average_price returns None).
    """

    def __init__(self, prices: Mapping[int, float]) -> None:
        self.prices = dict(prices)
        self.asked: list[int] = []

    async def candles(
        self, symbol: str, interval: str, limit: int, when: int
    ) -> tuple[Candle, ...]:
        step = interval_ms(interval)
        opens = range(when - limit * step, when, step)
        return tuple(
            Candle(t, p, p, p, p, 1.0) for t in opens if (p := self.prices.get(t)) is not None
        )

    async def average_price(self, symbol: str, when: int) -> float | None:
        self.asked.append(when)
        return self.prices.get(when)


class FakeSignalStore:
    """SignalStore: keeps every saved state; `fail` makes the next saves raise."""

    def __init__(
        self, state: PersistedState | None = None, journal: list[tuple[str, object]] | None = None
    ) -> None:
        self.state = state or PersistedState()
        self.saved: list[PersistedState] = []
        self.journal = journal if journal is not None else []
        self.fail: Exception | None = None

    def load(self) -> PersistedState:
        return self.state

    async def save(self, state: PersistedState) -> None:
        await asyncio.sleep(0)  # a real save may run off the loop: other tasks go on
        if self.fail is not None:
            raise self.fail
        self.state = state
        self.saved.append(state)
        self.journal.append(("save", state))


class FakeEventLog:
    """EventLog: assigns increasing sequence numbers and remembers every event.

    Recording the same (signal id, action) again returns its first number, as the
    ledger does when a restart replays an event.
    """

    def __init__(self, journal: list[tuple[str, object]] | None = None) -> None:
        self.events: list[tuple[int, str, OpenSignal | ClosedResult]] = []
        self.journal = journal if journal is not None else []
        self._seqs: dict[tuple[str, str], int] = {}
        self._closed_at: dict[tuple[str, int], int] = {}
        self.delivered: dict[str, int] = {}
        """Symbol -> highest seq the consumer took."""

    async def record_opened(self, signal: OpenSignal) -> int:
        return await self._record("opened", signal.id, signal)

    async def record_closed(self, result: ClosedResult) -> int:
        self._closed_at.setdefault(
            (result.signal.id, result.signal.timestamp), result.close_timestamp
        )
        return await self._record("closed", result.signal.id, result)

    def closed_at(self, signal_id: str, opened_at: int) -> int | None:
        return self._closed_at.get((signal_id, opened_at))

    def undelivered(
        self, strategy: str, exchange: str, symbols: Sequence[str]
    ) -> list[StreamedResult]:
        """Events above each symbol's watermark, rebuilt and flagged, in seq order."""
        found: list[StreamedResult] = []
        for seq, _, event in self.events:
            if isinstance(event, ClosedResult):
                result: StreamedResult = dataclasses.replace(event, seq=seq, redelivered=True)
            else:
                result = OpenedResult(
                    strategy_name=event.strategy_name,
                    exchange_name=event.exchange_name,
                    symbol=event.symbol,
                    timestamp=event.timestamp,
                    current_price=event.price_open,
                    signal=event,
                    seq=seq,
                    redelivered=True,
                )
            mine = (result.strategy_name, result.exchange_name) == (strategy, exchange)
            if mine and result.symbol in symbols and seq > self.delivered.get(result.symbol, 0):
                found.append(result)
        return found

    async def mark_delivered(self, result: StreamedResult) -> None:
        await asyncio.sleep(0)
        if result.seq is not None:
            previous = self.delivered.get(result.symbol, 0)
            self.delivered[result.symbol] = max(previous, result.seq)

    async def _record(self, action: str, signal_id: str, event: OpenSignal | ClosedResult) -> int:
        await asyncio.sleep(0)
        key = (signal_id, action)
        if key not in self._seqs:
            self._seqs[key] = len(self.events) + 1
            self.events.append((self._seqs[key], action, event))
        self.journal.append((action, signal_id))
        return self._seqs[key]


class RecordingPrinter:
    """EventPrinter: remembers the start-up panel, every event and the last line."""

    def __init__(self) -> None:
        self.startups: list[StartupInfo] = []
        self.events: list[StreamedResult] = []
        self.finishes: list[str] = []

    def startup(self, info: StartupInfo) -> None:
        self.startups.append(info)

    def event(self, result: StreamedResult) -> None:
        self.events.append(result)

    def finish(self, message: str) -> None:
        self.finishes.append(message)
