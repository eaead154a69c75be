"""The vocabulary of trading: orders, fills and the rules of a market.

Kept apart from the signal model (`btkit.domain.model`): a signal is what the
VWAP model decided, an order or a fill is what really happened on an exchange
(or on paper). Both are recorded, in separate ledger tables, and never mixed.

Spot only for now: a long signal buys at entry and sells at exit; short signals
are announced but not traded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

TradeMode = Literal["off", "paper", "live"]
OrderSide = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop_loss_limit", "limit_maker"]
OrderRole = Literal["entry", "exit", "take_profit", "stop_loss"]
"""Why btkit sent an order: the role names the leg of a signal's trade."""
OrderStatus = Literal["new", "open", "closed", "canceled", "expired", "rejected"]
"""`new`: recorded locally, not yet acknowledged by the exchange (sent, or about to be).
The others are ccxt's unified statuses: `closed` means fully filled."""

FINAL_STATUSES: frozenset[str] = frozenset({"closed", "canceled", "expired", "rejected"})

CLIENT_ID_PREFIX = "btk"
"""Every client order id btkit makes starts with this: an open order on the exchange
with this prefix that the ledger does not know is an orphan, never a user's own."""

_ROLE_CODE: dict[str, str] = {
    "entry": "e",
    "exit": "x",
    "take_profit": "t",
    "stop_loss": "s",
    "protection": "p",
}


def client_order_id(signal_id: str, role: OrderRole | Literal["protection"]) -> str:
    """The exchange-side id of a signal's order: the same on every retry and restart, so
    btkit can always look an order up before sending it again.

    `btk-<role>-<24 hex of sha256(signal id)>`: 30 characters, within Binance's 36 and
    its `^[.A-Z:/a-z0-9_-]{1,36}$`. `protection` names an OCO list (its legs are
    `take_profit` and `stop_loss`).
    """
    digest = hashlib.sha256(signal_id.encode()).hexdigest()[:24]
    return f"{CLIENT_ID_PREFIX}-{_ROLE_CODE[role]}-{digest}"


@dataclass(frozen=True, slots=True)
class MarketRules:
    """What an exchange accepts for one market, from its market data (ccxt `markets`)."""

    symbol: str
    base: str
    quote: str
    amount_step: float | None
    """Smallest amount increment (LOT_SIZE stepSize); None: any."""
    price_step: float | None
    """Smallest price increment (PRICE_FILTER tickSize); None: any."""
    min_amount: float | None
    min_notional: float | None
    """Least amount x price the exchange accepts (NOTIONAL / MIN_NOTIONAL)."""
    taker_fee: float
    """Fraction, e.g. 0.001 for 0.1 %."""
    has_oco: bool = True
    """Whether take-profit and stop-loss can rest as one OCO list; else a stop-loss only."""


@dataclass(frozen=True, slots=True)
class Balance:
    free: float
    total: float


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order btkit wants on the exchange; `client_id` derives from the signal id."""

    signal_id: str
    role: OrderRole
    symbol: str
    side: OrderSide
    type: OrderType
    amount: float
    """Base currency."""
    client_id: str
    price: float | None = None
    """Limit price (limit orders)."""
    stop_price: float | None = None
    """Trigger price (stop orders)."""


@dataclass(frozen=True, slots=True)
class OrderState:
    """An order as the exchange (or the paper wallet) last reported it."""

    client_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    role: OrderRole
    status: OrderStatus
    amount: float
    filled: float
    average: float | None
    """Average fill price; None before any fill."""
    fee: float
    """Fees paid, in quote currency (converted if the exchange charged another asset)."""
    timestamp: int
    """When the exchange last changed it, ms UTC."""
    exchange_id: str | None = None
    price: float | None = None
    stop_price: float | None = None
    list_client_id: str | None = None
    """The OCO list this order is a leg of, if any."""
    message: str = ""
    """Why it was rejected or expired, in the exchange's words."""

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def remaining(self) -> float:
        return max(self.amount - self.filled, 0.0)


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (a ccxt trade): what was bought or sold, at what price, for what fee."""

    trade_id: str
    """The exchange's trade id; the ledger keeps one row per (exchange, trade id)."""
    client_id: str
    symbol: str
    side: OrderSide
    amount: float
    price: float
    fee: float
    """Quote currency."""
    timestamp: int
    exchange_order_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProtectionRequest:
    """Take-profit and stop-loss resting on the exchange for an open position (spot long:
    both sell `amount`). Without OCO on the market, only the stop-loss is placed."""

    signal_id: str
    symbol: str
    amount: float
    take_profit: float
    stop_loss: float
    list_client_id: str
    """`client_order_id(signal_id, "protection")`; the legs use the leg roles' ids."""


@dataclass(frozen=True, slots=True)
class ProtectionState:
    list_client_id: str
    symbol: str
    status: Literal["open", "done", "canceled"]
    """`done`: one leg filled (the other then expired); `canceled`: by btkit or the user."""
    legs: tuple[OrderState, ...]

    @property
    def filled_leg(self) -> OrderState | None:
        return next((leg for leg in self.legs if leg.filled > 0), None)


@dataclass(frozen=True, slots=True)
class TradeReport:
    """What trading did for one event, as `--json` and the console show it."""

    mode: TradeMode
    role: OrderRole
    client_id: str
    status: OrderStatus | Literal["skipped", "halted"]
    amount: float = 0.0
    filled: float = 0.0
    average: float | None = None
    fee: float = 0.0
    model_price: float | None = None
    """The signal model's price for the same step (entry: price_open; exit: the close)."""
    how: str = ""
    """How it was filled, e.g. `paper: walked 3 levels of the order book` or
    `paper: replay tick price + 0.1 % slippage`; or why it was skipped."""

    @property
    def gap_percent(self) -> float | None:
        """Fill price against the model's price, percent (positive: the fill was higher)."""
        if self.average is None or not self.model_price:
            return None
        return (self.average / self.model_price - 1.0) * 100.0


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Best-first price levels: bids high to low, asks low to high, each (price, amount)."""

    symbol: str
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    timestamp: int
