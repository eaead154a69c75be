"""`PaperBroker`: the `Broker` port over a simulated wallet, for `--trade paper`.

Market orders fill at once: by walking the exchange's current order book (an
`OrderBookSource`) with the market's taker fee, never past the slippage cap (what
the capped book cannot give expires unfilled: a partial fill); without a book
(offline replay) at the tick's price (`MarketData.average_price` at the clock's
now) moved by the configured slippage. Each order's `message` says how it filled.

Protective OCO lists rest in the wallet and are settled lazily and
deterministically whenever the broker is asked (balances, find, open orders,
fills): the first finished 1m candle opening at or after placement that reached a
leg fills it (stop first when one candle reached both), at the trigger price
(the stop minus slippage); the other leg expires, as on Binance. A limit order
takes at once what is at or better than its price and rests the rest the same
way, filling at its price on the first candle that traded there.

Every change is written to the wallet (its journal) before the call returns, so a crash
after a result was returned never loses it. Rejected orders (filters, balance,
no price) are not kept, as an exchange does not keep them: `find` answers None.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Protocol, TypeVar

from btkit.adapters.brokers.paper_fills import (
    apply_fill,
    fee_of,
    finite,
    first_open_after,
    first_touch,
    first_trigger,
    slipped_price,
    split_symbol,
    walk_book,
    within_limit,
)
from btkit.adapters.brokers.paper_wallet import (
    RestingList,
    RestingOrder,
    WalletFile,
    WalletState,
    WalletTrade,
    replace,
)
from btkit.domain.candles import Candles
from btkit.domain.errors import InsufficientFundsError, OrderRejectedError
from btkit.domain.model import MINUTE_MS
from btkit.domain.orders import (
    Balance,
    Fill,
    MarketRules,
    OrderRequest,
    OrderState,
    ProtectionRequest,
    ProtectionState,
    TradeMode,
    client_order_id,
)
from btkit.engine.sizing import round_down
from btkit.ports import Clock, MarketData, OrderBookSource

_Found = TypeVar("_Found")

BOOK_DEPTH = 100
"""Levels asked of the order book per market order."""
REPLAY_AMOUNT_STEP = 1e-8
"""Without the exchange's rules (replay), amounts are kept to this step, no minimums."""
_MAX_SCAN_MINUTES = 60 * 24 * 7
"""Longest stretch of candles one settlement reads (a week); later calls read on."""


class RulesSource(Protocol):
    """Where a market's rules come from (the exchange's markets), when there is one."""

    async def rules(self, symbol: str) -> MarketRules: ...


@dataclasses.dataclass(frozen=True, slots=True)
class PaperCosts:
    fee_rate: float
    """Taker fee fraction used where the exchange's rules are unknown (replay)."""
    slippage_percent: float
    """Replay fills and stop-loss fills move this much against the order."""
    cap_percent: float
    """Book walks go no further than this from the best price."""


