"""What to do next with a signal's orders: the reconciliation rules, as pure decisions.

In: what the ledger holds for one signal (the latest state of each order, refreshed
from the exchange where it was looked up) and its fills. Out: one action. The
trading driver (`btkit.drivers.trader`) does the I/O and asks again until the
answer is `Nothing`, a close, or a halt. No I/O, no clock: unit-tested directly.

The rules, in order (spot long: buy entry, OCO sell take-profit + stop-loss, sell exit):
1. no entry order: nothing was traded for this signal;
2. an order not final (an intent `new`, or `open`): look it up by its client id;
3. an exit was decided (exit order recorded): its fills emptied the position: closed by
   the exit; else sell what is still held (unless the exchange refused that sale: halt);
4. a protective leg filled and nothing is held: the exchange closed the position;
5. something held and no protective leg resting: protect it, unless the ledger's legs
   were cancelled by someone else (btkit cancels only after recording an exit): halt,
   never guess what the user meant;
6. otherwise: nothing to do (protected, or flat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from btkit.domain.orders import CLIENT_ID_PREFIX, Fill, OrderState
from btkit.engine.sizing import round_down

PROTECTION_ROLES = frozenset({"take_profit", "stop_loss"})

NOT_ON_EXCHANGE = "not on the exchange: "
"""A recorded leg that never existed there (an intent never sent, or the exchange named
its legs otherwise): it neither protects nor was cancelled by anyone."""

MODEL_REASON_PREFIX = "model close: "
"""An exit intent's `message`: why the model closed, so a restart can say it."""


@dataclass(frozen=True, slots=True)
class Nothing:
    why: str


@dataclass(frozen=True, slots=True)
class LookUpOrder:
    """An entry or exit the exchange may or may not have: find it by client id."""

    order: OrderState


@dataclass(frozen=True, slots=True)
class LookUpProtection:
    list_client_id: str


@dataclass(frozen=True, slots=True)
class Protect:
    amount: float
    """Base amount held, rounded down to the market's step."""


@dataclass(frozen=True, slots=True)
class SellRest:
    """The exit was decided (intent recorded) but something is still held: sell it."""

    amount: float
    exit: OrderState


@dataclass(frozen=True, slots=True)
class ClosedByProtection:
    leg: OrderState


@dataclass(frozen=True, slots=True)
class ClosedByExit:
    exit: OrderState


@dataclass(frozen=True, slots=True)
class Halt:
    reason: str


Action = (
    Nothing
    | LookUpOrder
    | LookUpProtection
    | Protect
    | SellRest
    | ClosedByProtection
    | ClosedByExit
    | Halt
)


def held(fills: Sequence[Fill]) -> float:
    """Base amount the signal's fills leave held: bought minus sold."""
    return sum(f.amount if f.side == "buy" else -f.amount for f in fills)


def sellable(amount: float, step: float | None, min_amount: float | None) -> float:
    """What of `amount` an order can carry (rounded down); 0 when below the market's minimum."""
    rounded = round_down(max(amount, 0.0), step)
    if rounded <= 0 or (min_amount is not None and rounded < min_amount):
        return 0.0
    return rounded


def order_fills(fills: Sequence[Fill], order: OrderState) -> list[Fill]:
    """The executions of one order: by client id, or by the exchange's order id."""
    return [
        f
        for f in fills
        if f.client_id == order.client_id
        or (order.exchange_id is not None and f.exchange_order_id == order.exchange_id)
    ]


def model_reason(exit_order: OrderState) -> str | None:
    """The model's close reason recorded with an exit intent, if any."""
    if exit_order.message.startswith(MODEL_REASON_PREFIX):
        return exit_order.message.removeprefix(MODEL_REASON_PREFIX)
    return None


def _latest(orders: Sequence[OrderState], role: str) -> OrderState | None:
    matching = [o for o in orders if o.role == role]
    return matching[-1] if matching else None


