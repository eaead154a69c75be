"""btkit's errors, keyed to what the daemon does next.

    BtkitError
    ├── ConfigError            bad name, option or file the user gave: exit 2, say the fix
    │   ├── StrategyLoadError  a strategy module failed to import (names file and line)
    │   └── StateLockedError   another process owns a state file
    ├── DataError              a candle file is missing or malformed: exit 2
    ├── ExchangeError          the exchange did not answer usefully
    │   ├── TransientExchangeError  retry with backoff, then skip the tick
    │   ├── PermanentExchangeError  unknown symbol, bad credentials: exit 2
    │   └── ExchangeOutageError     requests failed longer than the outage budget: exit 1
    ├── StorageError           state could not be written (disk full, read-only): exit 1
    ├── StrategyError          user code raised: logged, the tick counts as "no signal"
    └── OrderError             an order went wrong: reported per signal, never retried blindly
        ├── OrderRejectedError     the exchange refused it (filters, invalid): not retried
        │   └── InsufficientFundsError
        └── OrderUncertainError    sent, outcome unknown (timeout, lost response, 5xx):
                                   look it up by client id before sending again

Corrupt state files are not errors: they are moved aside and reported loudly.
"""

from __future__ import annotations


class BtkitError(Exception):
    """Base of every error btkit raises on purpose; carries the process exit status."""

    exit_code = 1


class ConfigError(BtkitError):
    exit_code = 2


class StrategyLoadError(ConfigError):
    pass


class StateLockedError(ConfigError):
    pass


class DataError(BtkitError):
    exit_code = 2


class ExchangeError(BtkitError):
    pass


class TransientExchangeError(ExchangeError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        """Seconds the exchange asked us to wait (HTTP Retry-After), if it said."""


class PermanentExchangeError(ExchangeError):
    exit_code = 2


class ExchangeOutageError(ExchangeError):
    exit_code = 1


class StorageError(BtkitError):
    exit_code = 1


class StrategyError(BtkitError):
    pass


class OrderError(BtkitError):
    """An order could not be placed as asked; the signal is still monitored."""


class OrderRejectedError(OrderError):
    """The exchange (or the paper wallet) refused the order: retrying cannot help."""


class InsufficientFundsError(OrderRejectedError):
    pass


class PriceCrossedError(OrderRejectedError):
    """A protective order refused because the price is already past it: a stop would
    trigger at once or a maker limit would take (Binance -2010 "Stop price would
    trigger immediately" / "Order would immediately match and take")."""


class OrderUncertainError(OrderError):
    """The request may have reached the exchange: the order may exist. Never resend
    without looking it up by its client id first."""
