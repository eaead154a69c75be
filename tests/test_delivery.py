"""At-least-once delivery: ledger sequence numbers, the delivery watermark, redelivery."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import sqlite3

from rich.console import Console

from btkit import Signal, strategy
from btkit.adapters.clock import SimulatedClock
from btkit.adapters.store.ledger import SqliteLedger
from btkit.adapters.store.signal_state import MemorySignalStore
from btkit.cli.console import JsonPrinter, PlainPrinter, RichPrinter
from btkit.domain.model import ClosedResult, OpenedResult, OpenSignal, Pnl
from btkit.drivers.live import LiveOptions, LiveSession
from btkit.drivers.runner import SymbolRunner
from btkit.engine.pnl import Costs
from btkit.market.service import ExchangeMarket
from tests.fakes import ListExchange, flat_candle, minute


def signal(n: int, symbol: str = "ETHBTC", strat: str = "strat") -> OpenSignal:
    return OpenSignal(
        f"sig-{n}", "long", 100.0, 110.0, 95.0, 60, symbol, strat, "replay", minute(n)
    )


def opened(sig: OpenSignal, seq: int | None = None) -> OpenedResult:
    return OpenedResult(
        strategy_name=sig.strategy_name,
        exchange_name=sig.exchange_name,
        symbol=sig.symbol,
        timestamp=sig.timestamp,
        current_price=sig.price_open,
        signal=sig,
        seq=seq,
    )


def closed(sig: OpenSignal, seq: int | None = None) -> ClosedResult:
    when = sig.timestamp + 20 * 60_000
    return ClosedResult(
        strategy_name=sig.strategy_name,
        exchange_name=sig.exchange_name,
        symbol=sig.symbol,
        timestamp=when,
        current_price=110.0,
        signal=sig,
        close_reason="take_profit",
        close_timestamp=when,
        pnl=Pnl(1.5, sig.price_open, 110.0),
        seq=seq,
    )


def test_sequence_numbers_increase_across_connections_and_survive_replays(tmp_path):
    path = tmp_path / "btkit.sqlite"
    first, second = SqliteLedger(path), SqliteLedger(path)  # as two daemons sharing the ledger
    seqs = []
    for n in range(6):
        writer = first if n % 2 else second
        seqs.append(writer.write_opened(signal(n, symbol=f"S{n}")))
    assert seqs == list(range(1, 7))
    again = first.write_opened(signal(2, symbol="S2"))  # a crash replay records it again
    assert again == 3
    assert first.write_closed(closed(signal(2, symbol="S2"))) == 7
    first.record_backtest("strat", "replay", 1, [opened(signal(9))], [closed(signal(9))], {})
    db = sqlite3.connect(path)
    stored = [r[0] for r in db.execute("SELECT seq FROM events ORDER BY rowid")]
    db.close()
    assert stored == list(range(1, 10))  # the backtest batch got seqs too


def test_migration_numbers_old_rows_in_order_and_counts_them_delivered(tmp_path):
    path = tmp_path / "btkit.sqlite"
    ledger = SqliteLedger(path)
    ledger.write_opened(signal(1))
    ledger.write_closed(closed(signal(1)))
    ledger.write_opened(signal(2, symbol="LTCBTC"))
    ledger.close()
    db = sqlite3.connect(path)  # back to schema 1, as an older btkit left it
    db.executescript(
        "DROP TABLE orders; DROP TABLE fills; DROP TABLE halts; "  # schema 3
        "DROP TABLE deliveries; DROP INDEX events_by_seq; DROP INDEX events_by_stream; "
        "ALTER TABLE events DROP COLUMN seq; PRAGMA user_version=1;"
    )
    db.close()
    ledger = SqliteLedger(path)
    assert ledger.undelivered("strat", "replay", ["ETHBTC", "LTCBTC"]) == []
    assert ledger.write_opened(signal(3)) == 4
    assert [e.seq for e in ledger.undelivered("strat", "replay", ["ETHBTC"])] == [4]


def test_undelivered_rebuilds_the_events_as_streamed_above_the_watermark(tmp_path):
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    events = []
    for n in range(3):
        sig = signal(n, symbol=("ETHBTC", "LTCBTC")[n % 2])
        events.append(opened(sig, ledger.write_opened(sig)))
        events.append(closed(sig, ledger.write_closed(closed(sig))))
    other = signal(7, strat="other")
    ledger.write_opened(other)  # another strategy's daemon: not this stream's
    redelivered = [dataclasses.replace(e, redelivered=True) for e in events]
    assert ledger.undelivered("strat", "replay", ["ETHBTC", "LTCBTC"]) == redelivered
    assert [(e.symbol, e.seq) for e in events[4:]] == [("ETHBTC", 5), ("ETHBTC", 6)]
    asyncio.run(ledger.mark_delivered(events[4]))  # ETHBTC up to seq 5
    asyncio.run(ledger.mark_delivered(events[0]))  # late and lower: never moves back
    assert ledger.undelivered("strat", "replay", ["ETHBTC", "LTCBTC"]) == [
        e for e in redelivered if e.symbol == "LTCBTC" or e.seq == 6
    ]
    assert ledger.undelivered("strat", "replay", ["XLMBTC"]) == []
    assert [e.signal.id for e in ledger.undelivered("other", "replay", ["ETHBTC"])] == ["sig-7"]


LONG = Signal("long", 100.0, 150.0, 50.0, 3)


async def every_minute(symbol: str) -> Signal:
    return LONG


def make_session(ledger: SqliteLedger, stores: dict[str, MemorySignalStore], start: int):
    definition = strategy("strat", interval="1m")(every_minute)
    exchange = ListExchange([flat_candle(n, 100.0) for n in range(200)])
    market = ExchangeMarket(exchange)
    runners = [
        SymbolRunner(
            symbol=symbol,
            strategy=definition,
            exchange_name="replay",
            market=market,
            store=store,
            costs=Costs(),
            ledger=ledger,
        )
        for symbol, store in stores.items()
    ]
    return LiveSession(
        runners,
        SimulatedClock(minute(start)),
        options=LiveOptions(settle_ms=0),
        ends={s: minute(60) for s in stores},
        ledger=ledger,
    )


def test_a_restart_delivers_what_the_consumer_never_took_first_flagged_and_in_order(tmp_path):
    """The consumer takes 5 events and dies: the 5th and whatever was queued behind it
    come first after the restart, flagged, per symbol in seq order, then new ones."""
    ledger = SqliteLedger(tmp_path / "btkit.sqlite")
    stores = {s: MemorySignalStore() for s in ("ETHBTC", "LTCBTC")}

    async def crashed_consumer():
        taken = []
        async for result in make_session(ledger, stores, 5).events():
            taken.append(result)
            await asyncio.sleep(0)  # a consumer's own work: the marks are written meanwhile
            if len(taken) == 5:
                return taken  # the process dies here: the 5th was never acknowledged

    async def restarted_consumer():
        return [r async for r in make_session(ledger, stores, 5).events()]

    before = asyncio.run(crashed_consumer())
    recorded_so_far = {e.seq for e in ledger.undelivered("strat", "replay", list(stores))}
    after = asyncio.run(restarted_consumer())
    assert before[-1].seq in recorded_so_far  # never acknowledged: it must come again
    assert min(recorded_so_far) > before[0].seq  # the mark follows the consumer (it may lag)
    backlog = [r for r in after if r.redelivered]
    assert after[: len(backlog)] == backlog  # before any new event
    assert {r.seq for r in backlog} == recorded_so_far
    again = next(r for r in backlog if r.seq == before[-1].seq)
    assert dataclasses.replace(again, redelivered=False) == before[-1]  # same ids, same seq
    db = sqlite3.connect(tmp_path / "btkit.sqlite")
    in_ledger = [r[0] for r in db.execute("SELECT seq FROM events ORDER BY seq")]
    db.close()
    streamed = [r.seq for r in before + after]
    assert set(streamed) == set(in_ledger)  # every event reached the stream
    for symbol in stores:
        seqs = [r.seq or 0 for r in before + after if r.symbol == symbol]
        firsts = list(dict.fromkeys(seqs))
        assert firsts == sorted(firsts)
    assert ledger.undelivered("strat", "replay", list(stores)) == []  # a clean end marks all


def test_printers_flag_redelivered_events_and_flush_each_one():
    sig = signal(1)
    again = dataclasses.replace(closed(sig, 12), redelivered=True)

    class Flushes(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            super().flush()

    plain, rich, raw = Flushes(), Flushes(), Flushes()
    PlainPrinter(plain).event(again)
    RichPrinter(Console(file=rich, highlight=False, width=200)).event(again)
    JsonPrinter(raw).event(again)
    assert plain.getvalue().rstrip().endswith("REDELIVERED")
    assert "REDELIVERED" in rich.getvalue()
    line = json.loads(raw.getvalue())
    assert (line["seq"], line["redelivered"]) == (12, True)
    assert plain.flushes > 0
    assert rich.flushes > 0
    assert raw.flushes > 0
    fresh = io.StringIO()
    PlainPrinter(fresh).event(opened(sig, 11))
    assert "REDELIVERED" not in fresh.getvalue()


def test_marks_never_run_ahead_of_the_consumer_and_come_in_bursts(tmp_path):
    received: list[int] = []
    marks: list[int] = []

    class Watching(SqliteLedger):
        """Its marks take a while, as an off-loop writer's do."""

        async def mark_delivered(self, result):
            assert result.seq in received  # the consumer has it already
            marks.append(result.seq)
            for _ in range(20):  # other tasks run meanwhile, as beside a writer thread
                await asyncio.sleep(0)
            self.write_delivered(result)

        # Events recorded at once (no writer thread), so the scheduling above is the
        # same on any machine: while one mark takes its 20 steps, ticks go on.
        async def record_opened(self, signal):
            return self.write_opened(signal)

        async def record_closed(self, result):
            return self.write_closed(result)

    ledger = Watching(tmp_path / "btkit.sqlite")
    stores = {f"S{n}": MemorySignalStore() for n in range(8)}

    async def consume():
        async for result in make_session(ledger, stores, 5).events():
            received.append(result.seq)

    asyncio.run(consume())
    assert len(received) > 8
    assert len(marks) < len(received)  # events taken while a mark is written: coalesced
    assert ledger.undelivered("strat", "replay", list(stores)) == []
