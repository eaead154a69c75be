"""The pure tick step (engine/step.py), checked directly: no I/O, no event loop, no clock."""

from __future__ import annotations

import math

import pytest

from btkit.domain.model import (
    MINUTE_MS,
    ActiveResult,
    ClosedResult,
    IdleResult,
    OpenedResult,
    OpenSignal,
    PersistedState,
    Signal,
)
from btkit.engine import step
from btkit.engine.decision import next_signal_call_at, signal_call_due
from btkit.engine.pnl import Costs, compute_pnl

KEY = step.SymbolKey("demo", "replay", "ETHBTC")
COSTS = Costs(fee_percent=0.1, slippage_percent=0.1)
INTERVAL = 5 * MINUTE_MS
T0 = 1_600_000_000_000


def _open(position: str = "long", lifetime: float = 60, when: int = T0) -> OpenSignal:
    tp, sl = (110.0, 95.0) if position == "long" else (90.0, 105.0)
    raw = Signal(position, 100.0, tp, sl, lifetime)  # type: ignore[arg-type]
    accepted = step.accept_signal(raw, KEY, when)
    assert isinstance(accepted, OpenSignal)
    return accepted


# Throttle and stop flag


@pytest.mark.parametrize(
    ("elapsed", "due"),
    [(0, False), (INTERVAL - MINUTE_MS, False), (INTERVAL - 1, False), (INTERVAL, True)],
)
def test_the_strategy_is_called_again_exactly_one_interval_after_its_last_call(elapsed, due):
    state = PersistedState(last_signal_call=T0)
    need = step.plan_tick(state, T0 + elapsed, INTERVAL, stopped=False)
    assert need == ("call_strategy" if due else "price")
    assert signal_call_due(T0, T0 + elapsed, INTERVAL) is due


def test_the_backtest_jump_lands_on_the_first_due_tick():
    assert next_signal_call_at(None, INTERVAL) is None
    due_at = next_signal_call_at(T0, INTERVAL)
    assert due_at == T0 + INTERVAL
    state = PersistedState(last_signal_call=T0)
    assert step.plan_tick(state, due_at - 1, INTERVAL, stopped=False) == "price"
    assert step.plan_tick(state, due_at, INTERVAL, stopped=False) == "call_strategy"


def test_a_first_tick_calls_the_strategy():
    assert step.plan_tick(PersistedState(), T0, INTERVAL, stopped=False) == "call_strategy"


def test_a_stopping_runner_never_calls_the_strategy():
    assert step.plan_tick(PersistedState(), T0, INTERVAL, stopped=True) == "price"


def test_an_open_signal_is_monitored_not_asked_for_another():
    state = PersistedState(signal=_open(), last_signal_call=None)
    assert step.plan_tick(state, T0 + INTERVAL, INTERVAL, stopped=False) == "price"


def test_a_call_restarts_the_throttle_whatever_it_answered():
    state = PersistedState(last_signal_call=T0, last_tick=T0 + MINUTE_MS)
    after = step.after_call(state, T0 + INTERVAL)
    assert after == PersistedState(None, T0 + INTERVAL, T0 + MINUTE_MS)


# Accepting the strategy's answer


def test_no_answer_is_no_signal_and_no_problem():
    assert step.accept_signal(None, KEY, T0) is None


def test_an_invalid_signal_is_rejected_with_every_broken_rule_named():
    raw = Signal("long", 100.0, 90.0, math.nan, 0)
    rejected = step.accept_signal(raw, KEY, T0)
    assert isinstance(rejected, step.Rejected)
    text = "; ".join(rejected.problems)
    assert "price_stop_loss must be a finite number > 0" in text
    assert "minute_estimated_time must be a number > 0" in text
    assert "long needs take-profit > open > stop-loss" in text


def test_a_wrong_type_is_rejected_by_name():
    rejected = step.accept_signal(42, KEY, T0)
    assert rejected == step.Rejected(("get_signal must return a btkit.Signal or None, not int",))


def test_an_accepted_signal_gets_a_deterministic_id_and_the_runner_s_names():
    raw = {
        "position": "short",
        "price_open": 100,
        "price_take_profit": 90,
        "price_stop_loss": 105,
        "minute_estimated_time": 30,
        "note": "n",
    }
    first = step.accept_signal(raw, KEY, T0)
    again = step.accept_signal(raw, KEY, T0)
    later = step.accept_signal(raw, KEY, T0 + MINUTE_MS)
    assert isinstance(first, OpenSignal)
    assert isinstance(later, OpenSignal)
    assert first == again
    assert first.id == step.signal_id("replay", "demo", "ETHBTC", T0) != later.id
    assert (first.symbol, first.strategy_name, first.exchange_name) == ("ETHBTC", "demo", "replay")
    assert (first.timestamp, first.note) == (T0, "n")
    assert isinstance(first.price_open, float)
    assert first.price_open == 100.0


