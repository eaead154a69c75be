"""Names for an exchange's markets, and the user's spelling of a symbol to one of them.

A market's name is what btkit files it under (candle file, state file, ledger):
its exchange id (`BTCUSDT`, OKX `BTC-USDT`) when that id is its alone. Exchanges
such as Bybit and Binance give a spot market and a derivative the same id
(`ETHBTC` is the spot ETH/BTC and the perpetual ETH/BTC:BTC); the spot market
keeps the id and a perpetual gets `.P` after it, as TradingView writes it
(`ETHBTC.P`); other derivatives are named from ccxt's unified symbol
(`ETHBTC.BTC-251226`). So the two never share a file, and no name holds a `/`
or `:`. Pure: works on the dict ccxt's `load_markets` returns.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from btkit.domain.errors import PermanentExchangeError

_PREFERENCE = ("spot", "swap", "future")
"""Which market keeps a shared id: spot first, as a user typing `BTCUSDT` means."""


def _rank(market: Mapping[str, Any]) -> int:
    kind = str(market.get("type") or "")
    return _PREFERENCE.index(kind) if kind in _PREFERENCE else len(_PREFERENCE)


def _squash(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", text.upper())


def _derived_name(market_id: str, unified: str, market: Mapping[str, Any]) -> str:
    if market.get("type") == "swap":
        return f"{market_id}.P"
    return unified.replace("/", "").replace(":", ".")


def market_names(markets: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Unified symbol -> name, unique per market."""
    by_id: dict[str, list[str]] = {}
    for unified, market in markets.items():
        by_id.setdefault(str(market.get("id") or unified), []).append(unified)
    names: dict[str, str] = {}
    taken: set[str] = set()
    for market_id, symbols in sorted(by_id.items()):
        first, *others = sorted(symbols, key=lambda u: (_rank(markets[u]), u))
        names[first] = market_id
        taken.add(market_id)
        for unified in others:
            name = _derived_name(market_id, unified, markets[unified])
            while name in taken or name in by_id:
                name += "_"
            names[unified] = name
            taken.add(name)
    return names


class MarketIndex:
    """Resolves `BTCUSDT`, `BTC/USDT`, `btcusdt`, `BTCUSDT.P` to one market's name."""

    def __init__(self, exchange_id: str, markets: Mapping[str, Mapping[str, Any]]) -> None:
        self.exchange_id = exchange_id
        self._markets = markets
        self._name_of = market_names(markets)
        self._unified_of = {name: unified for unified, name in self._name_of.items()}

    @property
    def known(self) -> bool:
        """Whether the exchange's markets were loaded into this index."""
        return bool(self._markets)

    def market(self, name: str) -> Mapping[str, Any]:
        """ccxt's market dict for a name this index gave out."""
        return self._markets[self.unified(name)]

    def unified(self, name: str) -> str:
        """ccxt's unified symbol for a name this index gave out (or the text itself)."""
        return self._unified_of.get(name, name)

    def resolve(self, text: str) -> str:
        """The name of the one market `text` means; PermanentExchangeError otherwise."""
        if text in self._unified_of:
            return text
        if text in self._name_of:
            return self._name_of[text]
        folded = text.upper()
        matches = {
            unified
            for unified, name in self._name_of.items()
            if folded in (unified.upper(), name.upper())
        }
        names = sorted({self._name_of[u] for u in matches})
        if len(names) == 1:
            return names[0]
        if len(names) > 1:
            raise PermanentExchangeError(
                f"{self.exchange_id}: {text!r} could mean {', '.join(names)}; give one of "
                "them exactly as written."
            )
        raise PermanentExchangeError(
            f"{self.exchange_id} has no market {text!r}. Close matches: "
            f"{', '.join(self._close_matches(text)) or 'none'}. {self._hint()}"
        )

    def _close_matches(self, text: str) -> list[str]:
        """Markets spelled like `text` in the exchange's own form (OKX `ETH-BTC`)."""
        squashed = _squash(text)
        same = sorted(
            name
            for unified, name in self._name_of.items()
            if squashed and squashed in (_squash(name), _squash(unified))
        )
        candidates = sorted({*self._name_of.values(), *self._name_of})
        close = difflib.get_close_matches(text.upper(), candidates, n=5, cutoff=0.6)
        return list(dict.fromkeys([*same, *close]))[:5]

    def _hint(self) -> str:
        """An example in this exchange's own form, from a spot market it lists."""
        spot = sorted(
            (u for u, m in self._markets.items() if m.get("spot")),
            key=lambda u: (not u.startswith("BTC/USDT"), not u.startswith("BTC/"), u),
        )
        example = spot[0] if spot else next(iter(self._name_of), None)
        if example is None:
            return "The exchange lists no markets."
        return (
            f"Give the market id ({self._name_of[example]}) or the unified symbol ({example}); "
            "case does not matter."
        )
