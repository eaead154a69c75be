"""The paper wallet of one (exchange label, strategy): balances, orders, OCO lists, trades.

`<data>/paper/<label>-<strategy>.json` is a snapshot, written like the signal
state files (temp file, fsync, rename, fsync the folder); `.journal` beside it
holds one JSON line per change since, appended and fsynced before the change is
reported, so a write costs what changed, not the wallet's whole history. Every
`COMPACT_EVERY` changes, on start and on close, the snapshot is rewritten and the
journal emptied; changes carry a sequence number, so a crash between the two
never applies one twice. A torn last line (a crash mid-append: its call never
returned) is ignored. Files are owner-only (0600 in a 0700 folder), written on a
thread, never on the event loop. A `filelock` beside them makes one process
their owner, so two daemons never spend one wallet.

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
import os
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
    seq: int = 0
    """Changes applied since the wallet was created (journal lines carry theirs)."""
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


@dataclass(frozen=True, slots=True)
class WalletDelta:
    """One change: what it added or replaced (one journal line)."""

    seq: int
    balances: dict[str, float]
    orders: dict[str, OrderState]
    lists: dict[str, RestingList]
    resting: dict[str, RestingOrder]
    """Whole (small: the open limit orders)."""
    trades: tuple[WalletTrade, ...]
    next_order: int
    next_trade: int


def diff(old: WalletState, new: WalletState) -> WalletDelta:
    """`new` as a change of `old` (it only adds trades and replaces entries)."""
    kept = len(old.trades)
    if len(new.trades) < kept or (kept and new.trades[kept - 1] is not old.trades[-1]):
        raise ValueError("a wallet change may only add trades")
    return WalletDelta(
        new.seq,
        {k: v for k, v in new.balances.items() if old.balances.get(k) != v},
        {k: v for k, v in new.orders.items() if old.orders.get(k) is not v},
        {k: v for k, v in new.lists.items() if old.lists.get(k) is not v},
        dict(new.resting),
        new.trades[len(old.trades) :],
        new.next_order,
        new.next_trade,
    )


def apply(state: WalletState, delta: WalletDelta) -> WalletState:
    return dataclasses.replace(
        state,
        balances={**state.balances, **delta.balances},
        orders={**state.orders, **delta.orders},
        lists={**state.lists, **delta.lists},
        resting=dict(delta.resting),
        trades=(*state.trades, *delta.trades),
        next_order=delta.next_order,
        next_trade=delta.next_trade,
        seq=delta.seq,
    )


_ADAPTER = pydantic.TypeAdapter(WalletState)
_DELTA = pydantic.TypeAdapter(WalletDelta)


def encode(state: WalletState) -> bytes:
    return _ADAPTER.dump_json(state, indent=1) + b"\n"


def _first_error(exc: pydantic.ValidationError, what: str) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or what
    return f"{where}: {first['msg']}"


def replay_journal(state: WalletState, journal: bytes) -> tuple[WalletState, bool]:
    """The snapshot with the journal's newer changes applied; and whether the last line
    was torn (a crash mid-append, ignored: its change was never reported)."""
    *lines, tail = journal.split(b"\n")
    for number, line in enumerate(lines, 1):
        try:
            delta = _DELTA.validate_json(line)
        except pydantic.ValidationError as exc:
            reason = _first_error(exc, "the line")
            raise UnusableWalletError(f"its journal's line {number} is damaged ({reason})") from exc
        if delta.seq <= state.seq:
            continue  # already in the snapshot (a crash between snapshot and emptying)
        if delta.seq != state.seq + 1:
            raise UnusableWalletError(
                f"its journal's line {number} holds change {delta.seq}, but change "
                f"{state.seq + 1} is next: changes are missing"
            )
        state = apply(state, delta)
    return state, bool(tail)


def decode(raw: bytes, names: tuple[str, str] | None = None, journal: bytes = b"") -> WalletState:
    """Parse and check a wallet (snapshot and journal); UnusableWalletError says why not."""
    try:
        state = _ADAPTER.validate_json(raw)
    except pydantic.ValidationError as exc:
        raise UnusableWalletError(_first_error(exc, "the file")) from exc
    state, _ = replay_journal(state, journal)
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


COMPACT_EVERY = 500
"""Journal lines before the snapshot is rewritten."""
JOURNAL_SUFFIX = ".journal"


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + JOURNAL_SUFFIX)


def read_wallet(path: Path) -> WalletState:
    """A wallet as it is on disk, without owning it (tests, `btkit positions`)."""
    journal = journal_path(path)
    return decode(path.read_bytes(), None, journal.read_bytes() if journal.exists() else b"")


class WalletFile:
    """Owns one wallet: lock, load (or create), durable changes off the loop.

    `state` is always what is on disk: it changes only when a write has landed
    (even if the caller that asked for it was cancelled meanwhile).
    """

    def __init__(
        self,
        folder: Path,
        *,
        exchange: str,
        strategy: str,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self.path = folder / wallet_file_name(exchange, strategy)
        self.journal = journal_path(self.path)
        self._names = (exchange, strategy)
        self._executor = executor
        self._lock = filelock.FileLock(f"{self.path}.lock", timeout=0, mode=0o600)
        self._writing: asyncio.Future[None] | None = None
        self._lines = 0
        self.compact_every = COMPACT_EVERY
        self._snapshot_due = False
        """A failed append may have left a torn line: the next change rewrites both files."""
        self.state: WalletState

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
        for name in (self.path.name, self.journal.name):
            removed = remove_stale_temp_files(self.path.parent, name)
            if removed:
                log.warning(
                    "removed %d temporary file(s) left by a crash: %s", len(removed), removed
                )

    def release(self) -> None:
        self._lock.release()

    def load(self, starting: Mapping[str, float], now: int) -> WalletState:
        """The wallet on disk, or a new one (written at once) with `starting` balances."""
        try:
            raw = self.path.read_bytes()
            journal = self.journal.read_bytes() if self.journal.exists() else b""
        except FileNotFoundError:
            state = new_wallet(*self._names, starting, now)
            self._snapshot(state)
            log.info("new paper wallet %s: %s", self.path, state.starting)
            return state
        except OSError as exc:
            raise StorageError(f"Cannot read {self.path}: {exc.strerror}.") from exc
        try:
            state = decode(raw, self._names, journal)
        except UnusableWalletError as exc:
            log.error("PAPER WALLET %s cannot be used: %s", self.path, exc)
            raise UnusableWalletError(
                f"The paper wallet {self.path} cannot be used: {exc}. It was left as it is. "
                "Restore it from a backup, or move it (and its .journal) away to start a "
                "new wallet with the starting balances (BTKIT_PAPER_BALANCES); the ledger "
                "keeps every recorded order and fill either way."
            ) from exc
        if not journal.endswith(b"\n") and journal:
            log.warning("%s: ignored a torn last line (a crash while writing it)", self.journal)
        self._snapshot(state)
        return state

    async def idle(self) -> None:
        """Wait for a write still landing (its caller was cancelled)."""
        previous = self._writing
        if previous is not None and not previous.done():
            await asyncio.wait([previous])

    async def save(self, state: WalletState) -> WalletState:
        """Write `state` (a change of `self.state`) durably; it becomes `self.state`."""
        await self.idle()
        loop = asyncio.get_running_loop()
        try:
            writing = loop.run_in_executor(self._executor, self._write, state)
        except RuntimeError:  # the executor is shut down: a last write as the run ends
            self._write(state)
            return self.state
        writing.add_done_callback(_retrieve)
        self._writing = writing
        await asyncio.shield(writing)
        return self.state

    async def close(self) -> None:
        """Fold the journal into the snapshot, then let another process own the wallet."""
        await self.idle()
        try:
            try:
                await asyncio.to_thread(self._snapshot, self.state)
            except RuntimeError:  # the loop's threads are shut down: write it here
                self._snapshot(self.state)
        finally:
            self.release()

    def _write(self, state: WalletState) -> None:
        stamped = dataclasses.replace(state, seq=self.state.seq + 1)
        if self._snapshot_due or self._lines >= self.compact_every:
            self._snapshot(stamped)
            return
        line = _DELTA.dump_json(diff(self.state, stamped)) + b"\n"
        try:
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "ab") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            self._snapshot_due = True
            raise StorageError(
                f"Cannot write {self.journal}: {exc.strerror or exc}. The wallet before this "
                "change is intact; free disk space or fix the folder's permissions."
            ) from exc
        self._lines += 1
        self.state = stamped

    def _snapshot(self, state: WalletState) -> None:
        """The whole wallet in one atomic replace, then an empty journal."""
        atomic_write_bytes(self.path, encode(state))
        self.state = state
        atomic_write_bytes(self.journal, b"")
        self._lines = 0
        self._snapshot_due = False


def _retrieve(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


def replace(state: WalletState, **changes: object) -> WalletState:
    return dataclasses.replace(state, **changes)  # type: ignore[arg-type]
