"""The pure rules of SPEC §3-§4, checked directly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from btkit.domain.model import Candle, OpenSignal, Signal
from btkit.engine.decision import close_reason, price_hits, signal_call_due
from btkit.engine.pnl import Costs, compute_pnl
from btkit.engine.pricing import vwap
from btkit.engine.validation import MAX_NOTE_BYTES, coerce_signal, validate_signal
from btkit.market.arrays import CandleArrays, aggregate

DEFAULT = Costs()


@pytest.mark.parametrize(
    ("position", "price_open", "price_close", "expected"),
    [
        ("long", 10_000, 10_100, 0.598202),  # 79.9 / 10010 * 100 - 0.2
        ("short", 10_000, 9_900, 0.601802),  # 80.1 / 9990 * 100 - 0.2
        ("long", 10_000, 9_900, -1.397802),  # -119.9 / 10010 * 100 - 0.2
        ("short", 10_000, 10_100, -1.402202),  # -120.1 / 9990 * 100 - 0.2
        ("long", 10_000, 10_000, -0.399800),
    ],
)
def test_pnl_after_fees_and_slippage(position, price_open, price_close, expected):
    pnl = compute_pnl(position, price_open, price_close, DEFAULT)
    assert pnl.pnl_percentage == pytest.approx(expected, abs=5e-7)
    assert (pnl.price_open, pnl.price_close) == (price_open, price_close)


def test_pnl_without_costs_is_the_plain_move():
    free = Costs(fee_percent=0, slippage_percent=0)
    assert compute_pnl("long", 100, 110, free).pnl_percentage == pytest.approx(10)
    assert compute_pnl("short", 100, 90, free).pnl_percentage == pytest.approx(10)


def _signal(**changes):
    values = dict(
        position="long",
        price_open=100.0,
        price_take_profit=110.0,
        price_stop_loss=95.0,
        minute_estimated_time=60,
    )
    values.update(changes)
    return Signal(**values)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"price_open": math.nan}, "price_open must be a finite number > 0"),
        ({"price_take_profit": math.inf}, "price_take_profit must be a finite number > 0"),
        ({"price_stop_loss": 0.0}, "price_stop_loss must be a finite number > 0"),
        ({"price_open": -5.0}, "price_open must be a finite number > 0"),
        ({"price_open": "100"}, "price_open must be a finite number > 0"),
        ({"minute_estimated_time": 0}, "minute_estimated_time must be"),
        ({"minute_estimated_time": -1}, "minute_estimated_time must be"),
        ({"minute_estimated_time": math.nan}, "minute_estimated_time must be"),
        ({"position": "sideways"}, "position must be 'long' or 'short'"),
        ({"price_take_profit": 90.0}, "long needs take-profit > open > stop-loss"),
        ({"price_stop_loss": 105.0}, "long needs take-profit > open > stop-loss"),
        ({"position": "short"}, "short needs take-profit < open < stop-loss"),
    ],
)
def test_every_validation_rule(changes, fragment):
    problems = validate_signal(_signal(**changes), timestamp=1)
    assert any(fragment in p for p in problems), problems


def test_validation_names_every_broken_rule_at_once():
    problems = validate_signal(
        _signal(price_open=math.nan, price_stop_loss=-1.0, minute_estimated_time=0), timestamp=0
    )
    assert len(problems) == 4, problems


@pytest.mark.parametrize(
    ("changes", "broken"),
    [
        ({"price_take_profit": -5.0}, ["price_take_profit must be", "long needs"]),
        ({"price_open": math.nan, "price_take_profit": 90.0}, ["price_open must be", "long needs"]),
        (
            {"price_stop_loss": "95", "price_take_profit": 99.0},
            ["price_stop_loss must", "long needs"],
        ),
        (
            {"position": "short", "price_open": 0.0},
            ["price_open must be", "short needs take-profit < open < stop-loss"],
        ),
        ({"price_open": math.inf, "price_take_profit": 90.0}, ["price_open must be", "long needs"]),
    ],
)
def test_the_order_rule_is_named_even_when_a_price_is_also_invalid(changes, broken):
    problems = validate_signal(_signal(**changes), timestamp=1)
    assert len(problems) == len(broken), problems
    for fragment, problem in zip(broken, problems, strict=True):
        assert fragment in problem


def test_a_price_that_is_not_a_number_takes_no_part_in_the_order_rule():
    problems = validate_signal(_signal(price_open=math.nan), timestamp=1)  # 110 > nan > 95
    assert len(problems) == 1
    assert "price_open must be" in problems[0]


def test_an_infinite_lifetime_is_valid_but_nan_and_minus_infinity_are_not():
    assert validate_signal(_signal(minute_estimated_time=math.inf), timestamp=1) == []
    for bad in (-math.inf, math.nan, True, "60"):
        problems = validate_signal(_signal(minute_estimated_time=bad), timestamp=1)
        assert any("minute_estimated_time must be a number > 0" in p for p in problems), bad


def test_a_note_is_capped_with_a_clear_message():
    assert validate_signal(_signal(note="x" * MAX_NOTE_BYTES), timestamp=1) == []
    problems = validate_signal(_signal(note="x" * 10_000_000), timestamp=1)
    assert problems == [
        f"note is 10000000 bytes, more than the {MAX_NOTE_BYTES} allowed "
        "(keep it a short label; log bulky data yourself)"
    ]
    multibyte = "é" * (MAX_NOTE_BYTES // 2 + 1)  # under the cap in characters, over in bytes
    assert "note is" in validate_signal(_signal(note=multibyte), timestamp=1)[0]
    assert validate_signal(_signal(note=42), timestamp=1) == ["note must be a string, not int"]


def test_valid_signals_pass():
    assert validate_signal(_signal(), timestamp=1) == []
    short = _signal(position="short", price_take_profit=90.0, price_stop_loss=105.0)
    assert validate_signal(short, timestamp=1) == []


def test_coerce_accepts_mappings_and_rejects_other_types():
    assert coerce_signal(
        {
            "position": "long",
            "price_open": 1.0,
            "price_take_profit": 2.0,
            "price_stop_loss": 0.5,
            "minute_estimated_time": 5,
        }
    ) == Signal("long", 1.0, 2.0, 0.5, 5)
    assert "not int" in coerce_signal(42)[0]
    assert "does not match" in coerce_signal({"side": "long"})[0]


def _open(position="long", tp=110.0, sl=95.0, lifetime=60):
    return OpenSignal(
        id="x",
        position=position,
        price_open=100.0,
        price_take_profit=tp,
        price_stop_loss=sl,
        minute_estimated_time=lifetime,
        symbol="S",
        strategy_name="s",
        exchange_name="e",
        timestamp=0,
    )


@pytest.mark.parametrize(
    ("signal", "price", "when", "expected"),
    [
        (_open(), 110.0, 1, "take_profit"),  # touching the level counts
        (_open(), 111.0, 1, "take_profit"),
        (_open(), 95.0, 1, "stop_loss"),
        (_open(), 100.0, 59 * 60_000, None),
        (_open(), 100.0, 60 * 60_000, "time_expired"),
        (_open(), 120.0, 60 * 60_000, "take_profit"),  # price beats expiry
        (_open(), 90.0, 61 * 60_000, "stop_loss"),
        (_open("short", 90.0, 105.0), 90.0, 1, "take_profit"),
        (_open("short", 90.0, 105.0), 105.0, 1, "stop_loss"),
        (_open("short", 90.0, 105.0), 100.0, 1, None),
        (_open("short", 90.0, 105.0), 100.0, 3_600_000, "time_expired"),
        (_open("short", 90.0, 105.0), 89.0, 3_600_000, "take_profit"),
    ],
)
def test_close_decision(signal, price, when, expected):
    assert close_reason(signal, price, when) == expected


def test_price_hits_is_elementwise_on_arrays():
    prices = np.array([94.0, 100.0, 111.0])
    take_profit, stop_loss = price_hits("long", 110.0, 95.0, prices)
    assert take_profit.tolist() == [False, False, True]
    assert stop_loss.tolist() == [True, False, False]


def test_signal_throttle():
    assert signal_call_due(None, 0, 300_000)
    assert not signal_call_due(0, 240_000, 300_000)
    assert signal_call_due(0, 300_000, 300_000)


def test_vwap_weights_typical_price_by_volume():
    candles = [Candle(0, 1, 12, 6, 9, 1.0), Candle(60_000, 1, 30, 24, 27, 3.0)]
    assert vwap(candles) == pytest.approx((9 * 1 + 27 * 3) / 4)


def test_vwap_with_zero_volume_is_the_mean_close():
    candles = [Candle(0, 1, 12, 6, 9, 0.0), Candle(60_000, 1, 30, 24, 27, 0.0)]
    assert vwap(candles) == 18
    assert vwap([]) is None


def test_aggregate_rolls_minutes_into_periods_and_keeps_gaps():
    ts = np.array([0, 60_000, 120_000, 600_000], dtype=np.int64)
    arrays = CandleArrays(
        ts,
        np.array([1.0, 2, 3, 4]),
        np.array([5.0, 9, 6, 7]),
        np.array([0.5, 1, 2, 3]),
        np.array([2.0, 3, 4, 5]),
        np.array([1.0, 1, 1, 1]),
    )
    five = aggregate(arrays, 300_000).to_candles()
    assert five == [Candle(0, 1, 9, 0.5, 4, 3), Candle(600_000, 4, 7, 3, 5, 1)]
