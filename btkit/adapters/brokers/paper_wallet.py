"""The paper wallet of one (exchange label, strategy): balances, orders, OCO lists, trades.

`<data>/paper/<label>-<strategy>.json` (+ `.lock`), written like the signal state
files: temp file, fsync, rename, fsync the folder, owner-only (0600 in a 0700
folder), on a thread, never on the event loop. A `filelock` beside it makes one
process its owner, so two daemons never spend one wallet.

A wallet that cannot be read (unparseable, another run's, or balances that do not
equal its starting balances plus its trades) is never reset, moved or
overwritten: btkit refuses to start and says what to do. Money state is not
something to quietly start over from.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import filelock
import pydantic

from btkit.adapters.brokers.paper_fills import TradeLine, replay_balances
from btkit.adapters.store.atomic import (
    atomic_write_bytes,
    ensure_private_dir,
    remove_stale_temp_files,
)
from btkit.domain.errors import ConfigError, StateLockedError, StorageError
from btkit.domain.orders import Balance, Fill, OrderSide, OrderState, ProtectionState

log = logging.getLogger(__name__)

WALLET_VERSION = 1
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._+-]+$")
_TOLERANCE = 1e-9
"""Relative: balances that replay their trades this closely are the same."""


class UnusableWalletError(ConfigError):
    """The wallet file cannot be trusted; it is left exactly as it is."""


@dataclass(frozen=True, slots=True)
class WalletTrade:
    """A fill and the currencies it moved (the audit replays these)."""

    fill: Fill
    base: str
    quote: str

    def line(self) -> TradeLine:
        f = self.fill
        return TradeLine(self.base, self.quote, f.side, f.amount, f.price, f.fee)


@dataclass(frozen=True, slots=True)
class RestingList:
    """An OCO list resting in the wallet until a candle reaches one of its legs."""

    state: ProtectionState
    take_profit: float | None
    """None where the market has no OCO: a stop-loss alone."""
    stop_loss: float
    placed_at: int
    base: str
    quote: str
    fee_rate: float
    slippage_percent: float
    """The stop leg fills this much below its trigger."""


@dataclass(frozen=True, slots=True)
class RestingOrder:
    """What an open limit order reserves and how it will fill (kept while it is open)."""

    client_id: str
    side: OrderSide
    price: float
    base: str
    quote: str
    fee_rate: float
    placed_at: int


@dataclass(frozen=True, slots=True)
class WalletState:
    """Everything the wallet knows; replaced whole (copy on write), never changed in place."""

    exchange: str
    strategy: str
    created_at: int
    starting: dict[str, float]
    balances: dict[str, float]
    orders: dict[str, OrderState]
    """By client id: the latest order with that id (market orders are final at once)."""
    lists: dict[str, RestingList]
    """By list client id, open and done."""
    trades: tuple[WalletTrade, ...] = ()
    resting: dict[str, RestingOrder] = dataclasses.field(default_factory=dict)
    """Open limit orders by client id."""
    next_order: int = 1
    next_trade: int = 1
    version: int = WALLET_VERSION

    def locked(self, code: str) -> float:
        """What open orders reserve: a protective list or a limit sell its base, a limit
        buy its quote (price and fee of what remains)."""
        held = sum(
            resting.state.legs[0].amount
            for resting in self.lists.values()
            if resting.state.status == "open" and resting.base == code
        )
        for order in self.resting.values():
            remaining = self.orders[order.client_id].remaining
            if order.side == "sell" and order.base == code:
                held += remaining
            elif order.side == "buy" and order.quote == code:
                held += remaining * order.price * (1.0 + order.fee_rate)
        return held

    def free(self, code: str) -> float:
        return self.balances.get(code, 0.0) - self.locked(code)

    def balance_view(self) -> dict[str, Balance]:
        return {
            code: Balance(free=total - self.locked(code), total=total)
            for code, total in sorted(self.balances.items())
        }

    def replayed(self) -> dict[str, float]:
        """Starting balances plus every trade: what `balances` must equal."""
        return replay_balances(self.starting, (t.line() for t in self.trades))

    def problems(self) -> list[str]:
        """Why this state cannot be trusted (empty: it can)."""
        found = []
        replayed = self.replayed()
        for code in sorted({*replayed, *self.balances}):
            have, want = self.balances.get(code, 0.0), replayed.get(code, 0.0)
            if not math.isclose(have, want, rel_tol=_TOLERANCE, abs_tol=1e-12):
                found.append(
                    f"its {code} balance {have!r} is not its starting balance plus its "
                    f"trades ({want!r})"
                )
        for client_id in self.resting:
            order = self.orders.get(client_id)
            if order is None or order.final:
                found.append(f"its resting order {client_id} has no open order")
        if any(not math.isfinite(v) for v in self.balances.values()):
            found.append("a balance is not a finite number")
        return found


_ADAPTER = pydantic.TypeAdapter(WalletState)


def encode(state: WalletState) -> bytes:
    return _ADAPTER.dump_json(state, indent=1) + b"\n"


def decode(raw: bytes, names: tuple[str, str] | None = None) -> WalletState:
    """Parse and check a wallet file; UnusableWalletError's text says what is wrong."""
    try:
        state = _ADAPTER.validate_json(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise UnusableWalletError(f"{where}: {first['msg']}") from exc
    if state.version != WALLET_VERSION:
        raise UnusableWalletError(f"version {state.version} (this btkit reads {WALLET_VERSION})")
    if names is not None and (state.exchange, state.strategy) != names:
        raise UnusableWalletError(
            f"it belongs to exchange {state.exchange}, strategy {state.strategy}, "
            "not to this run ({} {})".format(*names)
        )
    problems = state.problems()
    if problems:
        raise UnusableWalletError("; ".join(problems))
    return state


def wallet_file_name(exchange: str, strategy: str) -> str:
    for part in (exchange, strategy):
        if not _SAFE_NAME.match(part):
            raise ConfigError(
                f"{part!r} cannot be part of a paper wallet's file name; "
                "use letters, digits and . _ + - only"
            )
    return f"{exchange}-{strategy}.json"


def new_wallet(
    exchange: str, strategy: str, starting: Mapping[str, float], now: int
) -> WalletState:
    for code, amount in starting.items():
        if not (math.isfinite(amount) and amount >= 0):
            raise ConfigError(
                f"BTKIT_PAPER_BALANCES: {code} = {amount!r}; starting balances must be "
                "finite numbers >= 0."
            )
    start = {code.upper(): float(amount) for code, amount in starting.items()}
    return WalletState(exchange, strategy, now, dict(start), dict(start), {}, {})


class WalletFile:
    """Owns one wallet file: lock, load (or create), durable saves off the loop."""

    def __init__(
        self,
        folder: Path,
        *,
        exchange: str,
        strategy: str,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self.path = folder / wallet_file_name(exchange, strategy)
        self._names = (exchange, strategy)
        self._executor = executor
        self._lock = filelock.FileLock(f"{self.path}.lock", timeout=0, mode=0o600)
        self._writing: asyncio.Future[None] | None = None

    def acquire(self) -> None:
        """Become the only process that spends this wallet."""
        ensure_private_dir(self.path.parent)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            exchange, strategy = self._names
            raise StateLockedError(
                f"Another btkit process already trades {strategy} on paper on {exchange} "
                f"(it holds {self._lock.lock_file}). Stop it first, or use another "
                "--data-dir for a separate wallet."
            ) from None
        except OSError as exc:
            raise StorageError(f"Cannot lock {self.path}: {exc.strerror}.") from exc
        removed = remove_stale_temp_files(self.path.parent, self.path.name)
        if removed:
            log.warning("removed %d temporary file(s) left by a crash: %s", len(removed), removed)

    def release(self) -> None:
        self._lock.release()

    def load(self, starting: Mapping[str, float], now: int) -> WalletState:
        """The wallet on disk, or a new one (written at once) with `starting` balances."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            state = new_wallet(*self._names, starting, now)
            atomic_write_bytes(self.path, encode(state))
            log.info("new paper wallet %s: %s", self.path, state.starting)
            return state
        except OSError as exc:
            raise StorageError(f"Cannot read {self.path}: {exc.strerror}.") from exc
        try:
            return decode(raw, self._names)
        except UnusableWalletError as exc:
            log.error("PAPER WALLET %s cannot be used: %s", self.path, exc)
            raise UnusableWalletError(
                f"The paper wallet {self.path} cannot be used: {exc}. It was left as it is. "
                "Restore it from a backup, or move it away to start a new wallet with the "
                "starting balances (BTKIT_PAPER_BALANCES); the ledger keeps every "
                "recorded order and fill either way."
            ) from exc

    async def save(self, state: WalletState) -> None:
        """Durable when it returns; a cancelled caller's write still lands, in order."""
        previous = self._writing
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        loop = asyncio.get_running_loop()
        try:
            writing = loop.run_in_executor(self._executor, self._write, state)
        except RuntimeError:  # the executor is shut down: a last write as the run ends
            self._write(state)
            return
        writing.add_done_callback(_retrieve)
        self._writing = writing
        await asyncio.shield(writing)

    def _write(self, state: WalletState) -> None:
        atomic_write_bytes(self.path, encode(state))


def _retrieve(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


def replace(state: WalletState, **changes: object) -> WalletState:
    return dataclasses.replace(state, **changes)  # type: ignore[arg-type]
