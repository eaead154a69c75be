"""Which `<candles>/<NAME>-1m.csv` holds a symbol, whatever the user's spelling.

Files are named after the symbol they were downloaded as: `ETHBTC` on Binance,
`ETH-BTC` on OKX. `ETH/BTC`, `eth-btc` and `ETHBTC` all mean the same market,
so a symbol matches a file when both agree once case and the separators
`/ - _` are ignored (`:` stays: `ETH/BTC:BTC` is a perpetual, not the spot
pair). An exact file name always wins; two files that match a spelling
equally are an error naming both, never a guess.
"""

from __future__ import annotations

from pathlib import Path

from btkit.domain.errors import DataError

SUFFIX = "-1m.csv"
FORMAT = "put a timestamp,open,high,low,close,volume CSV of 1m candles there."


def _path(candles_dir: Path, name: str) -> Path:
    return candles_dir / f"{name}{SUFFIX}"


def symbol_key(symbol: str) -> str:
    """The spelling-free form of a symbol: upper case, without `/ - _`."""
    return symbol.upper().translate(str.maketrans("", "", "/-_"))


def available_symbols(candles_dir: Path) -> list[str]:
    return sorted(path.name.removesuffix(SUFFIX) for path in candles_dir.glob(f"*{SUFFIX}"))


def find_candle_file(candles_dir: Path, symbol: str) -> Path:
    """The one file for `symbol`; a DataError lists the files when none or several match."""
    exact = _path(candles_dir, symbol)
    if "/" not in symbol and exact.is_file():
        return exact
    names = available_symbols(candles_dir)
    matches = [name for name in names if symbol_key(name) == symbol_key(symbol)]
    if len(matches) == 1:
        return _path(candles_dir, matches[0])
    if matches:
        raise DataError(
            f"{symbol} matches several candle files in {candles_dir}: "
            f"{', '.join(m + SUFFIX for m in matches)}. Give the symbol exactly as one of "
            f"them is named ({' or '.join(matches)}), or remove the one you do not want."
        )
    raise DataError(
        f"No candle file for {symbol} in {candles_dir} (looked for {exact.name} and other "
        f"spellings of it). Available: {', '.join(names) or 'none'}. Fetch it with "
        f"`btkit download {symbol} --exchange binance` (any ccxt exchange id), or {FORMAT}"
    )