def test_a_strategy_given_id_is_kept():
    raw = Signal("long", 100.0, 110.0, 95.0, 60, id="mine")
    accepted = step.accept_signal(raw, KEY, T0)
    assert isinstance(accepted, OpenSignal)
    assert accepted.id == "mine"


# Open, idle, monitor, close: results and new states


def test_an_open_saves_the_signal_the_call_and_the_cursor():
    signal = _open()
    opening = step.open_step(PersistedState(last_tick=T0 - MINUTE_MS), KEY, signal, T0)
    assert opening.state == PersistedState(signal, T0, T0)
    assert isinstance(opening.result, OpenedResult)
    assert opening.result.current_price == 100.0
    assert opening.result.signal is signal
    assert (opening.result.symbol, opening.result.timestamp, opening.result.seq) == (
        "ETHBTC",
        T0,
        None,
    )


def test_idle_moves_only_the_cursor():
    state = PersistedState(last_signal_call=T0)
    idle = step.idle_step(state, KEY, T0 + MINUTE_MS, 99.5)
    assert isinstance(idle.result, IdleResult)
    assert idle.result.current_price == 99.5
    assert idle.state == PersistedState(None, T0, T0 + MINUTE_MS)
    assert step.idle_step(state, KEY, T0 + MINUTE_MS, None).result.current_price is None


def test_no_price_skips_the_tick_and_keeps_the_signal():
    state = PersistedState(_open(), T0, T0)
    monitored = step.monitor_step(state, KEY, T0 + MINUTE_MS, None, COSTS)
    assert monitored.result is None
    assert monitored.state == PersistedState(state.signal, T0, T0 + MINUTE_MS)


def test_a_price_between_tp_and_sl_keeps_the_signal_active():
    state = PersistedState(_open(), T0, T0)
    monitored = step.monitor_step(state, KEY, T0 + MINUTE_MS, 101.0, COSTS)
    assert isinstance(monitored.result, ActiveResult)
    assert monitored.state.signal is state.signal
    assert monitored.state.last_tick == T0 + MINUTE_MS


@pytest.mark.parametrize(
    ("position", "price", "minutes", "reason"),
    [
        ("long", 110.0, 1, "take_profit"),
        ("long", 95.0, 1, "stop_loss"),
        ("long", 110.0, 60, "take_profit"),  # price beats expiry
        ("long", 95.0, 60, "stop_loss"),
        ("long", 101.0, 60, "time_expired"),
        ("short", 90.0, 1, "take_profit"),
        ("short", 105.0, 60, "stop_loss"),
        ("short", 99.0, 61, "time_expired"),
    ],
)
def test_close_reasons_tp_before_sl_before_expiry(position, price, minutes, reason):
    state = PersistedState(_open(position), T0, T0)
    when = T0 + minutes * MINUTE_MS
    monitored = step.monitor_step(state, KEY, when, price, COSTS)
    closed = monitored.result
    assert isinstance(closed, ClosedResult)
    assert closed.close_reason == reason
    assert (closed.close_timestamp, closed.current_price) == (when, price)


def test_tp_wins_when_a_price_reaches_both():
    # A (malformed, never accepted) signal whose TP and SL are both reached by one price.
    both = OpenSignal("x", "long", 100.0, 105.0, 106.0, 60, "ETHBTC", "demo", "replay", T0)
    closing = step.close_step(PersistedState(both, T0, T0), KEY, T0 + MINUTE_MS, 105.5, COSTS)
    assert closing.result.close_reason == "take_profit"


def test_an_infinite_lifetime_never_expires():
    state = PersistedState(_open(lifetime=math.inf), T0, T0)
    years = T0 + 10 * 365 * 1440 * MINUTE_MS
    assert isinstance(step.monitor_step(state, KEY, years, 101.0, COSTS).result, ActiveResult)


def test_a_close_carries_the_pnl_after_costs_and_clears_the_signal():
    state = PersistedState(_open("short"), T0 - MINUTE_MS, T0)
    when = T0 + 3 * MINUTE_MS
    closing = step.close_step(state, KEY, when, 90.0, COSTS)
    assert closing.result.pnl == compute_pnl("short", 100.0, 90.0, COSTS)
    assert closing.result.pnl.pnl_percentage == pytest.approx((99.9 - 90.09) / 99.9 * 100 - 0.2)
    assert closing.state == PersistedState(None, T0 - MINUTE_MS, when)


def test_closing_where_nothing_closes_is_refused():
    state = PersistedState(_open(), T0, T0)
    with pytest.raises(ValueError, match="does not close"):
        step.close_step(state, KEY, T0 + MINUTE_MS, 101.0, COSTS)
    with pytest.raises(ValueError, match="no open signal"):
        step.close_step(PersistedState(), KEY, T0, 101.0, COSTS)
