"""Pure logic of the exchange adapter: market names, symbol spelling, error meaning."""

from __future__ import annotations

import pytest

from btkit.adapters.exchanges.classify import error_code, is_transient
from btkit.adapters.exchanges.markets import MarketIndex, market_names
from btkit.domain.errors import PermanentExchangeError


def market(market_id, kind="spot"):
    return {"id": market_id, "type": kind, "spot": kind == "spot"}


BYBIT = {
    "ETH/BTC": market("ETHBTC"),
    "ETH/BTC:BTC": market("ETHBTC", "swap"),
    "BTC/USDT": market("BTCUSDT"),
    "BTC/USDT:USDT": market("BTCUSDT", "swap"),
    "BTC/USDT:USDT-251226": market("BTCUSDT", "future"),
    "LTC/BTC": market("LTCBTC"),
}
OKX = {
    "ETH/BTC": market("ETH-BTC"),
    "BTC/USDT": market("BTC-USDT"),
    "BTC/USDT:USDT": market("BTC-USDT-SWAP", "swap"),
}


def test_a_shared_id_stays_with_the_spot_market_and_derivatives_get_their_own_names():
    names = market_names(BYBIT)
    assert names["ETH/BTC"] == "ETHBTC"
    assert names["ETH/BTC:BTC"] == "ETHBTC.P"
    assert names["BTC/USDT:USDT"] == "BTCUSDT.P"
    assert names["BTC/USDT:USDT-251226"] == "BTCUSDT.USDT-251226"
    assert len(set(names.values())) == len(names)
    assert not any("/" in name or ":" in name for name in names.values())


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("ETHBTC", "ETHBTC"),
        ("ETH/BTC", "ETHBTC"),
        ("ethbtc", "ETHBTC"),
        ("eth/btc", "ETHBTC"),
        ("ETH/BTC:BTC", "ETHBTC.P"),
        ("ETHBTC.P", "ETHBTC.P"),
        ("ethbtc.p", "ETHBTC.P"),
        ("btc/usdt:usdt", "BTCUSDT.P"),
    ],
)
def test_symbols_resolve_whatever_the_case(text, name):
    index = MarketIndex("bybit", BYBIT)
    assert index.resolve(text) == name
    assert index.resolve(name) == name  # a name given out resolves to itself


def test_names_map_back_to_ccxts_unified_symbols():
    index = MarketIndex("bybit", BYBIT)
    assert index.unified("ETHBTC") == "ETH/BTC"
    assert index.unified("ETHBTC.P") == "ETH/BTC:BTC"


def test_ids_differing_only_in_case_are_ambiguous_when_typed_in_another_case():
    index = MarketIndex("x", {"AB/C": market("abc"), "A/BC": market("ABC")})
    assert index.resolve("abc") == "abc"
    with pytest.raises(PermanentExchangeError, match="could mean ABC, abc"):
        index.resolve("Abc")


def test_an_unknown_symbol_is_answered_in_the_exchanges_own_form():
    with pytest.raises(PermanentExchangeError) as raised:
        MarketIndex("okx", OKX).resolve("ETHBTC")
    message = str(raised.value)
    assert "okx has no market 'ETHBTC'. Close matches: ETH-BTC" in message
    assert "market id (BTC-USDT) or the unified symbol (BTC/USDT)" in message
    with pytest.raises(PermanentExchangeError, match=r"market id \(BTCUSDT\)"):
        MarketIndex("bybit", BYBIT).resolve("DOGEUSDT")


@pytest.mark.parametrize(
    ("exchange", "text", "transient"),
    [
        ("bybit", 'bybit {"retCode":10016,"retMsg":"System error. Please try again later."}', True),
        ("bybit", 'bybit {"retCode":170001,"retMsg":"Internal error."}', True),
        ("bybit", 'bybit {"retCode":10001,"retMsg":"params error: symbol invalid"}', False),
        (
            "okx",
            'okx {"code":"50026","msg":"System error, please try again later.","data":[]}',
            True,
        ),
        ("okx", 'okx {"code":"51000","msg":"Parameter bar error","data":[]}', False),
        ("kraken", "kraken EService:Unavailable, please try again later", True),
        ("kraken", "kraken EGeneral:Invalid arguments", False),
    ],
)
def test_generic_exchange_errors_are_classified_by_meaning(exchange, text, transient):
    assert is_transient(exchange, text) is transient


def test_error_codes_are_read_from_cctxs_message():
    assert error_code('bybit {"retCode":10016,"retMsg":"x"}') == "10016"
    assert error_code('okx {"code":"50013","msg":"busy","data":[]}') == "50013"
    assert error_code("binance GET https://x 503 Service Unavailable") is None
