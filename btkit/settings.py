"""Typed settings: defaults < `.env` < `BTKIT_*` environment < command-line options."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from btkit.engine.pnl import Costs


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
        15.0, gt=0, description="Exit non-zero after this long without candles"
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
    credentials: dict[str, ExchangeCredentials] = Field(
        default_factory=dict, description="Per-exchange API keys (optional)"
    )

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
    def ledger_path(self) -> Path:
        return self.data_dir / "btkit.sqlite"