class PaperBroker:
    """A simulated account on one exchange label, one wallet per (label, strategy)."""

    mode: TradeMode = "paper"

    def __init__(
        self,
        wallet: WalletFile,
        state: WalletState,
        *,
        name: str,
        market: MarketData,
        clock: Clock,
        costs: PaperCosts,
        books: OrderBookSource | None = None,
        rules_source: RulesSource | None = None,
    ) -> None:
        self.name = name
        self._wallet = wallet
        wallet.state = state
        self._market = market
        self._clock = clock
        self._costs = costs
        self._books = books
        self._rules_source = rules_source
        self._rules: dict[str, MarketRules] = {}
        self._lock = asyncio.Lock()
        self._checked: dict[str, int] = {}
        """List or limit order id -> open time of the next candle to look at (in memory:
        a restart re-reads from placement and reaches the same answer)."""

    @property
    def state(self) -> WalletState:
        """The wallet as last written (tests and `btkit positions` read it)."""
        return self._wallet.state

    @property
    def _state(self) -> WalletState:
        return self._wallet.state

    @contextlib.asynccontextmanager
    async def _changing(self) -> AsyncIterator[WalletState]:
        """One change at a time, from the wallet as it is on disk."""
        async with self._lock:
            await self._wallet.idle()
            yield self._wallet.state

    def summary(self) -> str:
        """For the start-up panel (`StartupInfo.trade_detail`): the wallet and its money."""
        held = ", ".join(
            f"{balance.total:g} {code}"
            for code, balance in self._state.balance_view().items()
            if balance.total
        )
        return f"paper wallet {self._wallet.path}: {held or 'empty'}"

    # --- rules and balances -------------------------------------------------------

    async def rules(self, symbol: str) -> MarketRules:
        if symbol not in self._rules:
            if self._rules_source is not None:
                self._rules[symbol] = await self._rules_source.rules(symbol)
            else:
                self._rules[symbol] = self._default_rules(symbol)
        return self._rules[symbol]

    def _default_rules(self, symbol: str) -> MarketRules:
        """Replay: the settings' fee, a tiny amount step, no minimums."""
        pair = split_symbol(symbol, self._state.starting)
        if pair is None:
            raise OrderRejectedError(
                f"paper: cannot tell the base and quote currency of {symbol}; name its "
                "candle file BASE-QUOTE-1m.csv (e.g. ETH-BTC-1m.csv)."
            )
        base, quote = pair
        return MarketRules(
            symbol=symbol,
            base=base,
            quote=quote,
            amount_step=REPLAY_AMOUNT_STEP,
            price_step=None,
            min_amount=None,
            min_notional=None,
            taker_fee=self._costs.fee_rate,
            has_oco=True,
        )

    async def balances(self) -> dict[str, Balance]:
        state = self._state
        waiting = {r.state.symbol for r in state.lists.values() if r.state.status == "open"}
        waiting |= {state.orders[client_id].symbol for client_id in state.resting}
        for symbol in sorted(waiting):
            await self._settle(symbol)
        return self._state.balance_view()

    # --- orders ------------------------------------------------------------------

    async def place(self, request: OrderRequest) -> OrderState:
        rules = await self.rules(request.symbol)
        self._check_request(request, rules)
        takes, how = await self._takes(request)
        if request.price is not None and request.type == "limit":
            takes = within_limit(takes, request.side, request.price)
            taken = sum(a for _, a in takes)
            source = how.removeprefix("paper: ")
            if self._books is not None:
                source = f"walked {len(takes)} level(s) of the order book"
            how = f"paper: limit {request.price:g}"
            if takes:
                how += f"; {taken:g} taken at once ({source})"
            if taken < request.amount:
                how += "; the rest rests until a finished 1m candle trades at the limit"
        async with self._changing() as state:
            self._check_duplicate(state, request.client_id)
            self._check_funds(state, request, rules, takes)
            order, state = self._execute(state, request, rules, takes, how)
            await self._commit(state)
        return order

    async def _takes(self, request: OrderRequest) -> tuple[tuple[tuple[float, float], ...], str]:
        """What the market gives the order now, and how (a limit may get nothing)."""
        market = request.type == "market"
        if self._books is not None:
            book = await self._books.order_book(request.symbol, BOOK_DEPTH)
            walk = walk_book(book, request.side, request.amount, self._costs.cap_percent)
            if not walk.takes:
                if not market:
                    return (), ""
                side = "asks" if request.side == "buy" else "bids"
                raise OrderRejectedError(
                    f"paper: the {request.symbol} order book has no {side}; nothing to fill "
                    f"{request.client_id} against."
                )
            how = f"paper: walked {len(walk.takes)} level(s) of the order book"
            if market and walk.filled < request.amount:
                how += (
                    f"; filled {walk.filled:g} of {request.amount:g}, the rest lies beyond "
                    f"the {self._costs.cap_percent:g} % slippage cap ({walk.cap_price:g}) "
                    "and expired"
                )
            return walk.takes, how
        now = self._clock.now_ms()
        tick = await self._market.average_price(request.symbol, now)
        if tick is None or not finite(tick) or tick <= 0:
            if not market:
                return (), ""
            raise OrderRejectedError(
                f"paper: no price for {request.symbol} at {now} (no finished candle in "
                f"the last five minutes); {request.client_id} was not placed."
            )
        price = slipped_price(tick, request.side, self._costs.slippage_percent)
        how = (
            f"paper: replay tick price {tick:g} "
            f"{'+' if request.side == 'buy' else '-'} "
            f"{self._costs.slippage_percent:g} % slippage"
        )
        return ((price, request.amount),), how

    def _check_request(self, request: OrderRequest, rules: MarketRules) -> None:
        if request.type not in ("market", "limit"):
            raise OrderRejectedError(
                f"paper: {request.type} orders are not simulated; paper trading fills "
                "market and limit orders and rests OCO protection."
            )
        if request.type == "limit" and not (
            request.price is not None and finite(request.price) and request.price > 0
        ):
            raise OrderRejectedError(
                f"paper: a limit order needs a price above 0, not {request.price!r}."
            )
        _check_amount(request.amount, rules)
        if request.type == "limit" and request.price is not None:
            _check_price(request.price, rules)

    @staticmethod
    def _check_duplicate(state: WalletState, client_id: str) -> None:
        known = state.orders.get(client_id)
        open_legs = (
            leg
            for resting in state.lists.values()
            if resting.state.status == "open"
            for leg in resting.state.legs
        )
        if (known is not None and not known.final) or any(
            leg.client_id == client_id for leg in open_legs
        ):
            raise OrderRejectedError(f"Duplicate order sent: {client_id} is still open.")

    def _check_funds(
        self,
        state: WalletState,
        request: OrderRequest,
        rules: MarketRules,
        takes: tuple[tuple[float, float], ...],
    ) -> None:
        taken = sum(a for _, a in takes)
        resting = request.amount - taken if request.type == "limit" else 0.0
        limit = request.price or 0.0
        if request.side == "buy":
            need = sum(a * p + fee_of(a, p, rules.taker_fee) for p, a in takes)
            need += resting * limit * (1.0 + rules.taker_fee)
            code, free = rules.quote, state.free(rules.quote)
        else:
            need = taken + resting
            code, free = rules.base, state.free(rules.base)
        notional = sum(a * p for p, a in takes) + resting * limit
        if rules.min_notional is not None and notional < rules.min_notional:
            raise OrderRejectedError(
                f"Filter failure: NOTIONAL ({notional:g} {rules.quote} is below the "
                f"minimum {rules.min_notional:g})"
            )
        if need > free:
            raise InsufficientFundsError(
                f"paper: insufficient balance for {request.client_id}: needs {need:g} {code}"
                f"{' (fees included)' if request.side == 'buy' else ''}, {free:g} {code} is "
                "free."
            )

    def _execute(
        self,
        state: WalletState,
        request: OrderRequest,
        rules: MarketRules,
        takes: tuple[tuple[float, float], ...],
        how: str,
    ) -> tuple[OrderState, WalletState]:
        now = self._clock.now_ms()
        exchange_id = f"P{state.next_order}"
        fills = []
        balances = state.balances
        trade_no = state.next_trade
        for price, amount in takes:
            fee = fee_of(amount, price, rules.taker_fee)
            balances = apply_fill(
                balances,
                base=rules.base,
                quote=rules.quote,
                side=request.side,
                amount=amount,
                price=price,
                fee=fee,
            )
            fill = Fill(
                str(trade_no),
                request.client_id,
                request.symbol,
                request.side,
                amount,
                price,
                fee,
                now,
                exchange_id,
            )
            fills.append(WalletTrade(fill, rules.base, rules.quote))
            trade_no += 1
        filled = sum(a for _, a in takes)
        if len(takes) == 1:
            filled = takes[0][1]
        complete = filled >= request.amount * (1 - 1e-12)
        rests = request.type == "limit" and not complete
        order = OrderState(
            client_id=request.client_id,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            role=request.role,
            status="closed" if complete else "open" if rests else "expired",
            amount=request.amount,
            filled=request.amount if complete else filled,
            average=sum(p * a for p, a in takes) / filled if takes else None,
            fee=sum(t.fill.fee for t in fills),
            timestamp=now,
            exchange_id=exchange_id,
            price=request.price,
            message=how,
        )
        resting = dict(state.resting)
        if rests:
            assert request.price is not None
            resting[request.client_id] = RestingOrder(
                request.client_id,
                request.side,
                request.price,
                rules.base,
                rules.quote,
                rules.taker_fee,
                now,
            )
        new = replace(
            state,
            balances=balances,
            resting=resting,
            orders={**state.orders, request.client_id: order},
            trades=(*state.trades, *fills),
            next_order=state.next_order + 1,
            next_trade=trade_no,
        )
        return order, new

    async def _commit(self, state: WalletState) -> None:
        """Write `state`; it becomes the wallet once on disk (memory never runs ahead)."""
        await self._wallet.save(state)

    async def find(self, symbol: str, client_id: str) -> OrderState | None:
        await self._settle(symbol)
        order = self._state.orders.get(client_id)
        if order is not None:
            return order
        for resting in self._state.lists.values():
            for leg in resting.state.legs:
                if leg.client_id == client_id:
                    return leg
        return None

    async def cancel(self, symbol: str, client_id: str) -> OrderState | None:
        """Market orders are final at once; a protective leg cancels its whole list."""
        found = await self.find(symbol, client_id)
        if found is None or found.final:
            return found
        if found.list_client_id is not None:
            await self.cancel_protection(symbol, found.list_client_id)
            return await self.find(symbol, client_id)
        async with self._changing() as state:
            order = state.orders.get(client_id)
            if order is None or order.final:
                return order
            canceled = dataclasses.replace(order, status="canceled", timestamp=self._clock.now_ms())
            resting = {k: v for k, v in state.resting.items() if k != client_id}
            await self._commit(
                replace(state, orders={**state.orders, client_id: canceled}, resting=resting)
            )
        return canceled

    # --- protection ----------------------------------------------------------------

    async def protect(self, request: ProtectionRequest) -> ProtectionState:
        rules = await self.rules(request.symbol)
        if not (finite(request.amount, request.take_profit, request.stop_loss)):
            raise OrderRejectedError("paper: protection prices and amount must be numbers.")
        _check_amount(request.amount, rules)
        for price in (request.take_profit, request.stop_loss):
            _check_price(price, rules)
        if rules.has_oco and not request.take_profit > request.stop_loss > 0:
            raise OrderRejectedError(
                "The relationship of the prices for the orders is not correct: take-profit "
                f"{request.take_profit:g} must be above stop-loss {request.stop_loss:g} > 0."
            )
        now = self._clock.now_ms()
        signal = request.signal_id
        legs: list[OrderState] = []
        if rules.has_oco:
            legs.append(
                self._leg(request, "take_profit", client_order_id(signal, "take_profit"), now)
            )
        legs.append(self._leg(request, "stop_loss", client_order_id(signal, "stop_loss"), now))
        protection = ProtectionState(request.list_client_id, request.symbol, "open", tuple(legs))
        async with self._changing() as state:
            existing = state.lists.get(request.list_client_id)
            if existing is not None and existing.state.status == "open":
                raise OrderRejectedError(
                    f"Duplicate order sent: list {request.list_client_id} is still open."
                )
            for leg in legs:
                self._check_duplicate(state, leg.client_id)
            free = state.free(rules.base)
            if request.amount > free:
                raise InsufficientFundsError(
                    f"paper: insufficient balance for {request.list_client_id}: the "
                    f"protection sells {request.amount:g} {rules.base}, {free:g} "
                    f"{rules.base} is free."
                )
            resting = RestingList(
                protection,
                request.take_profit if rules.has_oco else None,
                request.stop_loss,
                now,
                rules.base,
                rules.quote,
                rules.taker_fee,
                self._costs.slippage_percent,
            )
            state = replace(
                state,
                lists={**state.lists, request.list_client_id: resting},
                next_order=state.next_order + len(legs),
            )
            await self._commit(state)
        return protection

    def _leg(self, request: ProtectionRequest, role: str, client_id: str, now: int) -> OrderState:
        take = role == "take_profit"
        return OrderState(
            client_id=client_id,
            symbol=request.symbol,
            side="sell",
            type="limit_maker" if take else "stop_loss_limit",
            role="take_profit" if take else "stop_loss",
            status="open",
            amount=request.amount,
            filled=0.0,
            average=None,
            fee=0.0,
            timestamp=now,
            exchange_id=None,
            price=request.take_profit if take else request.stop_loss,
            stop_price=None if take else request.stop_loss,
            list_client_id=request.list_client_id,
        )

    async def find_protection(self, symbol: str, list_client_id: str) -> ProtectionState | None:
        await self._settle(symbol)
        resting = self._state.lists.get(list_client_id)
        return None if resting is None else resting.state

    async def cancel_protection(self, symbol: str, list_client_id: str) -> ProtectionState | None:
        await self._settle(symbol)
        async with self._changing() as state:
            resting = state.lists.get(list_client_id)
            if resting is None or resting.state.status != "open":
                return None if resting is None else resting.state
            now = self._clock.now_ms()
            legs = tuple(
                dataclasses.replace(leg, status="canceled", timestamp=now)
                for leg in resting.state.legs
            )
            canceled = dataclasses.replace(resting.state, status="canceled", legs=legs)
            state = replace(
                state,
                lists={**state.lists, list_client_id: dataclasses.replace(resting, state=canceled)},
            )
            await self._commit(state)
        return canceled

    async def open_orders(self, symbol: str) -> list[OrderState]:
        await self._settle(symbol)
        state = self._state
        found = [o for o in state.orders.values() if o.symbol == symbol and not o.final]
        for resting in state.lists.values():
            if resting.state.symbol == symbol:
                found += [leg for leg in resting.state.legs if not leg.final]
        return found

    async def fills(self, symbol: str, since_ms: int) -> list[Fill]:
        await self._settle(symbol)
        return [
            t.fill
            for t in self._state.trades
            if t.fill.symbol == symbol and t.fill.timestamp >= since_ms
        ]

    async def close(self) -> None:
        await self._wallet.close()

    # --- settling resting lists ------------------------------------------------------

    async def _settle(self, symbol: str) -> None:
        """Fill the symbol's open lists and limit orders that a finished candle reached."""
        await self._settle_lists(symbol)
        await self._settle_limits(symbol)

    async def _first_unseen(
        self,
        key: str,
        placed_at: int,
        symbol: str,
        find: Callable[..., _Found | None],
    ) -> _Found | None:
        """The first thing `find(open times, highs, lows, since=...)` sees in the candles
        not yet looked at for `key`; the chunks walked past are remembered."""
        async with contextlib.aclosing(self._unseen(key, placed_at, symbol)) as unseen:
            async for since, window in unseen:
                found = find(
                    window.timestamp.tolist(),
                    window.high.tolist(),
                    window.low.tolist(),
                    since=since,
                )
                if found is not None:
                    return found
        return None

    async def _unseen(
        self, key: str, placed_at: int, symbol: str
    ) -> AsyncGenerator[tuple[int, Candles], None]:
        """The finished 1m candles of `symbol` not yet looked at for `key`, a week at a
        time up to now; a chunk the caller walks past is remembered as seen."""
        now = self._clock.now_ms()
        while True:
            since = self._checked.get(key, first_open_after(placed_at))
            minutes = min((now - since) // MINUTE_MS, _MAX_SCAN_MINUTES)
            if minutes <= 0:
                return
            end = since + minutes * MINUTE_MS
            window = await self._market.candles(symbol, "1m", minutes, end)
            yield since, window
            if len(window):  # read on after the newest candle served, never past it
                self._checked[key] = int(window.timestamp[-1]) + MINUTE_MS
            elif end < now - MINUTE_MS:  # a stretch without trades, with more after it
                self._checked[key] = end
            if self._checked.get(key, since) <= since:
                return

    async def _settle_lists(self, symbol: str) -> None:
        resting = [
            r
            for r in self._state.lists.values()
            if r.state.symbol == symbol and r.state.status == "open"
        ]
        for item in resting:
            list_id = item.state.list_client_id
            trigger = await self._first_unseen(
                list_id,
                item.placed_at,
                symbol,
                functools.partial(
                    first_trigger, take_profit=item.take_profit, stop_loss=item.stop_loss
                ),
            )
            if trigger is None:
                continue
            async with self._changing() as state:
                current = state.lists.get(list_id)
                if current is None or current.state.status != "open":
                    continue
                when = trigger.candle_open + MINUTE_MS
                await self._commit(self._trigger(state, current, trigger.role, when))
            self._checked.pop(list_id, None)

    async def _settle_limits(self, symbol: str) -> None:
        state = self._state
        waiting = [r for r in state.resting.values() if state.orders[r.client_id].symbol == symbol]
        for item in waiting:
            touched = await self._first_unseen(
                item.client_id,
                item.placed_at,
                symbol,
                functools.partial(first_touch, side=item.side, price=item.price),
            )
            if touched is None:
                continue
            async with self._changing() as state:
                if item.client_id not in state.resting:
                    continue
                await self._commit(self._fill_limit(state, item, touched + MINUTE_MS))
            self._checked.pop(item.client_id, None)

    def _fill_limit(self, state: WalletState, item: RestingOrder, when: int) -> WalletState:
        """The rest of a resting limit order fills at its price (taker fee: conservative)."""
        order = state.orders[item.client_id]
        amount = order.remaining
        fee = fee_of(amount, item.price, item.fee_rate)
        balances = apply_fill(
            state.balances,
            base=item.base,
            quote=item.quote,
            side=item.side,
            amount=amount,
            price=item.price,
            fee=fee,
        )
        fill = Fill(
            str(state.next_trade),
            order.client_id,
            order.symbol,
            order.side,
            amount,
            item.price,
            fee,
            when,
            order.exchange_id,
        )
        paid = (order.average or 0.0) * order.filled + item.price * amount
        done = dataclasses.replace(
            order,
            status="closed",
            filled=order.amount,
            average=paid / (order.filled + amount),
            fee=order.fee + fee,
            timestamp=when,
            message=f"{order.message}; filled at {item.price:g} by the 1m candle of "
            f"{when - MINUTE_MS}",
        )
        return replace(
            state,
            balances=balances,
            orders={**state.orders, order.client_id: done},
            resting={k: v for k, v in state.resting.items() if k != item.client_id},
            trades=(*state.trades, WalletTrade(fill, item.base, item.quote)),
            next_trade=state.next_trade + 1,
        )

    def _trigger(
        self, state: WalletState, resting: RestingList, role: str, when: int
    ) -> WalletState:
        stop = role == "stop_loss"
        price = (
            slipped_price(resting.stop_loss, "sell", resting.slippage_percent)
            if stop
            else resting.take_profit
        )
        assert price is not None
        legs = []
        balances = state.balances
        trades = list(state.trades)
        trade_no = state.next_trade
        exchange_id = f"P{state.next_order}"
        for leg in resting.state.legs:
            if leg.role != role:
                legs.append(
                    dataclasses.replace(
                        leg, status="expired", timestamp=when, message="the other leg filled"
                    )
                )
                continue
            fee = fee_of(leg.amount, price, resting.fee_rate)
            balances = apply_fill(
                balances,
                base=resting.base,
                quote=resting.quote,
                side="sell",
                amount=leg.amount,
                price=price,
                fee=fee,
            )
            fill = Fill(
                str(trade_no),
                leg.client_id,
                leg.symbol,
                "sell",
                leg.amount,
                price,
                fee,
                when,
                exchange_id,
            )
            trades.append(WalletTrade(fill, resting.base, resting.quote))
            trade_no += 1
            how = (
                f"paper: stop-loss triggered by the 1m candle of {when - MINUTE_MS}, filled at "
                f"the stop {resting.stop_loss:g} - {resting.slippage_percent:g} % slippage"
                if stop
                else f"paper: take-profit reached by the 1m candle of {when - MINUTE_MS}, "
                f"filled at {price:g}"
            )
            legs.append(
                dataclasses.replace(
                    leg,
                    status="closed",
                    filled=leg.amount,
                    average=price,
                    fee=fee,
                    timestamp=when,
                    exchange_id=exchange_id,
                    message=how,
                )
            )
        done = dataclasses.replace(resting.state, status="done", legs=tuple(legs))
        return replace(
            state,
            balances=balances,
            lists={**state.lists, done.list_client_id: dataclasses.replace(resting, state=done)},
            trades=tuple(trades),
            next_order=state.next_order + 1,
            next_trade=trade_no,
        )


def _off_step(value: float, step: float | None) -> bool:
    if not step or round_down(value, step) == value:
        return False
    ratio = value / step
    return abs(ratio - round(ratio)) > 1e-9 * max(ratio, 1.0)


def _check_amount(amount: float, rules: MarketRules) -> None:
    """The market's LOT_SIZE filter, in Binance's words."""
    if not (finite(amount) and amount > 0):
        raise OrderRejectedError(f"paper: amount {amount!r} must be above 0.")
    if rules.min_amount is not None and amount < rules.min_amount:
        raise OrderRejectedError(
            f"Filter failure: LOT_SIZE ({amount:g} {rules.base} is below the minimum "
            f"{rules.min_amount:g})"
        )
    if _off_step(amount, rules.amount_step):
        raise OrderRejectedError(
            f"Filter failure: LOT_SIZE ({amount!r} {rules.base} is not a multiple of the "
            f"step {rules.amount_step:g})"
        )


def _check_price(price: float, rules: MarketRules) -> None:
    """The market's PRICE_FILTER, in Binance's words."""
    if _off_step(price, rules.price_step):
        raise OrderRejectedError(
            f"Filter failure: PRICE_FILTER ({price!r} is not a multiple of the tick "
            f"{rules.price_step:g})"
        )
