"""One symbol's orders: entry, protection, exit and reconciliation (the `Trading` port).

Every order is recorded in the OrderLog *before* it is sent (an intent, status `new`)
and carries a client id derived from the signal id, so after a timeout, a lost
response or a crash the order is looked up by that id, never sent blindly again.
What to do next is decided by `btkit.engine.order_flow` (pure); this driver does the
I/O. Order problems are reported in TradeReports, never raised; a state it cannot
explain halts new entries on the symbol (the open signal is still monitored).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from btkit.domain.errors import (
    ExchangeError,
    InsufficientFundsError,
    OrderError,
    OrderRejectedError,
    OrderUncertainError,
    PriceCrossedError,
)
from btkit.domain.model import ClosedResult, OpenSignal
from btkit.domain.orders import (
    CLIENT_ID_PREFIX,
    MarketRules,
    OrderRequest,
    OrderRole,
    OrderState,
    ProtectionRequest,
    ProtectionState,
    TradeReport,
    client_order_id,
)
from btkit.engine import order_flow as flow
from btkit.engine.risk import Refusal, RiskLimits, check_entry, utc_day_start
from btkit.engine.sizing import CannotSize, choose_stake, round_price, size_entry
from btkit.faults import crash_point
from btkit.ports import Broker, Clock, ExchangeClose, OrderLog

log = logging.getLogger(__name__)

FILL_LOOKBACK_MS = 60_000
"""Fills are asked for from this long before an order's time: the exchange's clock may lag
ours (each fill is then matched to its order by client id)."""

SHORT_SKIPPED = "spot: short signals are announced, not traded"


@dataclass
class OpenPositions:
    """Signals holding a position, across every symbol's Trader (max open positions)."""

    by_symbol: dict[str, set[str]] = field(default_factory=dict)

    def count(self) -> int:
        return sum(len(ids) for ids in self.by_symbol.values())

    def set(self, symbol: str, signal_ids: list[str]) -> None:
        self.by_symbol[symbol] = set(signal_ids)

    def add(self, symbol: str, signal_id: str) -> None:
        self.by_symbol.setdefault(symbol, set()).add(signal_id)

    def discard(self, symbol: str, signal_id: str) -> None:
        self.by_symbol.get(symbol, set()).discard(signal_id)


@dataclass(frozen=True, slots=True)
class TraderOptions:
    limits: RiskLimits = field(default_factory=RiskLimits)
    stake: float | None = None
    reconcile_ms: int = 60_000
    lookups: int = 4
    """Attempts to learn an uncertain order's fate before halting."""
    backoff_seconds: float = 1.0


class _Again:
    """An action was done: ask the decisions again."""


AGAIN = _Again()


class _Unknown(Exception):
    """The exchange could not tell whether an order exists, after every attempt."""


