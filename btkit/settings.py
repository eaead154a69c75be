"""Typed settings: defaults < `.env` < `BTKIT_*` environment < command-line options."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from btkit.domain.errors import ConfigError
from btkit.domain.orders import TradeMode
from btkit.engine.pnl import Costs

PREFIX = "BTKIT_"
NOT_SETTINGS = ("BTKIT_FAULT_KILL_AT",)
"""BTKIT_ variables read elsewhere (crash-test fault injection), not settings."""
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class ExchangeCredentials(BaseModel):
    """API keys for one exchange: `BTKIT_CREDENTIALS__<EXCHANGE>__API_KEY` and `__SECRET`."""

    api_key: SecretStr
    secret: SecretStr
    password: SecretStr | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BTKIT_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
    )

    def __init__(self, **values: Any) -> None:
        """Refuse unknown BTKIT_ variables first: a typo must not silently use a default."""
        check_variables(os.environ, _dotenv(Path(".env")))
        super().__init__(**values)

    strategies_dir: Path = Field(Path("strategies"), description="Folder of strategy *.py files")
    data_dir: Path = Field(Path("data"), description="Candles, signal state and the ledger")
    logs_dir: Path = Field(Path("logs"), description="Reports")
    fee_percent: float = Field(0.1, ge=0, lt=50, description="Fee per side, percent")
    slippage_percent: float = Field(0.1, ge=0, lt=50, description="Slippage per side, percent")
    tick_settle_seconds: float = Field(
        2.0, ge=0, le=30, description="Wait after the minute so the finished candle is served"
    )
    heartbeat_seconds: float = Field(300.0, gt=0, description="Heartbeat log interval")
    strategy_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest a strategy call may take (live); longer is a failure"
    )
    strategy_warn_after: int = Field(
        10, ge=1, description="Warn loudly after this many get_signal failures in a row"
    )
    symbol_restarts: int = Field(
        5, ge=0, description="Restarts of a failed symbol loop in a row before exiting 1"
    )
    outage_budget_minutes: float = Field(
        15.0, gt=0, description="Exit non-zero after exchange requests failed this long"
    )
    exchange_url: str | None = Field(
        None, description="Send the exchange's REST calls to this base URL instead"
    )
    exchange_timeout_seconds: float = Field(10.0, gt=0, description="Per request")
    exchange_rate_limit_ms: int | None = Field(
        None, ge=0, description="Least time between requests (default: ccxt's)"
    )
    exchange_page_limit: int = Field(1000, ge=1, description="Candles per request")
    retry_max: int = Field(4, ge=0, description="Retries of a failed request")
    retry_base_seconds: float = Field(1.0, ge=0, description="First backoff delay")
    retry_cap_seconds: float = Field(30.0, ge=0, description="Longest backoff delay")
    log_level: LogLevel | None = Field(
        None, description="DEBUG, INFO, WARNING or ERROR (default: INFO for live, else WARNING)"
    )
    credentials: dict[str, ExchangeCredentials] = Field(
        default_factory=dict, description="Per-exchange API keys (optional)"
    )
    trade: TradeMode = Field(
        "off", description="off (announce signals only), paper (simulated wallet) or live"
    )
    confirm_live: bool = Field(
        False, description="Confirms --trade live: real orders with real money (service units)"
    )
    stake: float | None = Field(
        None, gt=0, description="Quote amount per signal (default: 10 % of the free quote balance)"
    )
    max_stake: float | None = Field(None, gt=0, description="Largest stake of any one signal")
    max_open_positions: int = Field(5, ge=1, description="Open positions at most, all symbols")
    daily_loss_limit: float | None = Field(
        None,
        gt=0,
        description="Quote amount lost in a UTC day after which no new positions open",
    )
    paper_balances: dict[str, float] = Field(
        default_factory=lambda: {"USDT": 10_000.0, "BTC": 1.0, "ETH": 10.0},
        description="Starting balances of a new paper wallet",
    )
    paper_slippage_cap_percent: float = Field(
        1.0, ge=0, lt=50, description="Paper market orders fill no further than this from best"
    )
    reconcile_seconds: float = Field(
        60.0, gt=0, description="How often trading checks its orders against the exchange"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def secret_values(self) -> list[str]:
        """Every configured secret, for redaction from logs."""
        values = []
        for keys in self.credentials.values():
            values += [keys.api_key.get_secret_value(), keys.secret.get_secret_value()]
            if keys.password is not None:
                values.append(keys.password.get_secret_value())
        return values

    @property
    def costs(self) -> Costs:
        return Costs(fee_percent=self.fee_percent, slippage_percent=self.slippage_percent)

    @property
    def candles_dir(self) -> Path:
        return self.data_dir / "candles"

    @property
    def signal_dir(self) -> Path:
        return self.data_dir / "signal"

    @property
    def paper_dir(self) -> Path:
        """Paper wallets, one per (exchange, strategy)."""
        return self.data_dir / "paper"

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "btkit.sqlite"


def known_variables() -> list[str]:
    """Every BTKIT_ name a user may set (credentials as their pattern's prefix)."""
    names = [PREFIX + name.upper() for name in Settings.model_fields]
    return [*names, *NOT_SETTINGS]


def _is_credential(name: str) -> bool:
    """`BTKIT_CREDENTIALS__<EXCHANGE>__<FIELD>` with a field ExchangeCredentials has."""
    parts = name.split("__")
    if parts[0] != PREFIX + "CREDENTIALS" or len(parts) not in (1, 3):
        return False
    return len(parts) == 1 or parts[2].lower() in ExchangeCredentials.model_fields


def check_variables(*sources: Mapping[str, str | None]) -> None:
    """Raise ConfigError naming every unknown BTKIT_ variable, with close matches."""
    known = known_variables()
    problems = []
    for source in sources:
        for raw in source:
            name = raw.upper()
            if not name.startswith(PREFIX) or name in known or _is_credential(name):
                continue
            notes = [] if source is os.environ else ["in .env"]
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            if name.startswith(PREFIX + "CREDENTIALS"):
                notes.append("use BTKIT_CREDENTIALS__<EXCHANGE>__API_KEY, __SECRET or __PASSWORD")
            elif close:
                notes.append(f"did you mean {close[0]}?")
            problems.append(f"{raw} ({', '.join(notes)})" if notes else raw)
    if problems:
        raise ConfigError(
            f"Unknown setting{'s' if len(problems) > 1 else ''} {', '.join(problems)}. "
            f"Known: {_listing(known)}. Fix or remove it (`btkit init` writes an example .env)."
        )


def _listing(names: Iterable[str]) -> str:
    shown = [n for n in names if n not in NOT_SETTINGS and n != PREFIX + "CREDENTIALS"]
    return ", ".join(shown) + ", BTKIT_CREDENTIALS__<EXCHANGE>__API_KEY/SECRET/PASSWORD"


def _dotenv(path: Path) -> dict[str, str | None]:
    try:
        return dotenv_values(path) if path.is_file() else {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}.") from exc
