"""The Trader (btkit.drivers.trader) over FakeBroker and FakeOrderLog: one entry per signal
across lost responses, timeouts and crashes; protection; exits; limits; halts.

A crash is a broker that raises `Crash` (a BaseException, like the process dying) at
one step; the restart is a new Trader over the same order log and exchange."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from btkit.domain.errors import ConfigError, PriceCrossedError, TransientExchangeError
from btkit.domain.model import ClosedResult, OpenSignal, Pnl
from btkit.domain.orders import Fill, OrderRequest, OrderState, ProtectionRequest, client_order_id
from btkit.drivers.trader import SHORT_SKIPPED, OpenPositions, Trader, TraderOptions
from btkit.engine.risk import DAY_MS, RiskLimits
from btkit.settings import ExchangeCredentials, Settings
from btkit.wiring.trading import build_trading, check_trade_mode
from tests.fakes import T0, FakeClock
from tests.trading_fakes import FakeBroker, FakeOrderLog

T = TypeVar("T")
SIGNAL = OpenSignal("sig-1", "long", 100.0, 110.0, 95.0, 60.0, "S", "t", "fake", T0)
ENTRY = client_order_id("sig-1", "entry")
EXIT = client_order_id("sig-1", "exit")
LIST = client_order_id("sig-1", "protection")


class Crash(BaseException):
    """The process dies here."""


class CrashingBroker(FakeBroker):
    """Dies at `place`/`protect` of the given client id: `before` or `after` it executes."""

    def __init__(self, crash_on: str, when: str = "before") -> None:
        super().__init__()
        self.crash_on, self.when = crash_on, when

    async def place(self, request: OrderRequest) -> OrderState:
        if request.client_id == self.crash_on:
            self.crash_on = ""
            if self.when == "before":
                raise Crash
            await super().place(request)
            raise Crash
        return await super().place(request)

    async def protect(self, request: ProtectionRequest) -> Any:
        if request.list_client_id == self.crash_on:
            self.crash_on = ""
            if self.when == "before":
                raise Crash
            await super().protect(request)
            raise Crash
        return await super().protect(request)


def run(call: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(call)


async def no_sleep(seconds: float) -> None:
    pass


def trader(
    broker: FakeBroker,
    log: FakeOrderLog,
    *,
    clock: FakeClock | None = None,
    positions: OpenPositions | None = None,
    symbol: str = "S",
    **options: Any,
) -> Trader:
    broker.now = T0
    return Trader(
        symbol,
        broker=broker,
        order_log=log,
        clock=clock or FakeClock(T0),
        positions=positions if positions is not None else OpenPositions(),
        options=TraderOptions(stake=options.pop("stake", 1000.0), **options),
        sleep=no_sleep,
    )


def closed(signal: OpenSignal = SIGNAL, price: float = 105.0) -> ClosedResult:
    return ClosedResult(
        strategy_name="t",
        exchange_name="fake",
        symbol="S",
        timestamp=T0 + 3_600_000,
        current_price=price,
        signal=signal,
        close_reason="time_expired",
        close_timestamp=T0 + 3_600_000,
        pnl=Pnl(5.0, 100.0, price),
    )


def entries_sent(broker: FakeBroker) -> int:
    return broker.sent.count(ENTRY)


def test_an_entry_is_recorded_before_it_is_sent_then_filled_and_protected():
    broker, log = FakeBroker(), FakeOrderLog()
    seen: list[list[OrderState]] = []
    place = broker.place

    async def spying_place(request: OrderRequest) -> OrderState:
        seen.append(log.orders(SIGNAL.id))
        return await place(request)

    broker.place = spying_place  # type: ignore[method-assign]
    report = run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert (report.status, report.filled, report.average) == ("closed", 10.0, 100.0)
    assert [o.status for o in seen[0]] == ["new"]  # the intent was in the ledger first
    assert broker.sent == [ENTRY, LIST]
    assert [f.amount for f in log.fills(SIGNAL.id)] == [10.0]
    protection = broker.lists[LIST]
    assert protection.status == "open"
    assert [leg.amount for leg in protection.legs] == [10.0, 10.0]
    assert [leg.price for leg in protection.legs] == [110.0, 95.0]
    assert "protected 10" in report.how


def test_a_lost_response_is_looked_up_never_sent_twice():
    broker, log = FakeBroker(), FakeOrderLog()
    broker.faults = ["lost"]
    report = run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert report.status == "closed"
    assert entries_sent(broker) == 1
    assert broker.wallet["B"] == 10.0
    assert len(log.fills(SIGNAL.id)) == 1


def test_a_timeout_is_looked_up_and_never_sent_again_in_the_same_run():
    """An order the exchange does not show yet may still execute: sending it again could
    buy twice, so the symbol halts and the intent stays for reconciliation to look up."""
    broker, log = FakeBroker(), FakeOrderLog()
    broker.faults = ["timeout"]
    t = trader(broker, log, lookups=3)
    report = run(t.enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert report.status == "halted"
    assert entries_sent(broker) == 0
    assert broker.wallet["B"] == 0.0
    assert [o.status for o in log.orders(SIGNAL.id)] == ["new"]
    assert t.halted is not None
    assert "not sent again" in t.halted


class NoTradesBroker(FakeBroker):
    """The trades endpoint fails (Binance's myTrades can fail or lag the order's answer)."""

    async def fills(self, symbol: str, since_ms: int) -> list[Fill]:
        raise TransientExchangeError("myTrades: 502 Bad Gateway")


def test_an_entry_whose_trades_cannot_be_read_is_still_protected_and_sold():
    broker, log = NoTradesBroker(), FakeOrderLog()
    t = trader(broker, log)
    report = run(t.enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert report.filled == 10.0
    assert [leg.amount for leg in broker.lists[LIST].legs] == [10.0, 10.0]
    assert t.halted is None
    exit_report = run(t.exit(closed()))
    assert exit_report is not None
    assert exit_report.filled == 10.0
    assert broker.wallet["B"] == 0.0


def test_an_exit_that_sells_only_part_halts_and_says_what_is_still_held():
    broker, log = FakeBroker(), FakeOrderLog()
    t = trader(broker, log)
    run(t.enter(SIGNAL, T0, 100.0))
    broker.faults = ["partial"]
    report = run(t.exit(closed()))
    assert report is not None
    assert report.status == "halted"
    assert broker.wallet["B"] == 5.0
    assert t.halted is not None
    assert "5 is still held WITHOUT protection" in t.halted


class Http503Broker(FakeBroker):
    """The first order executes, then the exchange answers 503 (a plain exchange error)."""

    failed = False

    async def place(self, request: OrderRequest) -> OrderState:
        state = await super().place(request)
        if not self.failed:
            self.failed = True
            raise TransientExchangeError("503 Service Unavailable")
        return state


def test_an_exchange_error_while_placing_counts_as_uncertain():
    broker, log = Http503Broker(), FakeOrderLog()
    report = run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert report.status == "closed"
    assert entries_sent(broker) == 1
    assert broker.wallet["B"] == 10.0


def test_endless_uncertainty_halts_instead_of_guessing():
    broker, log = FakeBroker(), FakeOrderLog()
    broker.faults = ["timeout"] * 10
    t = trader(broker, log, lookups=3)
    report = run(t.enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert report.status == "halted"
    assert t.halted is not None
    assert ENTRY in t.halted
    assert log.halts["S"] == t.halted


def test_a_crash_after_the_entry_executed_is_found_on_restart_and_protected():
    broker, log = CrashingBroker(ENTRY, "after"), FakeOrderLog()
    with pytest.raises(Crash):
        run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    assert LIST not in broker.lists
    restarted = trader(broker, log)
    assert run(restarted.restore(SIGNAL, T0)) is None
    assert entries_sent(broker) == 1
    assert [f.amount for f in log.fills(SIGNAL.id)] == [10.0]
    assert broker.lists[LIST].status == "open"  # protected now
    assert restarted.halted is None


def test_a_crash_between_intent_and_send_sends_nothing_late():
    broker, log = CrashingBroker(ENTRY, "before"), FakeOrderLog()
    with pytest.raises(Crash):
        run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    restarted = trader(broker, log)
    assert run(restarted.restore(SIGNAL, T0)) is None
    assert entries_sent(broker) == 0
    (entry,) = log.orders(SIGNAL.id)
    assert entry.final
    assert "not sent late" in entry.message
    assert log.open_trades("S") == []
    assert restarted.halted is None
    assert run(restarted.exit(closed())) is None  # nothing held: nothing to sell
    assert EXIT not in broker.sent


def test_protection_missing_after_a_crash_is_placed_on_restart():
    broker, log = CrashingBroker(LIST, "before"), FakeOrderLog()
    with pytest.raises(Crash):
        run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    assert LIST not in broker.lists
    run(trader(broker, log).restore(SIGNAL, T0))
    assert broker.lists[LIST].status == "open"
    assert broker.sent.count(LIST) == 1


def test_protection_placed_but_unrecorded_is_found_not_placed_again():
    broker, log = CrashingBroker(LIST, "after"), FakeOrderLog()
    with pytest.raises(Crash):
        run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    restarted = trader(broker, log)
    run(restarted.restore(SIGNAL, T0))
    assert broker.sent.count(LIST) == 1
    assert restarted.halted is None
    resting = [o for o in log.orders(SIGNAL.id) if not o.final]
    assert {o.client_id for o in resting} == {leg.client_id for leg in broker.lists[LIST].legs}


def test_a_protective_fill_closes_the_signal_through_check_when_due():
    broker, log, clock = FakeBroker(), FakeOrderLog(), FakeClock(T0)
    t = trader(broker, log, clock=clock, reconcile_ms=60_000)
    run(t.enter(SIGNAL, T0, 100.0))
    assert run(t.check(SIGNAL, T0)) is None  # first check: nothing filled yet
    broker.trigger(LIST, "stop_loss", 95.0)
    clock.now = T0 + 30_000
    assert run(t.check(SIGNAL, clock.now)) is None  # not due: the exchange is not asked
    clock.now = T0 + 60_000
    close = run(t.check(SIGNAL, clock.now))
    assert close is not None
    assert (close.reason, close.price, close.timestamp) == ("stop_loss", 95.0, T0 + 60_000)
    assert close.report.status == "closed"
    assert sum(f.amount for f in log.fills(SIGNAL.id) if f.side == "sell") == 10.0


def test_a_protective_fill_while_down_closes_the_signal_on_restore():
    broker, log = FakeBroker(), FakeOrderLog()
    run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    broker.trigger(LIST, "take_profit", 110.0)
    restarted = trader(broker, log)
    close = run(restarted.restore(SIGNAL, T0 + 600_000))
    assert close is not None
    assert (close.reason, close.price) == ("take_profit", 110.0)
    assert log.open_trades("S") == []
    assert restarted.halted is None


def test_an_exit_cancels_the_protection_then_sells_what_is_held():
    broker, log = FakeBroker(), FakeOrderLog()
    t = trader(broker, log)
    run(t.enter(SIGNAL, T0, 100.0))
    broker.price = 105.0
    report = run(t.exit(closed()))
    assert report is not None
    assert (report.role, report.status, report.filled, report.average) == (
        "exit",
        "closed",
        10.0,
        105.0,
    )
    assert broker.lists[LIST].status == "canceled"
    assert broker.wallet["B"] == 0.0
    kinds = [(k, getattr(v, "role", None), getattr(v, "status", None)) for k, v in log.journal]
    cancelled = kinds.index(("order", "take_profit", "canceled"))
    sold = next(i for i, (k, _, _) in enumerate(kinds) if k == "fill" and i > cancelled)
    assert cancelled < sold
    assert log.open_trades("S") == []


def test_an_exit_repeated_after_a_crash_sells_once():
    broker, log = CrashingBroker(EXIT, "after"), FakeOrderLog()
    run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    with pytest.raises(Crash):
        run(trader(broker, log).exit(closed()))
    report = run(trader(broker, log).exit(closed()))  # the runner re-runs the exit
    assert report is not None
    assert report.status == "closed"
    assert broker.sent.count(EXIT) == 1
    assert broker.wallet["B"] == 0.0
    assert sum(f.amount for f in log.fills(SIGNAL.id) if f.side == "sell") == 10.0


def test_an_exit_interrupted_after_the_cancel_is_finished_on_restore():
    broker, log = CrashingBroker(EXIT, "before"), FakeOrderLog()
    run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    with pytest.raises(Crash):
        run(trader(broker, log).exit(closed()))
    restarted = trader(broker, log)
    close = run(restarted.restore(SIGNAL, T0 + 3_600_000))
    assert close is not None
    assert close.reason == "time_expired"  # the model's reason, recorded with the intent
    assert broker.sent.count(EXIT) == 1
    assert broker.wallet["B"] == 0.0
    assert restarted.halted is None  # btkit cancelled the protection: no mismatch


def test_an_exit_after_the_protection_filled_sells_nothing_and_says_so():
    broker, log = FakeBroker(), FakeOrderLog()
    t = trader(broker, log)
    run(t.enter(SIGNAL, T0, 100.0))
    broker.trigger(LIST, "take_profit", 110.0)
    report = run(t.exit(closed()))
    assert report is not None
    assert "take_profit order filled first at 110" in report.how
    assert EXIT not in broker.sent
    assert broker.wallet["B"] == 0.0


def test_a_partial_entry_protects_and_later_sells_what_filled():
    broker, log = FakeBroker(), FakeOrderLog()
    broker.faults = ["partial"]
    t = trader(broker, log)
    report = run(t.enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert (report.filled, report.amount) == (5.0, 10.0)
    assert "partially filled: 5 of 10" in report.how
    assert [leg.amount for leg in broker.lists[LIST].legs] == [5.0, 5.0]
    (entry,) = [o for o in log.orders(SIGNAL.id) if o.role == "entry"]
    assert (entry.status, entry.filled) == ("canceled", 5.0)  # the rest no longer works
    clock_check = run(t.check(SIGNAL, T0 + 600_000))
    assert clock_check is None
    assert t.halted is None
    run(t.exit(closed()))
    assert broker.wallet["B"] == 0.0


def test_an_exit_sells_only_what_a_partly_filled_protective_leg_left():
    broker, log = FakeBroker(), FakeOrderLog()
    t = trader(broker, log)
    run(t.enter(SIGNAL, T0, 100.0))
    protection = broker.lists[LIST]
    tp = protection.legs[0]
    broker.trades.append(Fill("tp-1", tp.client_id, "S", "sell", 4.0, 110.0, 0.44, T0, "99"))
    broker.wallet["B"] -= 4.0
    partly = dataclasses.replace(tp, filled=4.0, average=110.0)
    broker.lists[LIST] = dataclasses.replace(protection, legs=(partly, protection.legs[1]))
    report = run(t.exit(closed()))
    assert report is not None
    assert (report.status, report.amount, report.filled) == ("closed", 6.0, 6.0)
    assert broker.wallet["B"] == 0.0
    assert sorted(f.amount for f in log.fills(SIGNAL.id) if f.side == "sell") == [4.0, 6.0]


def test_a_rejected_entry_is_reported_and_not_retried():
    broker, log = FakeBroker(), FakeOrderLog()
    broker.faults = ["reject"]
    report = run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert report.status == "rejected"
    assert "LOT_SIZE" in report.how
    assert "not retried" in report.how
    assert broker.sent == []
    assert [o.status for o in log.orders(SIGNAL.id)] == ["rejected"]


def test_insufficient_funds_from_the_exchange_skip_the_signal():
    broker, log = FakeBroker(), FakeOrderLog()
    broker.faults = ["insufficient"]
    report = run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert report.status == "skipped"
    assert "insufficient balance" in report.how
    assert broker.sent == []


def test_a_stake_above_the_free_balance_is_refused_before_sending():
    broker, log = FakeBroker(balances={"Q": 50.0, "B": 0.0}), FakeOrderLog()
    report = run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert report.status == "skipped"
    assert "insufficient balance" in report.how
    assert log.orders(SIGNAL.id) == []


def test_a_stake_below_the_market_minimum_says_how_much_is_needed():
    broker, log = FakeBroker(), FakeOrderLog()
    report = run(trader(broker, log, stake=5.0).enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert report.status == "skipped"
    assert "below the market's minimum" in report.how
    assert broker.sent == []


def test_short_signals_are_announced_not_traded():
    broker, log = FakeBroker(), FakeOrderLog()
    short = dataclasses.replace(SIGNAL, position="short", price_take_profit=90.0)
    report = run(trader(broker, log).enter(short, T0, 100.0))
    assert report is not None
    assert (report.status, report.how) == ("skipped", SHORT_SKIPPED)
    assert broker.sent == []


def test_max_open_positions_counts_every_symbol():
    broker, log, positions = FakeBroker(), FakeOrderLog(), OpenPositions()
    limits = RiskLimits(max_open_positions=1)
    first = trader(broker, log, positions=positions, limits=limits, symbol="S")
    second = trader(broker, log, positions=positions, limits=limits, symbol="S2")
    assert run(first.enter(SIGNAL, T0, 100.0)).status == "closed"  # type: ignore[union-attr]
    other = dataclasses.replace(SIGNAL, id="sig-2", symbol="S2")
    report = run(second.enter(other, T0, 100.0))
    assert report is not None
    assert report.status == "skipped"
    assert "BTKIT_MAX_OPEN_POSITIONS" in report.how
    run(first.exit(closed()))
    assert run(second.enter(other, T0, 100.0)).status == "closed"  # type: ignore[union-attr]


def test_a_signals_own_stake_wins_over_the_setting():
    broker, log = FakeBroker(), FakeOrderLog()
    own = dataclasses.replace(SIGNAL, stake=250.0)
    report = run(trader(broker, log, stake=1000.0).enter(own, T0, 100.0))
    assert report is not None
    assert (report.status, report.filled) == ("closed", 2.5)


def test_a_stake_above_max_stake_is_refused():
    broker, log = FakeBroker(), FakeOrderLog()
    t = trader(broker, log, limits=RiskLimits(max_stake=500.0))
    report = run(t.enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert report.status == "skipped"
    assert "BTKIT_MAX_STAKE" in report.how


def test_the_circuit_breaker_halts_until_the_next_utc_day():
    broker, log, clock = FakeBroker(), FakeOrderLog(), FakeClock(T0)
    loss = [
        Fill("l1", "old-e", "S", "buy", 1.0, 100.0, 0.0, T0),
        Fill("l2", "old-x", "S", "sell", 1.0, 40.0, 0.0, T0),
    ]
    run(log.record_fills("old", loss))
    t = trader(broker, log, clock=clock, limits=RiskLimits(daily_loss_limit=50.0))
    report = run(t.enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert report.status == "skipped"
    assert "circuit breaker" in report.how
    assert t.halted is not None
    assert "circuit breaker" in log.halts["S"]
    assert broker.sent == []
    tomorrow = T0 - T0 % DAY_MS + DAY_MS
    clock.now = tomorrow
    assert t.halted is None
    later = dataclasses.replace(SIGNAL, timestamp=tomorrow)
    assert run(t.enter(later, tomorrow, 100.0)).status == "closed"  # type: ignore[union-attr]
    assert "S" not in log.halts


def test_an_unknown_btk_order_on_the_exchange_halts_the_symbol():
    broker, log = FakeBroker(), FakeOrderLog()
    stray = OrderState(
        "btk-e-000000000000000000000000", "S", "buy", "limit", "entry", "open",
        1.0, 0.0, None, 0.0, T0,
    )  # fmt: skip
    broker.orders[stray.client_id] = stray
    t = trader(broker, log)
    assert run(t.restore(None, T0)) is None
    assert t.halted is not None
    assert stray.client_id in t.halted
    assert log.halts["S"] == t.halted


def test_a_clean_start_lifts_an_old_halt_but_not_todays_circuit_breaker():
    broker, log = FakeBroker(), FakeOrderLog()
    run(log.record_halt("S", "an old mismatch, since fixed by hand", T0))
    t = trader(broker, log, limits=RiskLimits(daily_loss_limit=50.0))
    run(t.restore(None, T0))
    assert t.halted is None
    assert "S" not in log.halts
    loss = [
        Fill("l1", "old-e", "S", "buy", 1.0, 100.0, 0.0, T0),
        Fill("l2", "old-x", "S", "sell", 1.0, 40.0, 0.0, T0),
    ]
    run(log.record_fills("old", loss))
    again = trader(broker, log, limits=RiskLimits(daily_loss_limit=50.0))
    run(again.restore(None, T0))
    assert again.halted is not None
    assert "circuit breaker" in log.halts["S"]


def test_a_users_own_order_is_not_a_mismatch():
    broker, log = FakeBroker(), FakeOrderLog()
    mine = OrderState("manual-1", "S", "buy", "limit", "entry", "open", 1, 0, None, 0, T0)
    broker.orders[mine.client_id] = mine
    t = trader(broker, log)
    run(t.restore(None, T0))
    assert t.halted is None


def test_a_base_balance_below_the_ledgers_position_halts():
    broker, log = FakeBroker(), FakeOrderLog()
    run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    broker.wallet["B"] = 4.0  # sold by hand outside btkit
    restarted = trader(broker, log)
    run(restarted.restore(SIGNAL, T0))
    assert restarted.halted is not None
    assert "only 4 B" in restarted.halted


def test_a_position_without_its_signal_halts():
    broker, log = FakeBroker(), FakeOrderLog()
    run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    restarted = trader(broker, log)
    run(restarted.restore(None, T0))  # the state file lost the signal
    assert restarted.halted is not None
    assert "sig-1" in restarted.halted


def test_protection_cancelled_by_the_user_halts_with_what_to_do():
    broker, log, clock = FakeBroker(), FakeOrderLog(), FakeClock(T0)
    t = trader(broker, log, clock=clock)
    run(t.enter(SIGNAL, T0, 100.0))
    run(broker.cancel_protection("S", LIST))  # on the exchange's website
    clock.now = T0 + 120_000
    assert run(t.check(SIGNAL, clock.now)) is None
    assert t.halted is not None
    assert "btkit did not cancel it" in t.halted
    assert broker.sent.count(LIST) == 1  # not re-placed by guess


def test_a_halted_symbol_enters_nothing():
    broker, log = FakeBroker(), FakeOrderLog()
    t = trader(broker, log)
    t.halted = "reconciliation mismatch"
    report = run(t.enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert (report.status, report.how) == ("halted", "reconciliation mismatch")
    assert broker.sent == []


def test_a_rejected_exit_halts_and_says_the_position_is_still_held():
    broker, log = FakeBroker(), FakeOrderLog()
    t = trader(broker, log)
    run(t.enter(SIGNAL, T0, 100.0))
    broker.faults = ["reject"]
    report = run(t.exit(closed()))
    assert report is not None
    assert report.status == "rejected"
    assert "10 may still be held" in report.how
    assert t.halted == report.how
    assert broker.wallet["B"] == 10.0


class SilentBroker(FakeBroker):
    """The exchange does not answer balance requests while `down`."""

    down = True

    async def balances(self) -> Any:
        if self.down:
            raise TransientExchangeError("503 Service Unavailable")
        return await super().balances()


def test_a_start_without_the_exchange_halts_until_reconciled_then_resumes():
    broker, log, clock = SilentBroker(), FakeOrderLog(), FakeClock(T0)
    broker.down = False
    run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    broker.down = True
    t = trader(broker, log, clock=clock)
    assert run(t.restore(SIGNAL, T0)) is None
    assert t.halted is not None
    assert "could not reconcile" in t.halted
    broker.down = False
    broker.trigger(LIST, "stop_loss", 95.0)
    clock.now = T0 + 60_000
    close = run(t.check(SIGNAL, clock.now))
    assert close is not None
    assert close.reason == "stop_loss"
    assert t.halted is None
    assert "S" not in log.halts


def test_a_refused_late_exit_halts_instead_of_retrying():
    broker, log = CrashingBroker(EXIT, "before"), FakeOrderLog()
    run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    with pytest.raises(Crash):
        run(trader(broker, log).exit(closed()))
    broker.faults = ["reject"]
    clock = FakeClock(T0)
    restarted = trader(broker, log, clock=clock)
    assert run(restarted.restore(SIGNAL, T0)) is None
    assert restarted.halted is not None
    assert "refused the exit" in restarted.halted
    assert "10 is still held" in restarted.halted
    assert EXIT not in broker.sent
    broker.faults = []
    clock.now = T0 + 3_600_000
    assert run(restarted.check(SIGNAL, clock.now)) is None  # due, but not sent again
    assert EXIT not in broker.sent
    assert run(trader(broker, log).restore(SIGNAL, T0)) is None  # nor on the next start
    assert EXIT not in broker.sent


def test_a_halt_stops_entries_but_a_held_position_is_still_protected():
    broker, log = CrashingBroker(LIST, "before"), FakeOrderLog()
    with pytest.raises(Crash):
        run(trader(broker, log).enter(SIGNAL, T0, 100.0))
    t = trader(broker, log)
    t.halted = "the exchange has an order btkit does not know"
    assert run(t.check(SIGNAL, T0)) is None
    assert broker.lists[LIST].status == "open"  # a naked position is the worst outcome
    other = dataclasses.replace(SIGNAL, id="sig-2")
    assert run(t.enter(other, T0, 100.0)).status == "halted"  # type: ignore[union-attr]


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


KEYS = {"binance": ExchangeCredentials(api_key="k", secret="s")}  # type: ignore[arg-type]


def test_live_without_confirmation_says_what_would_happen():
    with pytest.raises(ConfigError) as caught:
        check_trade_mode(settings(trade="live", stake=100, credentials=KEYS), "binance", False)
    message = str(caught.value)
    assert "would place real orders on binance with stake 100" in message
    assert "--confirm-live" in message
    assert "BTKIT_CONFIRM_LIVE=1" in message
    assert caught.value.exit_code == 2
    confirmed = settings(trade="live", credentials=KEYS, confirm_live=True)
    check_trade_mode(confirmed, "binance", True)


def test_live_without_credentials_names_the_variables():
    with pytest.raises(ConfigError, match="BTKIT_CREDENTIALS__BINANCE__API_KEY"):
        check_trade_mode(settings(trade="live", confirm_live=True), "binance", False)


def test_live_with_blank_credentials_names_the_variables():
    settings = Settings(
        trade="live",
        confirm_live=True,
        credentials={"binance": {"api_key": " ", "secret": ""}},
    )
    with pytest.raises(ConfigError, match="BTKIT_CREDENTIALS__BINANCE__API_KEY"):
        check_trade_mode(settings, "binance", sandbox=False)


def test_live_on_replay_is_refused_and_paper_passes():
    with pytest.raises(ConfigError, match="replay"):
        check_trade_mode(settings(trade="live", confirm_live=True), "replay", False)
    check_trade_mode(settings(trade="paper"), "replay", False)


def test_build_trading_with_trade_off_places_nothing():
    from btkit.drivers.runner import NoTrading

    traders = build_trading(
        settings(),
        broker=FakeBroker(),
        order_log=FakeOrderLog(),
        symbols=["S"],
        clock=FakeClock(T0),
    )
    assert isinstance(traders["S"], NoTrading)


def test_build_trading_shares_one_position_limit_across_symbols():
    broker, log = FakeBroker(), FakeOrderLog()
    traders = build_trading(
        settings(trade="paper", max_open_positions=1, stake=1000.0),
        broker=broker,
        order_log=log,
        symbols=["S", "S2"],
        clock=FakeClock(T0),
    )
    broker.now = T0
    assert run(traders["S"].enter(SIGNAL, T0, 100.0)).status == "closed"  # type: ignore[union-attr]
    other = dataclasses.replace(SIGNAL, id="sig-2", symbol="S2")
    report = run(traders["S2"].enter(other, T0, 100.0))
    assert report is not None
    assert "BTKIT_MAX_OPEN_POSITIONS" in report.how


_: Callable[..., object] = trader


def test_the_runner_enters_and_a_stop_loss_fill_closes_the_signal_at_its_price():
    from btkit.domain.model import OpenedResult
    from btkit.drivers.runner import SymbolRunner
    from btkit.engine.pnl import Costs
    from btkit.strategies import strategy
    from tests.fakes import FakeSignalStore, PriceMarket, minute
    from tests.test_drivers_fakes import always_long

    broker, log, clock = FakeBroker(), FakeOrderLog(), FakeClock(minute(5))
    runner = SymbolRunner(
        symbol="S",
        strategy=strategy("test", interval="1m")(always_long("S")),
        exchange_name="fake",
        market=PriceMarket({minute(n): 100.0 for n in range(200)}),
        store=FakeSignalStore(),
        costs=Costs(),
        trading=trader(broker, log, clock=clock),
    )
    broker.now = minute(5)
    opened = run(runner.tick(minute(5)))
    assert isinstance(opened, OpenedResult)
    assert opened.trade is not None
    assert opened.trade.status == "closed"
    list_id = client_order_id(opened.signal.id, "protection")
    assert broker.lists[list_id].status == "open"
    broker.trigger(list_id, "stop_loss", 90.0)
    clock.now = minute(7)
    result = run(runner.tick(minute(7)))
    assert isinstance(result, ClosedResult)
    assert (result.close_reason, result.current_price) == ("stop_loss", 90.0)
    assert result.trade is not None
    assert result.trade.role == "stop_loss"
    assert broker.sent.count(client_order_id(opened.signal.id, "exit")) == 0


class CrossedBroker(FakeBroker):
    """Refuses the OCO as Binance does when the price is already past a leg."""

    async def protect(self, request: ProtectionRequest) -> Any:
        raise PriceCrossedError("binance protect S: refused (Stop price would trigger)")


def test_an_oco_the_price_has_passed_is_sold_at_once_not_left_naked():
    broker, log = CrossedBroker(), FakeOrderLog()
    driver = trader(broker, log)
    report = run(driver.enter(SIGNAL, T0, 100.0))
    assert report is not None
    assert "already past the stop-loss" in report.how
    assert broker.sent == [ENTRY, EXIT]
    assert driver.halted is None
    exit_order = next(o for o in log.orders(SIGNAL.id) if o.client_id == EXIT)
    assert exit_order.status == "closed"
    assert exit_order.message.endswith("stop_loss")  # the reason a restart closes it with


def test_dust_left_after_a_trade_takes_no_position_slot():
    broker, log, positions = FakeBroker(), FakeOrderLog(), OpenPositions()
    first = trader(broker, log, positions=positions, limits=RiskLimits(max_open_positions=1))
    assert run(first.enter(SIGNAL, T0, 100.0)).status == "closed"  # type: ignore[union-attr]
    dust = Fill("dust", ENTRY, "S", "buy", 0.0004, 100.0, 0.0, T0)
    run(log.record_fills(SIGNAL.id, [dust]))  # less than the 0.001 lot: unsellable
    run(first.exit(closed()))
    other = dataclasses.replace(SIGNAL, id="sig-2")
    assert run(first.enter(other, T0, 100.0)).status == "closed"  # type: ignore[union-attr]
