"""my-strategy: a moving-average crossover on 1m candles, TP/SL sized from volatility.

Every 5 minutes it compares a fast (10-minute) and a slow (30-minute) average of
closes with where they stood 5 minutes earlier. When the fast one has crossed
above the slow one it goes long, below it goes short. Take-profit and stop-loss
sit at a multiple of the recent average 1m range, never closer than 0.4 % (the
round-trip cost of fees and slippage), and the signal expires after an hour.
The two lengths are tunable: `btkit sweep ETHBTC --strategy my-strategy` tries
others (declared in `params=`, read with `param(...)`; `constraint=` keeps
fast below slow). Backtests call it only where `may_cross`, the same rule over
whole columns, says the averages may have crossed: `screen=` in the API,
checked by `btkit backtest --check-screen`.

It is an example of the API to copy, not a money-maker: on the shipped January
2018 candles it loses about 0.4 % per trade after costs (see `btkit backtest`).
"""

from statistics import fmean

import numpy as np

from btkit import Candles, IntRange, Signal, get_average_price, get_candles, param, strategy

FAST = 10
SLOW = 30
LOOKBACK = 5  # minutes between the two comparisons: the strategy's interval
MIN_DISTANCE = 0.004  # 0.4 % of the price
TOLERANCE = 1e-9  # relative: far above the rounding of a 60-close sum (1e-14)


def may_cross(candles: Candles) -> np.ndarray:
    """Per candle: may the averages have crossed at the tick right after it finished?

    The screen of `my_strategy` (backtests skip every other tick): the same
    crossing rule over whole columns, over the same closes `my_strategy` averages
    (a window of `slow + LOOKBACK`, so a `fast` above `slow` is cut short as there),
    with a margin for rounding, and True where these arrays hold too little history.
    """
    fast, slow = int(param("fast")), int(param("slow"))
    window = slow + LOOKBACK
    close = candles.close
    maybe = np.ones(len(close), dtype=bool)
    if len(close) < window:
        return maybe

    def average(length: int, back: int) -> np.ndarray:
        """Per row from `window - 1` on: the mean of `length` closes ending `back` rows earlier."""
        means = np.convolve(close, np.ones(length), "valid") / length  # ending at row length - 1..
        first = window - 1 - back - (length - 1)
        return means[first : len(means) - back]

    fast_now, slow_now = average(min(fast, window), 0), average(slow, 0)
    fast_then = average(min(fast, window - LOOKBACK), LOOKBACK)
    slow_then = average(slow, LOOKBACK)
    margin = TOLERANCE * np.abs(slow_now)
    up = (fast_then <= slow_then + margin) & (fast_now > slow_now - margin)
    down = (fast_then >= slow_then - margin) & (fast_now < slow_now + margin)
    maybe[window - 1 :] = up | down
    return maybe


@strategy(
    "my-strategy",
    interval="5m",
    warmup_minutes=SLOW + LOOKBACK,
    params={
        "fast": IntRange(5, 25, step=5, default=FAST),
        "slow": IntRange(20, 60, step=10, default=SLOW),
    },
    screen=may_cross,
    constraint=lambda p: p["fast"] < p["slow"],  # sweeps skip the sets that make no sense
)
async def my_strategy(symbol: str) -> Signal | None:
    fast, slow = int(param("fast")), int(param("slow"))
    candles = await get_candles(symbol, "1m", slow + LOOKBACK)
    if len(candles) < slow + LOOKBACK:
        return None  # not enough history yet, or a gap in the data
    # Columns (`candles.close`, `.high`, ...) are read-only NumPy arrays over btkit's
    # own memory: no candle objects are built. fmean sums exactly, in any order.
    closes = candles.close.tolist()
    earlier = closes[:-LOOKBACK]
    fast_now, slow_now = fmean(closes[-fast:]), fmean(closes[-slow:])
    fast_then, slow_then = fmean(earlier[-fast:]), fmean(earlier[-slow:])
    crossed_up = fast_then <= slow_then and fast_now > slow_now
    crossed_down = fast_then >= slow_then and fast_now < slow_now
    if not (crossed_up or crossed_down):
        return None

    price = await get_average_price(symbol)
    typical_range = fmean((candles.high[-slow:] - candles.low[-slow:]).tolist())
    distance = max(2 * typical_range, MIN_DISTANCE * price)
    if crossed_up:
        return Signal(
            position="long",
            price_open=price,
            price_take_profit=price + 1.5 * distance,
            price_stop_loss=price - distance,
            minute_estimated_time=60,
            note="fast MA crossed above slow MA",
        )
    return Signal(
        position="short",
        price_open=price,
        price_take_profit=price - 1.5 * distance,
        price_stop_loss=price + distance,
        minute_estimated_time=60,
        note="fast MA crossed below slow MA",
    )
