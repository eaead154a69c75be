"""What an exchange's generic error means: try again later, or stop and tell the user.

ccxt maps many exchange codes to precise classes, but leaves some transient
ones as a bare `ExchangeError` (Bybit's retCode 10016 "System error. Please
try again later." arrives like that). These pure functions read the code and
message ccxt puts into the error text and decide by meaning, per exchange
where a code is known, by wording otherwise.
"""

from __future__ import annotations

import json
import re

TRANSIENT_CODES: dict[str, frozenset[str]] = {
    # https://bybit-exchange.github.io/docs/v5/error
    "bybit": frozenset({"10000", "10016", "10019", "170001", "170007", "170146"}),
    # https://www.okx.com/docs-v5/en/#error-code
    "okx": frozenset({"50001", "50004", "50013", "50026", "51054", "51149"}),
    "binance": frozenset({"-1000", "-1001", "-1003", "-1007", "-1008"}),
}
"""Codes that mean "the exchange is busy or failed internally: ask again"."""

_TRANSIENT_WORDING = re.compile(
    r"try again|retry later|temporar|system (error|busy)|server (error|busy)|"
    r"internal error|service unavailable|overload|timed? ?out|too many requests|"
    r"maintenance|busy",
    re.IGNORECASE,
)

_CODE_KEYS = ("retCode", "ret_code", "code", "error_code", "errorCode")


def error_code(text: str) -> str | None:
    """The exchange's own error code from ccxt's message (`<id> <JSON body>`), if any."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        body, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    for key in _CODE_KEYS:
        if body.get(key) not in (None, "", 0, "0"):
            return str(body[key])
    return None


def is_transient(exchange_id: str, text: str) -> bool:
    """True when a generic exchange error says the same request may succeed later."""
    code = error_code(text)
    if code is not None and code in TRANSIENT_CODES.get(exchange_id, frozenset()):
        return True
    return bool(_TRANSIENT_WORDING.search(text))
