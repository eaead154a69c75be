"""The reconciliation rules (btkit.engine.order_flow), pure: ledger orders and fills in,
one action out."""

from __future__ import annotations

import dataclasses

from btkit.domain.orders import Fill, OrderState
from btkit.engine import order_flow as flow

STEP = {"amount_step": 0.001, "min_amount": 0.001}


def order(role: str, status: str, filled: float = 0.0, **changes: object) -> OrderState:
    side = "buy" if role == "entry" else "sell"
    state = OrderState(
        f"btk-{role}",
        "S",
        side,  # type: ignore[arg-type]
        "market",
        role,  # type: ignore[arg-type]
        status,  # type: ignore[arg-type]
        1.0,
        filled,
        100.0 if filled else None,
        0.0,
        0,
        list_client_id="btk-p" if role in ("take_profit", "stop_loss") else None,
    )
    return dataclasses.replace(state, **changes)  # type: ignore[arg-type]


def fill(role: str, amount: float) -> Fill:
    side = "buy" if role == "entry" else "sell"
    return Fill(f"t-{role}", f"btk-{role}", "S", side, amount, 100.0, 0.1, 0)  # type: ignore[arg-type]


ENTRY = order("entry", "closed", 1.0)
TP, SL = order("take_profit", "open"), order("stop_loss", "open")


def test_no_entry_order_means_nothing_was_traded():
    assert isinstance(flow.next_action([], [], **STEP), flow.Nothing)


def test_an_intent_or_open_order_is_looked_up_first():
    intent = order("entry", "new")
    assert flow.next_action([intent], [], **STEP) == flow.LookUpOrder(intent)
    exit_intent = order("exit", "new")
    action = flow.next_action([ENTRY, TP, SL, exit_intent], [fill("entry", 1.0)], **STEP)
    assert action == flow.LookUpOrder(exit_intent)


def test_a_filled_entry_without_protection_is_protected_for_what_is_held():
    assert flow.next_action([ENTRY], [fill("entry", 0.5)], **STEP) == flow.Protect(0.5)


def test_resting_legs_are_looked_up():
    action = flow.next_action([ENTRY, TP, SL], [fill("entry", 1.0)], **STEP)
    assert action == flow.LookUpProtection("btk-p")


def test_a_filled_leg_with_nothing_held_closes_by_the_exchange():
    tp = order("take_profit", "closed", 1.0)
    sl = order("stop_loss", "expired")
    fills = [fill("entry", 1.0), fill("take_profit", 1.0)]
    assert flow.next_action([ENTRY, tp, sl], fills, **STEP) == flow.ClosedByProtection(tp)


def test_legs_cancelled_by_someone_else_with_a_position_held_halt():
    legs = [order("take_profit", "canceled"), order("stop_loss", "canceled")]
    action = flow.next_action([ENTRY, *legs], [fill("entry", 1.0)], **STEP)
    assert isinstance(action, flow.Halt)
    assert "did not cancel" in action.reason


def test_legs_that_never_reached_the_exchange_are_placed_again_not_halted():
    never = flow.NOT_ON_EXCHANGE + "never sent"
    legs = [order("take_profit", "canceled", message=never), order("stop_loss", "canceled")]
    legs[1] = dataclasses.replace(legs[1], message=never)
    assert flow.next_action([ENTRY, *legs], [fill("entry", 1.0)], **STEP) == flow.Protect(1.0)


def test_a_decided_exit_sells_what_is_still_held_after_the_legs_were_cancelled():
    legs = [order("take_profit", "canceled"), order("stop_loss", "canceled")]
    exit_ = order("exit", "canceled", message=flow.MODEL_REASON_PREFIX + "time_expired")
    action = flow.next_action([ENTRY, *legs, exit_], [fill("entry", 1.0)], **STEP)
    assert action == flow.SellRest(1.0, exit_)
    assert flow.model_reason(exit_) == "time_expired"


def test_an_exit_the_exchange_refused_is_not_sold_again_but_halts():
    legs = [order("take_profit", "canceled"), order("stop_loss", "canceled")]
    exit_ = order("exit", "rejected", message="Account has insufficient balance")
    action = flow.next_action([ENTRY, *legs, exit_], [fill("entry", 1.0)], **STEP)
    assert isinstance(action, flow.Halt)
    assert "insufficient balance" in action.reason


def test_an_exit_that_sold_everything_closes_by_the_exit():
    legs = [order("take_profit", "canceled"), order("stop_loss", "canceled")]
    exit_ = order("exit", "closed", 1.0)
    fills = [fill("entry", 1.0), fill("exit", 1.0)]
    assert flow.next_action([ENTRY, *legs, exit_], fills, **STEP) == flow.ClosedByExit(exit_)


def test_dust_below_the_minimum_counts_as_nothing_held():
    assert flow.sellable(0.0004, 0.001, 0.001) == 0.0
    assert flow.sellable(0.0019, 0.001, 0.001) == 0.001


def view(**changes: object) -> flow.AccountView:
    base = flow.AccountView(
        signal_id="a",
        ledger_open=["a"],
        ledger_held=1.0,
        exchange_base_total=1.0,
        exchange_btk_open=["btk-p-1-take_profit"],
        ledger_known=["btk-e-1", "btk-p-1"],
        base="B",
        tolerance=0.001,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_consistent_account_has_no_mismatch():
    assert flow.mismatches(view()) == []


def test_a_position_without_its_signal_is_a_mismatch():
    (problem,) = flow.mismatches(view(signal_id=None))
    assert "signal(s) a" in problem


def test_an_unknown_btk_order_is_a_mismatch_but_a_users_own_order_is_not():
    problems = flow.mismatches(view(exchange_btk_open=["btk-e-ffff", "my-own"]))
    assert len(problems) == 1
    assert "btk-e-ffff" in problems[0]
    assert "my-own" not in problems[0]


def test_a_base_balance_below_the_ledgers_positions_is_a_mismatch():
    (problem,) = flow.mismatches(view(exchange_base_total=0.5))
    assert "only 0.5 B" in problem
    assert flow.mismatches(view(exchange_base_total=0.9995)) == []


def test_a_signal_stake_must_be_a_positive_number():
    from btkit.domain.model import Signal
    from btkit.engine.validation import validate_signal

    good = Signal("long", 100.0, 110.0, 90.0, 60, stake=50)
    assert validate_signal(good, 1) == []
    for bad in (0, -1, float("nan"), "50"):
        problems = validate_signal(Signal("long", 100.0, 110.0, 90.0, 60, stake=bad), 1)  # type: ignore[arg-type]
        assert any("stake must be" in p for p in problems)
