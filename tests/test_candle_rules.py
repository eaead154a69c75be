"""The candle rule (engine.candle_rules), exchange rows, and candle files at their edge."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from btkit.adapters.exchanges.candle_rows import checked_candles
from btkit.adapters.store.candle_cache import cache_path, load_candles
from btkit.adapters.store.candle_csv import parse_candle_csv, read_candle_csv
from btkit.domain.errors import DataError
from btkit.engine.candle_rules import (
    BAD_VOLUME,
    FAULTS,
    GOOD,
    HIGH_BELOW_LOW,
    NOT_A_NUMBER,
    NOT_MS,
    NOT_POSITIVE,
    OFF_MINUTE,
    OUTSIDE_RANGE,
    candle_faults,
    describe_faults,
    first_faults,
)

T = 1_516_406_400_000  # 2018-01-20T00:00Z
GOOD_ROW = (T, 2.0, 3.0, 1.0, 2.5, 10.0)


@pytest.mark.parametrize(
    ("row", "code"),
    [
        (GOOD_ROW, GOOD),
        ((T, 2.0, 2.0, 2.0, 2.0, 0.0), GOOD),  # a flat, tradeless minute is a candle
        ((T // 1000, 2.0, 3.0, 1.0, 2.5, 10.0), NOT_MS),  # seconds
        ((T * 1000, 2.0, 3.0, 1.0, 2.5, 10.0), NOT_MS),  # microseconds
        ((T + 1000, 2.0, 3.0, 1.0, 2.5, 10.0), OFF_MINUTE),
        ((T, math.nan, 3.0, 1.0, 2.5, 10.0), NOT_A_NUMBER),
        ((T, 2.0, math.inf, 1.0, 2.5, 10.0), NOT_A_NUMBER),
        ((T, 2.0, 3.0, 0.0, 2.5, 10.0), NOT_POSITIVE),
        ((T, -2.0, 3.0, 1.0, 2.5, 10.0), NOT_POSITIVE),
        ((T, 2.0, 1.0, 3.0, 2.5, 10.0), HIGH_BELOW_LOW),
        ((T, 3.5, 3.0, 1.0, 2.5, 10.0), OUTSIDE_RANGE),
        ((T, 2.0, 3.0, 1.0, 0.5, 10.0), OUTSIDE_RANGE),
        ((T, 2.0, 3.0, 1.0, 2.5, -1.0), BAD_VOLUME),
        ((T, 2.0, 3.0, 1.0, 2.5, math.nan), BAD_VOLUME),
    ],
)
def test_each_rule_names_the_first_one_a_candle_breaks(row, code):
    columns = [np.array([value]) for value in row]
    assert candle_faults(*columns).tolist() == [code]


def test_the_rule_checks_whole_columns_and_describes_the_bad_rows():
    rows = [GOOD_ROW, (T + 60_000, 0.0, 3.0, 1.0, 2.5, 1.0)] + [
        (T + n * 60_000, 2.0, 1.0, 3.0, 2.0, 1.0) for n in range(2, 6)
    ]
    codes = candle_faults(*(np.array(column) for column in zip(*rows, strict=True)))
    assert codes.tolist() == [GOOD, NOT_POSITIVE] + [HIGH_BELOW_LOW] * 4
    text = describe_faults(5, first_faults(codes, [f"line {n}" for n in range(2, 8)]))
    assert text == (
        f"5 bad candle(s): line 3 ({FAULTS[NOT_POSITIVE]}), line 4 ({FAULTS[HIGH_BELOW_LOW]}), "
        f"line 5 ({FAULTS[HIGH_BELOW_LOW]}) and 2 more"
    )


def test_exchange_rows_with_nan_and_null_are_dropped_and_logged_once(caplog):
    rows = [
        [T, "2", "3", "1", "2.5", "10"],
        [T + 60_000, float("nan"), 3.0, 1.0, 2.5, 10.0],  # ccxt's form of "NaN"
        [T + 120_000, 2.0, None, 1.0, 2.5, 10.0],  # JSON null
        [T + 180_000, 2.0, 3.0, 1.0, 2.5, None],  # no volume: no trades, kept
        [None, 2.0, 3.0, 1.0, 2.5, 1.0],
        [10**30, 2.0, 3.0, 1.0, 2.5, 1.0],
        ["soon", 2.0, 3.0, 1.0, 2.5, 1.0],
    ]
    with caplog.at_level(logging.WARNING):
        candles = checked_candles(rows, "test-nan ETH/BTC 1m")
        again = checked_candles(rows, "test-nan ETH/BTC 1m")
    assert [c.timestamp for c in candles] == [T, T + 180_000]
    assert candles[1].volume == 0.0
    assert again == candles
    warnings = [r.getMessage() for r in caplog.records if "test-nan" in r.getMessage()]
    assert len(warnings) == 1, warnings  # the same bad minute is not logged at every tick
    assert f"{T + 60_000} ({FAULTS[NOT_A_NUMBER]})" in warnings[0]
    assert f"{T + 120_000} ({FAULTS[NOT_A_NUMBER]})" in warnings[0]


HEADER = "timestamp,open,high,low,close,volume\n"


def _rows(count: int, start: int = T, step: int = 60_000) -> list[str]:
    return [f"{start + n * step},2.0,3.0,1.0,2.5,10.0\n" for n in range(count)]


def test_a_few_bad_rows_in_a_file_are_dropped_and_named(tmp_path, caplog):
    rows = _rows(10)
    rows[2] = f"{T + 120_000},2.0,1.0,3.0,2.0,1.0\n"  # high < low
    rows[5] = f"{T + 300_000},0,3.0,1.0,2.5,10.0\n"  # price 0
    rows[7] = f"{T + 420_000},nan,3.0,1.0,2.5,10.0\n"
    path = tmp_path / "X-1m.csv"
    path.write_text(HEADER + "".join(rows))
    with caplog.at_level(logging.WARNING):
        candles = read_candle_csv(path)
    assert len(candles) == 7
    assert T + 120_000 not in candles.timestamp.tolist()
    assert (
        f"{path}: dropped 3 bad candle(s): line 4 ({FAULTS[HIGH_BELOW_LOW]}), "
        f"line 7 ({FAULTS[NOT_POSITIVE]}), line 9 ({FAULTS[NOT_A_NUMBER]})" in caplog.text
    )


def test_a_file_in_seconds_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "X-1m.csv"
    path.write_text(HEADER + "".join(_rows(30, start=T // 1000, step=60)))
    with pytest.raises(DataError, match=r"X-1m.csv: the timestamps are in seconds \(line 2: "):
        read_candle_csv(path)


def test_a_mostly_bad_file_is_refused_with_the_commonest_reason(tmp_path):
    path = tmp_path / "X-1m.csv"
    rows = [f"{T + n * 60_000},2.0,1.0,3.0,2.0,1.0\n" for n in range(6)] + _rows(4, T + 3_600_000)
    path.write_text(HEADER + "".join(rows))
    with pytest.raises(DataError, match=f"6 of 10 rows are bad, mostly: {FAULTS[HIGH_BELOW_LOW]}"):
        read_candle_csv(path)


def test_a_sparse_file_is_refused_at_once_without_reading_it_whole(tmp_path):
    path = tmp_path / "X-1m.csv"
    path.write_text(HEADER + "".join(_rows(3)))
    with path.open("r+b") as handle:
        handle.truncate(2 * 1024**3)  # 2 GB, almost all of it NUL bytes (sparse)
    with pytest.raises(
        DataError, match=r"X-1m.csv:5: NUL bytes \(at byte 142\): the file is damaged"
    ):
        read_candle_csv(path)


def test_a_line_without_end_is_refused_with_bounded_memory(tmp_path):
    path = tmp_path / "X-1m.csv"
    path.write_bytes(HEADER.encode() + b"1" * (3 * 1024 * 1024))
    with pytest.raises(DataError, match=r"X-1m.csv:2: a line longer than 65536 bytes"):
        read_candle_csv(path)


def test_blocks_split_anywhere_give_the_same_candles(tmp_path, monkeypatch):
    import btkit.adapters.store.candle_csv as candle_csv

    path = tmp_path / "X-1m.csv"
    rows = _rows(200)
    rows[50] = "\n"  # blank lines are skipped
    rows[120] = rows[120].replace("\n", "\r\n")
    path.write_text(HEADER + "".join(rows))
    whole = parse_candle_csv(path)
    monkeypatch.setattr(candle_csv, "BLOCK_BYTES", 37)
    pieces = parse_candle_csv(path)
    assert len(whole.candles) == 199
    for name in ("timestamp", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(whole.candles, name), getattr(pieces.candles, name))


def test_a_bad_number_is_named_by_its_line(tmp_path):
    path = tmp_path / "X-1m.csv"
    rows = _rows(5)
    rows[3] = f"{T + 180_000},2.0,abc,1.0,2.5,10.0\n"
    path.write_text(HEADER + "".join(rows))
    with pytest.raises(DataError, match=r"X-1m.csv:5: not a number"):
        read_candle_csv(path)


def test_a_cache_holding_bad_candles_is_rebuilt(tmp_path):
    path = tmp_path / "X-1m.csv"
    rows = _rows(10)
    rows[4] = f"{T + 240_000},2.0,1.0,3.0,2.0,1.0\n"
    path.write_text(HEADER + "".join(rows))
    assert len(load_candles(path)) == 9
    table = np.load(cache_path(path))
    table[3, 0] = 0.0  # the first high: now below its low, as a damaged copy could be
    np.save(cache_path(path), table)
    candles = load_candles(path)
    assert len(candles) == 9
    assert candles.high[0] == 3.0


def test_dropped_rows_are_reported_again_when_the_cache_is_used(tmp_path, caplog):
    path = tmp_path / "X-1m.csv"
    rows = _rows(10)
    rows[4] = f"{T + 240_000},2.0,1.0,3.0,2.0,1.0\n"
    path.write_text(HEADER + "".join(rows))
    with caplog.at_level(logging.WARNING):
        load_candles(path)
        assert cache_path(path).exists()
        assert len(load_candles(path)) == 9
    report = f"{path}: dropped 1 bad candle(s): line 6 ({FAULTS[HIGH_BELOW_LOW]})"
    assert caplog.text.count(report) == 2  # from the CSV, then from the cache


def test_the_shipped_files_parse_exactly_as_python_does():
    for path in sorted((Path(__file__).parents[1] / "data" / "candles").glob("*-1m.csv")):
        candles = read_candle_csv(path)
        lines = path.read_text().splitlines()[1:]
        assert candles.timestamp.tolist() == [int(line.split(",")[0]) for line in lines]
        assert candles.close.tolist() == [float(line.split(",")[4]) for line in lines]


def test_cells_only_python_reads_still_parse_as_python_reads_them(tmp_path):
    path = tmp_path / "X-1m.csv"
    rows = _rows(5)
    rows[2] = f'{T + 120_000},"2.0",3_0.0, 1.0 ,2.5,1e1\n'  # quoted, underscore, spaces
    path.write_text(HEADER + "".join(rows))
    candles = read_candle_csv(path)
    assert candles.high.tolist() == [3.0, 3.0, 30.0, 3.0, 3.0]
    assert candles.open.tolist() == [2.0] * 5
    assert candles.volume.tolist() == [10.0] * 5
