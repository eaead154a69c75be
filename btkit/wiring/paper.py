"""Build the paper broker: one crash-safe wallet per (exchange label, strategy)."""

from __future__ import annotations

import logging
import os

from btkit.adapters.brokers.paper_broker import PaperBroker, PaperCosts, RulesSource
from btkit.adapters.brokers.paper_wallet import WalletFile
from btkit.domain.errors import StorageError
from btkit.domain.timefmt import file_stamp
from btkit.ports import Broker, Clock, MarketData, OrderBookSource
from btkit.settings import Settings
from btkit.wiring.clocks import wall_time_ms

log = logging.getLogger(__name__)


def paper_broker(
    settings: Settings,
    *,
    exchange_name: str,
    label: str,
    strategy: str,
    market: MarketData,
    clock: Clock,
    books: OrderBookSource | None,
    rules: RulesSource | None = None,
) -> Broker:
    """A `PaperBroker` named `label` that owns `<paper_dir>/<label>-<strategy>.json`
    (locked until `close`).

    `books` None (the offline replay) fills at the tick's price plus
    `slippage_percent`; `rules` None uses the replay's defaults (taker fee =
    `fee_percent`, no minimums). Raises StateLockedError when another process
    trades this wallet and UnusableWalletError (exit 2) when its file cannot be
    trusted; the file is then left untouched.
    """
    wallet = WalletFile(settings.paper_dir, exchange=label, strategy=strategy)
    wallet.acquire()
    try:
        state = wallet.load(settings.paper_balances, clock.now_ms())
    except BaseException:
        wallet.release()
        raise
    costs = PaperCosts(
        fee_rate=settings.fee_percent / 100.0,
        slippage_percent=settings.slippage_percent,
        cap_percent=settings.paper_slippage_cap_percent,
    )
    return PaperBroker(
        wallet,
        state,
        name=label,
        market=market,
        clock=clock,
        costs=costs,
        books=books,
        rules_source=rules,
    )


def set_aside_wallet(settings: Settings, *, label: str, strategy: str) -> None:
    """`--restart`: the replay starts over with a new wallet; the old one is kept aside."""
    wallet = WalletFile(settings.paper_dir, exchange=label, strategy=strategy)
    stamp = file_stamp(wall_time_ms())
    for path in (wallet.path, wallet.journal):
        if path.exists():
            aside = path.with_name(f"{path.name}.restart-{stamp}")
            try:
                os.replace(path, aside)
            except OSError as exc:
                raise StorageError(f"Cannot move {path} aside: {exc.strerror}.") from exc
            log.info("--restart: previous paper wallet kept as %s", aside)
