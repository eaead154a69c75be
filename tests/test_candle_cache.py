"""The binary candle cache: memory-mapped, checked when opened, rebuilt when stale or old."""

from __future__ import annotations

import mmap

import numpy as np

from btkit.adapters.store.candle_cache import cache_path, load_candles
from btkit.adapters.store.candle_csv import read_candle_csv
from tests.test_parity import write_gappy_candles


def _mapped(column: np.ndarray) -> bool:
    base = column.base
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, mmap.mmap)


def test_a_cached_file_is_memory_mapped_and_equals_the_parsed_csv(tmp_path):
    path = tmp_path / "THIN-1m.csv"
    write_gappy_candles(path, minutes=1440)
    parsed = read_candle_csv(path)
    first = load_candles(path)  # parses, writes the cache
    assert cache_path(path).exists()
    again = load_candles(path)  # maps the cache
    for column in again.columns():
        assert _mapped(column)
        assert not column.flags.writeable
    assert not any(_mapped(column) for column in first.columns())
    for mine, theirs in zip(again.columns(), parsed.columns(), strict=True):
        assert mine.dtype == theirs.dtype
        assert np.array_equal(mine, theirs)
    assert again.forget is not None
    again.forget(len(again))  # pages handed back are read again on the next access
    assert np.array_equal(again.close, parsed.close)
    assert np.array_equal(again.timestamp, parsed.timestamp)


def test_a_cache_in_the_previous_layout_is_rebuilt(tmp_path):
    """Before, row 0 held the timestamps as floats and row 6 began with the CSV's size."""
    path = tmp_path / "THIN-1m.csv"
    write_gappy_candles(path, minutes=600)
    parsed = read_candle_csv(path)
    stat = path.stat()
    table = np.zeros((7, len(parsed)))
    for row, column in enumerate(parsed.columns()):
        table[row] = column
    table[6, :3] = [stat.st_size, stat.st_mtime_ns, 0]
    cache_path(path).parent.mkdir()
    np.save(cache_path(path), table)
    candles = load_candles(path)
    assert np.array_equal(candles.timestamp, parsed.timestamp)
    assert _mapped(load_candles(path).timestamp)  # rewritten in the new layout


def test_the_cache_is_a_plain_npy_file_of_the_seven_row_table(tmp_path):
    """Written column by column (no second copy of the candles), it is still what np.save
    would write: any NumPy reads it, and small files get their notes row padded."""
    for minutes in (3, 1440):  # 3: fewer candles than the notes need
        path = tmp_path / f"T{minutes}-1m.csv"
        write_gappy_candles(path, minutes=minutes)
        parsed = read_candle_csv(path)
        load_candles(path)
        table = np.load(cache_path(path))
        assert table.shape[0] == 7
        assert table.shape[1] >= len(parsed)
        assert np.array_equal(table[0, : len(parsed)].view(np.int64), parsed.timestamp)
        for row, column in enumerate(parsed.columns()[1:], start=1):
            assert np.array_equal(table[row, : len(parsed)], column)
        assert not table[:6, len(parsed) :].any()
        assert np.array_equal(load_candles(path).close, parsed.close)
