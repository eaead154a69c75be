"""my-strategy: a moving-average crossover on 1m candles, TP/SL sized from volatility.

Every 5 minutes it compares a fast (10-minute) and a slow (30-minute) average of
closes with where they stood 5 minutes earlier. When the fast one has crossed
above the slow one it goes long, below it goes short. Take-profit and stop-loss
sit at a multiple of the recent average 1m range, never closer than 0.4 % (the
round-trip cost of fees and slippage), and the signal expires after an hour.

It is an example of the API to copy, not a money-maker: on the shipped January
2018 candles it loses about 0.4 % per trade after costs (see `btkit backtest`).
"""

from statistics import fmean

from btkit import Signal, get_average_price, get_candles, strategy

FAST = 10
SLOW = 30
LOOKBACK = 5  # minutes between the two comparisons: the strategy's interval
MIN_DISTANCE = 0.004  # 0.4 % of the price


@strategy("my-strategy", interval="5m", warmup_minutes=SLOW + LOOKBACK)
async def my_strategy(symbol: str) -> Signal | None:
    candles = await get_candles(symbol, "1m", SLOW + LOOKBACK)
    if len(candles) < SLOW + LOOKBACK:
        return None  # not enough history yet, or a gap in the data
    # Columns (`candles.close`, `.high`, ...) are read-only NumPy arrays over btkit's
    # own memory: no candle objects are built. fmean sums exactly, in any order.
    closes = candles.close.tolist()
    earlier = closes[:-LOOKBACK]
    fast_now, slow_now = fmean(closes[-FAST:]), fmean(closes[-SLOW:])
    fast_then, slow_then = fmean(earlier[-FAST:]), fmean(earlier[-SLOW:])
    crossed_up = fast_then <= slow_then and fast_now > slow_now
    crossed_down = fast_then >= slow_then and fast_now < slow_now
    if not (crossed_up or crossed_down):
        return None

    price = await get_average_price(symbol)
    typical_range = fmean((candles.high[-SLOW:] - candles.low[-SLOW:]).tolist())
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