class Trader:
    def __init__(
        self,
        symbol: str,
        *,
        broker: Broker,
        order_log: OrderLog,
        clock: Clock,
        positions: OpenPositions,
        options: TraderOptions = TraderOptions(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.symbol = symbol
        self._broker = broker
        self._log = order_log
        self._clock = clock
        self._positions = positions
        self._options = options
        self._sleep = sleep
        self._halted: str | None = None
        self._breaker_day: int | None = None
        """The UTC day the circuit breaker tripped (its halt lifts the next day)."""
        self._last_check: int | None = None
        self._unreconciled: str | None = None
        """Why the start-up reconciliation failed (the exchange did not answer), if it did."""
        self._rules: MarketRules | None = None

    @property
    def halted(self) -> str | None:
        if self._breaker_day is not None and utc_day_start(self._clock.now_ms()) > (
            self._breaker_day
        ):
            return None  # a new UTC day: the circuit breaker's halt has lifted
        return self._halted

    @halted.setter
    def halted(self, reason: str | None) -> None:
        self._halted = reason

    async def _halt(self, reason: str, when: int, *, breaker: bool = False) -> None:
        self._breaker_day = utc_day_start(when) if breaker else None
        if self._halted != reason:
            log.error("%s: TRADING HALTED (no new positions): %s", self.symbol, reason)
            await self._log.record_halt(self.symbol, reason, when)
        self._halted = reason

    async def _lift_breaker(self, when: int) -> None:
        if self._breaker_day is not None and self.halted is None:
            self._breaker_day, self._halted = None, None
            log.warning("%s: a new UTC day: the circuit breaker is lifted", self.symbol)
            await self._log.record_halt(self.symbol, None, when)

    async def _market(self) -> MarketRules:
        if self._rules is None:
            self._rules = await self._broker.rules(self.symbol)
        return self._rules

    # --- entry -----------------------------------------------------------------------

    async def enter(self, signal: OpenSignal, when: int, price: float) -> TradeReport | None:
        entry_id = client_order_id(signal.id, "entry")
        mode = self._broker.mode
        if signal.position != "long":
            return TradeReport(mode, "entry", entry_id, "skipped", how=SHORT_SKIPPED)
        await self._lift_breaker(when)
        if self.halted is not None:
            return TradeReport(mode, "entry", entry_id, "halted", how=self.halted)
        if self._log.orders(signal.id):
            return None  # already entered (a repeated call): restore/check carry on
        try:
            rules = await self._market()
            free = (await self._broker.balances()).get(rules.quote)
        except ExchangeError as exc:
            return self._skip(entry_id, price, f"the exchange did not answer ({exc}); not traded")
        free_quote = free.free if free is not None else 0.0
        stake = choose_stake(self._options.stake, signal.stake, free_quote)
        refusal = check_entry(
            self._options.limits,
            open_positions=self._positions.count(),
            stake=stake,
            realised_today=self._log.realised_since(utc_day_start(when)),
            quote=rules.quote,
        )
        if refusal is not None:
            return await self._refused(refusal, entry_id, when, price)
        sized = size_entry(stake, price, rules, free_quote, fee=rules.taker_fee)
        if isinstance(sized, CannotSize):
            return self._skip(entry_id, price, sized.reason)
        request = OrderRequest(
            signal.id, "entry", self.symbol, "buy", "market", sized.amount, entry_id
        )
        self._positions.add(self.symbol, signal.id)
        state = await self._send(request, when, "order:entry-intent")
        if isinstance(state, TradeReport):
            if state.status != "halted":
                self._positions.discard(self.symbol, signal.id)
            return dataclasses.replace(state, model_price=signal.price_open)
        crash_point("order:entry-sent")
        report = _report(mode, state, signal.price_open)
        if state.filled <= 0:
            self._positions.discard(self.symbol, signal.id)
            return report
        protection = await self._protect(signal, when)
        return dataclasses.replace(report, how=_join(report.how, protection))

    async def _refused(
        self, refusal: Refusal, entry_id: str, when: int, price: float
    ) -> TradeReport:
        if refusal.circuit_breaker:
            await self._halt(refusal.reason, when, breaker=True)
        return self._skip(entry_id, price, refusal.reason)

    def _skip(self, client_id: str, price: float, why: str) -> TradeReport:
        """Not sent: a limit, the sizing or the exchange's silence said no."""
        log.warning("%s: entry not traded: %s", self.symbol, why)
        return TradeReport(
            self._broker.mode, "entry", client_id, "skipped", model_price=price, how=why
        )

    async def _send(self, request: OrderRequest, when: int, point: str) -> OrderState | TradeReport:
        """Record the intent, send, and learn the outcome; a report when there is none."""
        intent = _intent(request, when)
        await self._log.record_order(request.signal_id, intent)
        crash_point(point)
        try:
            state = await self._place(request)
        except OrderRejectedError as exc:
            await self._log.record_order(
                request.signal_id, dataclasses.replace(intent, status="rejected", message=str(exc))
            )
            status: Literal["skipped", "rejected"] = (
                "skipped" if isinstance(exc, InsufficientFundsError) else "rejected"
            )
            why = f"the exchange refused the {request.role} order: {exc}; not retried"
            log.error("%s: %s", self.symbol, why)
            return TradeReport(self._broker.mode, request.role, request.client_id, status, how=why)
        except _Unknown as exc:
            await self._halt(str(exc), when)
            return TradeReport(
                self._broker.mode, request.role, request.client_id, "halted", how=str(exc)
            )
        state = await self._settled(state)
        await self._log.record_order(request.signal_id, state)
        await self._sync_fills(request.signal_id, min(intent.timestamp, state.timestamp))
        return state

    async def _settled(self, state: OrderState) -> OrderState:
        """A market order the exchange left open (part filled): cancel the rest, so what
        filled is what is held and protected."""
        if state.final or state.type != "market":
            return state
        try:
            cancelled = await self._broker.cancel(self.symbol, state.client_id)
        except (OrderError, ExchangeError) as exc:
            log.warning(
                "%s: the rest of %s not cancelled now: %s", self.symbol, state.client_id, exc
            )
            return state
        return state if cancelled is None else cancelled

    async def _place(self, request: OrderRequest) -> OrderState:
        """Place once. After an uncertain outcome, look the order up (spaced lookups) and
        never send it again in this run: an order the exchange does not show yet may still
        execute (Binance accepts a reused client id once the first is filled, so a second
        send could buy twice). Still not found: `_Unknown`; the intent stays `new`, so
        reconciliation keeps looking it up."""
        try:
            return await self._broker.place(request)
        except (OrderUncertainError, ExchangeError) as exc:  # it may have arrived
            log.warning("%s: %s; looking %s up", self.symbol, exc, request.client_id)
        for attempt in range(self._options.lookups):
            await self._pause(attempt)
            found = await self._find(request.client_id)
            if found is not None:
                return found
        raise _Unknown(
            f"the answer to order {request.client_id} was lost and the exchange does not show "
            f"it after {self._options.lookups} lookups; it is not sent again (it may still "
            "execute late). Check the exchange's orders, then restart btkit"
        )

    async def _find(self, client_id: str) -> OrderState | None:
        for attempt in range(self._options.lookups):
            try:
                return await self._broker.find(self.symbol, client_id)
            except (OrderError, ExchangeError) as exc:
                log.warning("%s: looking up %s failed: %s", self.symbol, client_id, exc)
                await self._pause(attempt)
        raise _Unknown(
            f"the exchange did not say whether order {client_id} exists after "
            f"{self._options.lookups} lookups: check it on the exchange, then restart btkit"
        )

    async def _pause(self, attempt: int) -> None:
        await self._sleep(self._options.backoff_seconds * 2**attempt)

    async def _sync_fills(self, signal_id: str, since: int) -> None:
        """Record the exchange's executions of this signal's orders since `since`."""
        orders = self._log.orders(signal_id)
        try:
            executions = await self._broker.fills(self.symbol, since - FILL_LOOKBACK_MS)
        except ExchangeError as exc:  # recorded at the next reconciliation
            log.warning("%s: fills not fetched now: %s", self.symbol, exc)
            return
        mine = [f for order in orders for f in flow.order_fills(executions, order)]
        unique = list({f.trade_id: f for f in mine}.values())
        unique.sort(key=lambda f: f.timestamp)
        if unique:
            await self._log.record_fills(signal_id, unique)

    async def _held(self, signal_id: str, since: int) -> float:
        """Base the signal holds, by its recorded fills; when its orders filled but their
        trades could not be read (the trades endpoint failed or lags), by the orders'
        filled amounts, capped by the free base balance, rather than "nothing held"."""
        fills = self._log.fills(signal_id)
        orders = self._log.orders(signal_id)
        bought = sum(o.filled for o in orders if o.side == "buy")
        if fills or bought <= 0:
            return flow.held(fills)
        await self._sync_fills(signal_id, since)
        fills = self._log.fills(signal_id)
        if fills:
            return flow.held(fills)
        sold = sum(o.filled for o in orders if o.side == "sell")
        rules = await self._market()
        free = (await self._broker.balances()).get(rules.base)
        estimate = max(min(bought - sold, free.free if free is not None else 0.0), 0.0)
        log.warning(
            "%s: the trades of signal %s could not be read; going by its orders: %g held",
            self.symbol,
            signal_id,
            estimate,
        )
        return estimate

    # --- protection ------------------------------------------------------------------

    async def _protect(self, signal: OpenSignal, when: int) -> str:
        """Place the OCO for what is held; a few words on how it went."""
        rules = await self._market()
        try:
            held = await self._held(signal.id, signal.timestamp)
        except ExchangeError as exc:
            reason = (
                f"the entry of {signal.id} filled but neither its trades nor the balance could "
                f"be read ({exc}): it is held WITHOUT a stop. Check the exchange, then restart"
            )
            await self._halt(reason, when)
            return reason
        amount = flow.sellable(held, rules.amount_step, rules.min_amount)
        list_id = client_order_id(signal.id, "protection")
        if amount <= 0:
            return "nothing held to protect"
        request = ProtectionRequest(
            signal.id,
            self.symbol,
            amount,
            round_price(signal.price_take_profit, rules.price_step),
            round_price(signal.price_stop_loss, rules.price_step),
            list_id,
        )
        await self._log.record_protection(signal.id, _protection_intent(request, when))
        crash_point("order:protect-intent")
        try:
            state = await self._place_protection(request)
        except PriceCrossedError as exc:
            await self._log.record_protection(
                signal.id, _protection_intent(request, when, "rejected", str(exc))
            )
            return await self._sell_crossed(signal, amount, when, exc)
        except OrderRejectedError as exc:
            reason = (
                f"the exchange refused the protective orders for {signal.id} ({exc}): "
                f"{amount:g} is held WITHOUT a stop on the exchange; the model still closes "
                "it. Place a stop-loss by hand or sell it"
            )
            await self._log.record_protection(
                signal.id, _protection_intent(request, when, "rejected", str(exc))
            )
            await self._halt(reason, when)
            return reason
        except _Unknown as exc:
            await self._halt(str(exc), when)
            return str(exc)
        await self._record_protection(signal.id, state)
        crash_point("order:protected")
        return (
            f"protected {amount:g}: take-profit {request.take_profit:g}, "
            f"stop-loss {request.stop_loss:g}"
        )

    async def _sell_crossed(
        self, signal: OpenSignal, amount: float, when: int, exc: PriceCrossedError
    ) -> str:
        """The price is already past the take-profit or the stop-loss (the entry filled
        beyond it, or the price moved before the OCO arrived): do what the OCO would do,
        at once, rather than hold a naked position. The model's exit finds this sale."""
        exit_id = client_order_id(signal.id, "exit")
        request = OrderRequest(signal.id, "exit", self.symbol, "sell", "market", amount, exit_id)
        state = await self._send(request, when, "order:crossed-exit-intent")
        if isinstance(state, TradeReport):
            reason = (
                f"the price is past the protective prices of {signal.id} ({exc}) and selling "
                f"at market failed ({state.how}): {amount:g} is held WITHOUT a stop. Sell it "
                "by hand on the exchange, then restart btkit"
            )
            await self._halt(reason, when)
            return reason
        price = state.average if state.average is not None else 0.0
        crossed = "take_profit" if price >= signal.price_take_profit else "stop_loss"
        message = flow.MODEL_REASON_PREFIX + crossed
        await self._log.record_order(signal.id, dataclasses.replace(state, message=message))
        how = (
            f"the price was already past the {crossed.replace('_', '-')} when the "
            f"protective orders were sent: sold {state.filled:g} at market"
        )
        log.warning("%s: %s (%s)", self.symbol, how, exit_id)
        return how

    async def _place_protection(self, request: ProtectionRequest) -> ProtectionState:
        for attempt in range(self._options.lookups):
            try:
                return await self._broker.protect(request)
            except (OrderUncertainError, ExchangeError) as exc:  # it may have arrived
                log.warning("%s: %s; looking %s up", self.symbol, exc, request.list_client_id)
            await self._pause(attempt)
            found = await self._find_protection(request.list_client_id)
            if found is not None:
                return found
        raise _Unknown(
            f"could not learn whether the protective orders {request.list_client_id} reached "
            "the exchange: check the exchange's open orders, then restart btkit"
        )

    async def _find_protection(self, list_id: str) -> ProtectionState | None:
        for attempt in range(self._options.lookups):
            try:
                return await self._broker.find_protection(self.symbol, list_id)
            except (OrderError, ExchangeError) as exc:
                log.warning("%s: looking up %s failed: %s", self.symbol, list_id, exc)
                await self._pause(attempt)
        raise _Unknown(
            f"the exchange did not say whether the protective orders {list_id} exist: "
            "check them on the exchange, then restart btkit"
        )

    # --- exit ------------------------------------------------------------------------

    async def exit(self, result: ClosedResult) -> TradeReport | None:
        signal = result.signal
        if signal.position != "long":
            return None
        orders = self._log.orders(signal.id)
        never_filled = (
            not self._log.fills(signal.id)
            and all(o.final for o in orders)
            and not any(o.side == "buy" and o.filled > 0 for o in orders)
        )
        if not any(o.role == "entry" for o in orders) or never_filled:
            return None
        exit_id = client_order_id(signal.id, "exit")
        when = result.timestamp
        try:
            return await self._exit(signal, result, exit_id, when)
        except (_Unknown, OrderRejectedError, ExchangeError) as exc:
            if isinstance(exc, OrderRejectedError):
                request = OrderRequest(
                    signal.id, "exit", self.symbol, "sell", "market", 0.0, exit_id
                )
                await self._exit_refused(signal.id, request, exc, when)
            left = flow.held(self._log.fills(signal.id))
            why = (
                f"the exit of signal {signal.id} failed ({exc}): {left:g} may still be held "
                "without protection. Sell it by hand on the exchange, then restart btkit"
            )
            await self._halt(why, when)
            status: Literal["rejected", "halted"] = (
                "rejected" if isinstance(exc, OrderRejectedError) else "halted"
            )
            return TradeReport(self._broker.mode, "exit", exit_id, status, how=why)
        finally:  # dust the filters cannot sell is no open position (it took a slot)
            if self._rules is None or not self._holds(signal.id, self._rules):
                self._positions.discard(self.symbol, signal.id)

    async def _exit(
        self, signal: OpenSignal, result: ClosedResult, exit_id: str, when: int
    ) -> TradeReport:
        mode = self._broker.mode
        recorded = next((o for o in self._log.orders(signal.id) if o.client_id == exit_id), None)
        if recorded is None:  # the intent first: a canceled protection is then btkit's doing
            recorded = OrderState(
                exit_id,
                self.symbol,
                "sell",
                "market",
                "exit",
                "new",
                0.0,
                0.0,
                None,
                0.0,
                when,
                message=flow.MODEL_REASON_PREFIX + result.close_reason,
            )
            await self._log.record_order(signal.id, recorded)
        await self._cancel_protection(signal.id)
        crash_point("order:protect-cancelled")
        await self._sync_fills(signal.id, signal.timestamp)
        found = await self._find(exit_id)
        if found is None or found.status == "rejected":
            rules = await self._market()
            amount = flow.sellable(
                await self._held(signal.id, signal.timestamp), rules.amount_step, rules.min_amount
            )
            if amount <= 0:
                done = dataclasses.replace(recorded, status="canceled", message=recorded.message)
                await self._log.record_order(signal.id, done)
                leg = next(
                    (
                        o
                        for o in self._log.orders(signal.id)
                        if o.role in flow.PROTECTION_ROLES and o.filled > 0
                    ),
                    None,
                )
                how = "nothing left to sell"
                if leg is not None:
                    price = leg.average if leg.average is not None else leg.price
                    how = f"the {leg.role} order filled first at {price}: nothing to sell"
                return TradeReport(
                    mode, "exit", exit_id, "canceled", model_price=result.current_price, how=how
                )
            request = OrderRequest(
                signal.id, "exit", self.symbol, "sell", "market", amount, exit_id
            )
            state = await self._place(request)
        else:
            state = found
        state = await self._settled(state)
        await self._log.record_order(
            signal.id, dataclasses.replace(state, message=state.message or recorded.message)
        )
        await self._sync_fills(signal.id, signal.timestamp)
        crash_point("order:exit-sent")
        report = _report(mode, state, result.current_price)
        rules = await self._market()
        left = flow.sellable(
            flow.held(self._log.fills(signal.id)), rules.amount_step, rules.min_amount
        )
        if left > 0:  # a part-filled sell (or an earlier crossed sale): never silently naked
            why = (
                f"the exit of signal {signal.id} sold only part of the position: {left:g} is "
                "still held WITHOUT protection. Sell it by hand on the exchange, then restart "
                "btkit"
            )
            await self._halt(why, when)
            return dataclasses.replace(report, status="halted", how=_join(report.how, why))
        return report

    async def _cancel_protection(self, signal_id: str) -> None:
        legs = [o for o in self._log.orders(signal_id) if o.role in flow.PROTECTION_ROLES]
        list_ids = {leg.list_client_id or leg.client_id for leg in legs if not leg.final}
        for list_id in sorted(list_ids):
            try:
                state = await self._broker.cancel_protection(self.symbol, list_id)
            except (OrderUncertainError, ExchangeError):
                state = await self._find_protection(list_id)
                if state is not None and state.status == "open":
                    raise _Unknown(
                        f"the protective orders {list_id} could not be cancelled: cancel them "
                        "on the exchange, then restart btkit"
                    ) from None
            if state is not None:
                await self._record_protection(signal_id, state)

    # --- reconciliation --------------------------------------------------------------

    async def check(self, signal: OpenSignal | None, when: int) -> ExchangeClose | None:
        now = self._clock.now_ms()
        if self._last_check is not None and now - self._last_check < self._options.reconcile_ms:
            return None
        self._last_check = now
        await self._lift_breaker(when)
        if self._unreconciled is not None and self._halted == self._unreconciled:
            return await self.restore(signal, when)
        if signal is None or signal.position != "long":
            return None
        try:
            return await self._settle(signal, when)
        except (_Unknown, ExchangeError, OrderError) as exc:
            log.warning("%s: reconciliation postponed: %s", self.symbol, exc)
            return None

    async def restore(self, signal: OpenSignal | None, when: int) -> ExchangeClose | None:
        self._last_check = self._clock.now_ms()
        when = when or self._last_check
        try:
            close = None
            if signal is not None and signal.position == "long":
                close = await self._settle(signal, when)
            await self._compare_account(signal, when)
        except (_Unknown, ExchangeError, OrderError) as exc:
            self._unreconciled = (
                f"could not reconcile with the exchange on start ({exc}): no new positions "
                "until it answers (retried every BTKIT_RECONCILE_SECONDS)"
            )
            await self._halt(self._unreconciled, when)
            return None
        if self._unreconciled is not None and self._halted == self._unreconciled:
            log.warning("%s: reconciled with the exchange: trading resumes", self.symbol)
            self._halted = None
            await self._log.record_halt(self.symbol, None, when)
        self._unreconciled = None
        return close

    async def _settle(self, signal: OpenSignal, when: int) -> ExchangeClose | None:
        """Ask the decisions until nothing is left to do for `signal`."""
        rules = await self._market()
        if self._log.orders(signal.id):  # executions the ledger may have missed
            await self._sync_fills(signal.id, signal.timestamp)
        for _ in range(8):  # each action moves the trade on; a loop is a bug, not a state
            action = flow.next_action(
                self._log.orders(signal.id),
                self._log.fills(signal.id),
                amount_step=rules.amount_step,
                min_amount=rules.min_amount,
            )
            outcome = await self._apply(signal, action, when)
            if not isinstance(outcome, _Again):
                return outcome
        raise _Unknown(
            f"the orders of signal {signal.id} do not settle: check them on the exchange"
        )

    async def _apply(
        self, signal: OpenSignal, action: flow.Action, when: int
    ) -> ExchangeClose | _Again | None:
        """Do one action; AGAIN: ask the decisions again, else the outcome."""
        if isinstance(action, flow.LookUpOrder):
            return AGAIN if await self._refresh(signal, action.order, when) else None
        if isinstance(action, flow.LookUpProtection):
            return await self._look_up_protection(signal, action.list_client_id)
        if isinstance(action, flow.Protect):
            await self._protect(signal, when)
            return None
        if isinstance(action, flow.SellRest):
            return await self._sell_rest(signal, action, when)
        if isinstance(action, flow.ClosedByProtection | flow.ClosedByExit):
            return self._closed_by(signal, action, when)
        if isinstance(action, flow.Halt):
            await self._halt(action.reason, when)
        return None

    async def _look_up_protection(self, signal: OpenSignal, list_id: str) -> _Again | None:
        found = await self._find_protection(list_id)
        if found is None:
            legs = [
                dataclasses.replace(
                    o, status="canceled", message=flow.NOT_ON_EXCHANGE + "never sent"
                )
                for o in self._log.orders(signal.id)
                if o.list_client_id == list_id and not o.final
            ]
            found = ProtectionState(list_id, self.symbol, "canceled", tuple(legs))
        await self._record_protection(signal.id, found)
        await self._sync_fills(signal.id, signal.timestamp)
        return None if found.status == "open" else AGAIN

    async def _sell_rest(
        self, signal: OpenSignal, action: flow.SellRest, when: int
    ) -> _Again | None:
        """Finish an exit decided before a restart: sell what is still held."""
        request = OrderRequest(
            signal.id, "exit", self.symbol, "sell", "market", action.amount, action.exit.client_id
        )
        try:
            state = await self._place(request)
        except OrderRejectedError as exc:
            await self._exit_refused(signal.id, request, exc, when)
            return AGAIN  # the decisions now halt
        await self._log.record_order(
            signal.id, dataclasses.replace(state, message=action.exit.message)
        )
        await self._sync_fills(signal.id, signal.timestamp)
        log.warning("%s: the exit decided before a restart is finished", self.symbol)
        return AGAIN

    async def _exit_refused(
        self, signal_id: str, request: OrderRequest, exc: OrderRejectedError, when: int
    ) -> None:
        """Recorded as refused, so no reconciliation sends it again."""
        refused = dataclasses.replace(_intent(request, when), status="rejected", message=str(exc))
        await self._log.record_order(signal_id, refused)

    def _closed_by(
        self, signal: OpenSignal, action: flow.ClosedByProtection | flow.ClosedByExit, when: int
    ) -> ExchangeClose:
        if isinstance(action, flow.ClosedByProtection):
            leg = action.leg
            return self._closed(
                signal, leg, leg.role, when, "the exchange's protective order filled"
            )
        reason = flow.model_reason(action.exit)
        how = f"the exit sold before a restart (model: {reason})"
        if reason is None:
            reason, how = (
                "time_expired",
                "the exit sold before a restart; the model's reason is unknown",
            )
        return self._closed(signal, action.exit, reason, when, how)

    async def _record_protection(self, signal_id: str, state: ProtectionState) -> None:
        """Record the list's legs; intent legs the exchange names otherwise are closed out."""
        ids = {leg.client_id for leg in state.legs}
        stale = [
            dataclasses.replace(
                o, status="canceled", message=flow.NOT_ON_EXCHANGE + "the exchange named the legs"
            )
            for o in self._log.orders(signal_id)
            if o.list_client_id == state.list_client_id
            and o.client_id not in ids
            and o.status == "new"
        ]
        if stale:
            await self._log.record_protection(
                signal_id, dataclasses.replace(state, legs=tuple(stale))
            )
        await self._log.record_protection(signal_id, state)

    def _closed(
        self, signal: OpenSignal, order: OrderState, reason: str, when: int, how: str
    ) -> ExchangeClose:
        self._positions.discard(self.symbol, signal.id)
        price = order.average if order.average is not None else (order.price or 0.0)
        report = _report(self._broker.mode, order, None)
        log.info("%s: %s (%s at %g)", self.symbol, how, order.client_id, price)
        return ExchangeClose(
            reason,  # type: ignore[arg-type]  # a leg's role or a recorded CloseReason
            price,
            when,
            dataclasses.replace(report, how=_join(how, report.how)),
        )

    async def _refresh(self, signal: OpenSignal, order: OrderState, when: int) -> bool:
        """Learn what became of an order not final in the ledger."""
        found = await self._find(order.client_id)
        if found is None:
            if order.role == "exit":  # decided, never sent: SellRest sends it
                found = dataclasses.replace(order, status="canceled")
            else:
                found = dataclasses.replace(
                    order,
                    status="canceled",
                    message="btkit stopped before sending it; not sent late (the price has "
                    "moved since the signal)",
                )
                log.warning(
                    "%s: entry %s was never sent: signal %s is not traded",
                    self.symbol,
                    order.client_id,
                    signal.id,
                )
        else:
            found = await self._settled(found)
            found = dataclasses.replace(found, message=found.message or order.message)
        await self._log.record_order(signal.id, found)
        await self._sync_fills(signal.id, order.timestamp)
        return found.final

    def _holds(self, signal_id: str, rules: MarketRules) -> bool:
        """An order still live, or more than dust: the rest of a lot the exchange's
        filters cannot sell (a buy's fee taken in the base) is no open position."""
        if any(not o.final for o in self._log.orders(signal_id)):
            return True
        left = flow.held(self._log.fills(signal_id))
        return flow.sellable(left, rules.amount_step, rules.min_amount) > 0

    async def _compare_account(self, signal: OpenSignal | None, when: int) -> None:
        rules = await self._market()
        open_ids = [s for s in self._log.open_trades(self.symbol) if self._holds(s, rules)]
        self._positions.set(self.symbol, open_ids)
        balances = await self._broker.balances()
        resting = await self._broker.open_orders(self.symbol)
        known: list[str] = []
        ledger_held = 0.0
        for signal_id in open_ids:
            for order in self._log.orders(signal_id):
                known.append(order.client_id)
                if order.list_client_id:
                    known.append(order.list_client_id)
            ledger_held += flow.held(self._log.fills(signal_id))
        base = balances.get(rules.base)
        view = flow.AccountView(
            signal_id=signal.id if signal is not None else None,
            ledger_open=open_ids,
            ledger_held=ledger_held,
            exchange_base_total=base.total if base is not None else 0.0,
            exchange_btk_open=[
                o.client_id for o in resting if o.client_id.startswith(CLIENT_ID_PREFIX)
            ],
            ledger_known=known,
            base=rules.base,
            tolerance=rules.amount_step or 0.0,
        )
        problems = flow.mismatches(view)
        if problems and self._broker.mode == "paper":  # no exchange to fix it on by hand
            problems.append(
                "paper: nothing can be closed by hand in a paper wallet; a run on history "
                "starts over with --restart (a new wallet and a new ledger run)"
            )
        if problems:
            await self._halt("; ".join(problems), when)
        elif self._halted is None:
            await self._halt_state_on_start(rules.quote, when)

    async def _halt_state_on_start(self, quote: str, when: int) -> None:
        """A clean start lifts a halt the ledger kept from an earlier run, unless today's
        losses still trip the circuit breaker."""
        refusal = check_entry(
            RiskLimits(daily_loss_limit=self._options.limits.daily_loss_limit),
            open_positions=0,
            stake=0.0,
            realised_today=self._log.realised_since(utc_day_start(when)),
            quote=quote,
        )
        if refusal is not None:
            await self._halt(refusal.reason, when, breaker=True)
        else:
            await self._log.record_halt(self.symbol, None, when)


def _intent(request: OrderRequest, when: int) -> OrderState:
    return OrderState(
        request.client_id,
        request.symbol,
        request.side,
        request.type,
        request.role,
        "new",
        request.amount,
        0.0,
        None,
        0.0,
        when,
        price=request.price,
        stop_price=request.stop_price,
    )


def _protection_intent(
    request: ProtectionRequest, when: int, status: str = "new", message: str = ""
) -> ProtectionState:
    roles: tuple[tuple[OrderRole, float], ...] = (
        ("take_profit", request.take_profit),
        ("stop_loss", request.stop_loss),
    )
    legs = tuple(
        OrderState(
            client_order_id(request.signal_id, role),
            request.symbol,
            "sell",
            "limit_maker" if role == "take_profit" else "stop_loss_limit",
            role,
            status,  # type: ignore[arg-type]  # "new" or "rejected"
            request.amount,
            0.0,
            None,
            0.0,
            when,
            price=price,
            list_client_id=request.list_client_id,
            message=message,
        )
        for role, price in roles
    )
    return ProtectionState(request.list_client_id, request.symbol, "open", legs)


def _report(mode: str, state: OrderState, model_price: float | None) -> TradeReport:
    """The event's trade details; `how` keeps the broker's word on the fill (paper:
    tick price + slippage, or the book walk), which the result must show."""
    partly = ""
    if state.filled and state.filled < state.amount:
        partly = f"partially filled: {state.filled:g} of {state.amount:g}"
    how = _join(state.message, partly)
    return TradeReport(
        mode,  # type: ignore[arg-type]  # the broker's mode
        state.role,
        state.client_id,
        state.status,
        state.amount,
        state.filled,
        state.average,
        state.fee,
        model_price,
        how,
    )


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
