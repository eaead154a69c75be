"""Which ledger: the SQLite file under the data folder, opened to record or to read."""

from __future__ import annotations

from btkit.adapters.store.ledger import ALL_RUNS, LedgerContents, Query, SqliteLedger
from btkit.adapters.store.ledger_errors import translated_ledger_errors
from btkit.adapters.store.order_ledger import TradeRecord, strategy_trades
from btkit.domain.errors import ConfigError
from btkit.settings import Settings
from btkit.wiring.runs import read_backtest_events


def open_ledger(settings: Settings) -> SqliteLedger:
    """To record into (created if missing). The caller closes it."""
    return SqliteLedger(settings.ledger_path)


def open_ledger_for_reading(settings: Settings) -> SqliteLedger:
    """An existing ledger for reports; missing, empty or foreign files are clear errors."""
    path = settings.ledger_path
    if not path.exists():
        raise ConfigError(
            f"No ledger at {path} yet: run `btkit live` or `btkit backtest` first "
            "(or point --data-dir at the folder your daemon uses)."
        )
    return SqliteLedger.open_for_reading(path)


def read_strategy_events(settings: Settings, query: Query) -> LedgerContents:
    """The query's events for `btkit report`; an unknown strategy names the known ones.

    A damaged ledger is a clear error and is left as it is. Backtest runs are read
    from the run store (and from ledgers an older btkit wrote them to).
    """
    if query.mode == "backtest":
        return read_backtest_events(settings, query)
    ledger = open_ledger_for_reading(settings)
    try:
        with translated_ledger_errors(ledger.path):
            known = ledger.strategies()
            if query.strategy not in known:
                raise ConfigError(
                    f"The ledger has no events of strategy {query.strategy!r}. "
                    f"Strategies with events: {', '.join(known) or 'none'}."
                )
            if query.run_id not in (None, ALL_RUNS):
                runs = ledger.runs(query.strategy, query.mode)
                if query.run_id not in runs:
                    raise ConfigError(
                        f"The ledger has no {query.mode} run {query.run_id!r} of "
                        f"{query.strategy}. Its {query.mode} runs: {', '.join(runs) or 'none'}; "
                        "or --run all."
                    )
            return ledger.read(query)
    finally:
        ledger.close()


def read_events(settings: Settings, query: Query) -> LedgerContents:
    """The query's events for the library API (an absent ledger reads as empty)."""
    ledger = open_ledger(settings)
    try:
        return ledger.read(query)
    finally:
        ledger.close()


def read_trade_records(settings: Settings, strategy: str, run_id: str | None) -> list[TradeRecord]:
    """The strategy's orders and fills (in `run_id`, or every run) for the report."""
    ledger = open_ledger_for_reading(settings)
    try:
        with translated_ledger_errors(ledger.path):
            return strategy_trades(ledger.connection, strategy, run_id)
    finally:
        ledger.close()