def next_action(
    orders: Sequence[OrderState],
    fills: Sequence[Fill],
    *,
    amount_step: float | None,
    min_amount: float | None,
) -> Action:
    """The next step for one signal's trade (see the module's rules)."""
    entry = _latest(orders, "entry")
    if entry is None:
        return Nothing("no entry order: this signal was not traded")
    pending = [o for o in orders if o.role in ("entry", "exit") and not o.final]
    if pending:
        return LookUpOrder(pending[0])
    legs = [
        o
        for o in orders
        if o.role in PROTECTION_ROLES and not o.message.startswith(NOT_ON_EXCHANGE)
    ]
    resting = [leg for leg in legs if not leg.final]
    position = sellable(held(fills), amount_step, min_amount)
    exit_order = _latest(orders, "exit")
    if exit_order is not None and (position == 0 or not resting):
        return _exiting(exit_order, legs, position)
    if resting:
        list_id = resting[0].list_client_id or resting[0].client_id
        return LookUpProtection(list_id)
    filled_leg = next((leg for leg in legs if leg.filled > 0), None)
    if position == 0:
        if filled_leg is not None:
            return ClosedByProtection(filled_leg)
        return Nothing("nothing held")
    if legs:
        last = legs[-1]
        return Halt(
            f"the protective order {last.client_id} is {last.status} on the exchange but "
            f"btkit did not cancel it, and {position:g} is still held unprotected. Place a "
            "stop-loss or sell the position by hand on the exchange; then restart btkit"
        )
    return Protect(position)


def _exiting(exit_order: OrderState, legs: Sequence[OrderState], position: float) -> Action:
    """The exit was decided and no protective leg rests: sell the rest, or it is closed."""
    if position > 0 and exit_order.status == "rejected":
        return Halt(
            f"the exchange refused the exit {exit_order.client_id} ({exit_order.message}) and "
            f"{position:g} is still held without protection: sell it by hand on the exchange, "
            "then restart btkit"
        )
    if position > 0:
        return SellRest(position, exit_order)
    filled_leg = next((leg for leg in legs if leg.filled > 0), None)
    if exit_order.filled <= 0 and filled_leg is not None:
        return ClosedByProtection(filled_leg)
    return ClosedByExit(exit_order)


@dataclass(frozen=True, slots=True)
class AccountView:
    """What restore compares across the whole symbol: the ledger against the exchange."""

    signal_id: str | None
    """The runner's open signal, if any."""
    ledger_open: Sequence[str]
    """Signal ids the ledger holds a position or a live order for, on this symbol."""
    ledger_held: float
    """Base amount the ledger's fills hold across those signals."""
    exchange_base_total: float
    """The account's whole base balance on the exchange."""
    exchange_btk_open: Sequence[str]
    """Client ids of btkit's (`btk-`) open orders on the exchange for this symbol."""
    ledger_known: Sequence[str]
    """Client ids (and OCO list ids) of every order the ledger has for those signals."""
    base: str
    tolerance: float
    """Amounts closer than this (the market's amount step) are equal."""


def mismatches(view: AccountView) -> list[str]:
    """What differs between the ledger and the exchange, each said with what to do."""
    problems = []
    others = [s for s in view.ledger_open if s != view.signal_id]
    if others:
        problems.append(
            f"the ledger holds a position or live order for signal(s) {', '.join(others)} "
            "but no such signal is open: close the position on the exchange by hand (or "
            "restore the state file that had the signal), then restart btkit"
        )
    known = set(view.ledger_known)
    unknown = [
        cid
        for cid in view.exchange_btk_open
        if cid.startswith(CLIENT_ID_PREFIX + "-")
        and cid not in known
        and not any(cid.startswith(k + "-") for k in known)
    ]
    if unknown:
        problems.append(
            f"the exchange has open btkit order(s) {', '.join(unknown)} that the ledger does "
            "not know (another btkit with the same keys, or a lost ledger): cancel them on "
            "the exchange or stop the other process, then restart btkit"
        )
    if view.exchange_base_total + view.tolerance < view.ledger_held:
        problems.append(
            f"the ledger holds {view.ledger_held:g} {view.base} but the exchange account has "
            f"only {view.exchange_base_total:g} {view.base} (sold or withdrawn outside "
            "btkit?): check the account, sell or close by hand, then restart btkit"
        )
    return problems
