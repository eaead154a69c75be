"""UTC time for humans and file names; all btkit times are ms since the epoch, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utc(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def format_time(timestamp_ms: int | None) -> str:
    if timestamp_ms is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp_ms // 1000))


def format_time_seconds(timestamp_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp_ms // 1000))


def file_stamp(timestamp_ms: int) -> str:
    return utc(timestamp_ms).strftime("%Y%m%dT%H%M%SZ")


def parse_utc(text: str) -> int:
    """`2018-01-21`, `2018-01-21T10:00` or with an offset; naive times are UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
