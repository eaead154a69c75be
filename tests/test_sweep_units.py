"""Pure parts of `btkit sweep`: parameter declarations, grid and sampler, walk-forward."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from btkit import Choice, FloatRange, IntRange, param, strategy
from btkit.domain.errors import ConfigError
from btkit.domain.model import MINUTE_MS
from btkit.engine.params import grid, grid_size, label, name_suffix, point, sample
from btkit.engine.statistics import Trade
from btkit.engine.walk_forward import Window, leaderboard, rank, split, walk_forward

SPACE = {"fast": IntRange(5, 15, step=5, default=10), "mode": Choice("sma", "ema")}


@strategy("tunable", params=SPACE)
async def tunable(symbol: str) -> dict[str, object]:  # type: ignore[misc]
    return {"fast": param("fast"), "mode": param("mode"), "symbol": symbol}


def test_declared_defaults_are_what_param_reads() -> None:
    assert asyncio.run(tunable.get_signal("X")) == {"fast": 10, "mode": "sma", "symbol": "X"}
    assert tunable.name == "tunable"


def test_bound_values_change_what_param_reads_and_the_run_name() -> None:
    bound = tunable.bind({"fast": 15})
    assert asyncio.run(bound.get_signal("X")) == {"fast": 15, "mode": "sma", "symbol": "X"}
    assert bound.name == "tunable+fast:15+mode:sma"
    rebound = bound.bind({"mode": "ema"})  # from the declaration, not on top of `bound`
    assert asyncio.run(rebound.get_signal("X"))["fast"] == 10
    assert asyncio.run(tunable.get_signal("X"))["fast"] == 10  # the original is untouched


@pytest.mark.parametrize(
    ("values", "words"),
    [({"fast": 7}, "fast=7 is not one of"), ({"slow": 5}, "unknown parameter(s) slow")],
)
def test_binding_a_value_the_declaration_refuses_is_a_config_error(
    values: dict[str, int], words: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(words)):
        tunable.bind(values)


def test_a_strategy_without_params_runs_its_function_as_written() -> None:
    async def plain(symbol: str) -> None:
        return None

    declared = strategy("plain")(plain)
    assert declared.get_signal is plain
    assert declared.bind({}) is declared


def test_param_outside_a_strategy_call_says_where_it_works() -> None:
    with pytest.raises(RuntimeError, match="only available inside a strategy"):
        param("fast")


def test_a_bad_declaration_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="'fast': default 7 is not one of its values"):
        strategy("bad", params={"fast": IntRange(5, 15, step=5, default=7)})


def test_grid_point_and_sample() -> None:
    space = {"a": IntRange(1, 3), "b": FloatRange(0.1, 0.3, step=0.1), "c": Choice("x", "y")}
    full = grid(space)
    assert grid_size(space) == len(full) == 18
    assert full[0] == {"a": 1, "b": 0.1, "c": "x"}
    assert full[-1] == {"a": 3, "b": 0.3, "c": "y"}
    assert [point(space, i) for i in range(18)] == full
    drawn = sample(space, 5, seed=7)
    assert drawn == sample(space, 5, seed=7)  # seeded: a resumed sweep draws the same
    assert drawn != sample(space, 5, seed=8)
    assert len({label(d) for d in drawn}) == 5
    assert all(d in full for d in drawn)
    assert sample(space, 50, seed=1) == full


def test_name_suffix_is_safe_in_file_names_and_hashes_what_is_not() -> None:
    assert name_suffix({"b": 0.5, "a": -2}) == "a:-2+b:0.5"
    odd = name_suffix({"mode": "a+b:c"})
    assert odd.startswith("p-")
    assert odd != name_suffix({"mode": "a+b:d"})


def test_split_cuts_consecutive_windows_that_cover_the_period() -> None:
    start = 1_000 * MINUTE_MS
    end = start + 99 * MINUTE_MS  # 100 minutes
    windows = split(start, end, 2)
    assert len(windows) == 3
    assert windows[0].start == start
    assert windows[-1].end == end
    for before, after in itertools.pairwise(windows):
        assert after.start == before.end + MINUTE_MS
    with pytest.raises(ValueError, match="cannot be cut into 3 windows"):
        split(start, end, 2, least_minutes=40)


def _trades(*pnls: float, at: int = 0) -> list[Trade]:
    return [
        Trade(f"t{i}", "X", "long", at + i * 10, at + i * 10 + 5, "take_profit", 1, 1, 2, 0.5, p)
        for i, p in enumerate(pnls)
    ]


def test_rank_puts_refused_and_undefined_last_and_breaks_ties_by_order() -> None:
    sets = [
        _trades(1.0, 1.0, -0.5),  # total +1.5
        _trades(),  # no trades: undefined
        _trades(5.0, -30.0, 40.0),  # highest return, drawdown 30 %
        _trades(1.0, 1.0, -0.5),  # ties with set 0
    ]
    order = [r.index for r in rank(sets, "total-return")]
    assert order == [2, 0, 3, 1]
    limited = rank(sets, "total-return", max_drawdown=10)
    assert [r.index for r in limited] == [0, 3, 1, 2]
    assert not limited[-1].allowed


def test_walk_forward_tunes_on_one_window_and_scores_on_the_next() -> None:
    windows = [Window(0, 99), Window(100, 199), Window(200, 299)]
    trades = {
        (0, 0): _trades(2.0), (0, 1): _trades(-1.0), (0, 2): _trades(3.0),
        (1, 0): _trades(1.0), (1, 1): _trades(4.0), (1, 2): _trades(-2.0),
    }  # fmt: skip
    folds = walk_forward(windows, trades, 2, "total-return")
    assert [f.chosen for f in folds] == [0, 1]
    assert folds[0].out_of_sample is not None
    assert folds[0].out_of_sample.total_pnl == -1.0
    assert folds[1].out_of_sample is not None
    assert folds[1].out_of_sample.total_pnl == -2.0
    board = leaderboard(windows, trades, 2, "total-return")
    assert [row.index for row in board] == [1, 0]  # 1 + 4 beats 2 - 1 on windows 0 and 1
    assert board[0].out_of_sample.total_pnl == -2.0  # window 2, never ranked on


def test_packed_trades_come_back_bit_for_bit() -> None:
    from btkit.adapters.store.sweep_store import pack_trades, unpack_trades

    trades = [
        Trade("a", "X", "short", 1_516_665_600_000, 1_516_665_900_000, "stop_loss",
              0.1 + 0.2, 1 / 3, 0.29, 0.31, -0.123456789012345),
        Trade("b", "X", "long", 1_516_665_960_000, 1_516_666_020_000, "time_expired",
              1e-8, 2e-8, 3e-8, 5e-9, 99.5),
    ]  # fmt: skip
    back = unpack_trades(pack_trades(trades), "X", "k" * 64)
    assert [(t.position, t.close_reason) for t in back] == [
        ("short", "stop_loss"),
        ("long", "time_expired"),
    ]
    assert [_without_id(t) for t in back] == [_without_id(t) for t in trades]  # exact floats
    assert len(pack_trades(trades)) == 2 * 72


def _without_id(trade: Trade) -> list[object]:
    return [getattr(trade, f.name) for f in dataclasses.fields(trade) if f.name != "signal_id"]


PAIRS = {"fast": IntRange(5, 25, step=5, default=10), "slow": IntRange(20, 60, step=10)}


def below(values: dict[str, object]) -> bool:
    return values["fast"] < values["slow"]  # type: ignore[operator]


def test_a_constraint_leaves_sets_that_break_it_out_of_the_grid_and_the_sample() -> None:
    kept = grid(PAIRS, below)
    assert len(kept) == grid_size(PAIRS) - 2  # (20, 20) and (25, 20)
    assert all(below(values) for values in kept)
    drawn = sample(PAIRS, 10, seed=3, keep=below)
    assert len(drawn) == 10
    assert all(below(values) for values in drawn)
    assert len({label(values) for values in drawn}) == 10
    assert drawn == sample(PAIRS, 10, seed=3, keep=below)  # a rerun finds the same jobs
    assert len(sample(PAIRS, 100, seed=3, keep=below)) == 23  # all there are
    assert sample(PAIRS, 5, seed=3) == sample(PAIRS, 5, seed=3, keep=None)  # unchanged


def test_binding_a_set_that_breaks_the_constraint_is_refused() -> None:
    @strategy("pairs", params=PAIRS, constraint=below)
    async def pairs(symbol: str) -> None:
        return None

    assert pairs.bind({"fast": 5, "slow": 20}).values == (("fast", 5), ("slow", 20))
    with pytest.raises(ConfigError, match="fast=25,slow=20 breaks the strategy's constraint"):
        pairs.bind({"fast": 25, "slow": 20})

    def broken(values: dict[str, object]) -> bool:
        if values["fast"] == 25:
            raise KeyError("speed")
        return True

    odd = strategy("odd", params=PAIRS, constraint=broken)(pairs.get_signal)
    with pytest.raises(ConfigError, match=r"constraint of strategy 'odd'.*raised KeyError"):
        odd.bind({"fast": 25, "slow": 60})
    with pytest.raises(ValueError, match="its constraint raised KeyError"):
        strategy("odder", params=PAIRS, constraint=lambda p: p["speed"])(pairs.get_signal)
    with pytest.raises(ValueError, match="defaults break its constraint"):
        strategy("bad", params=PAIRS, constraint=lambda p: p["fast"] > 20)(pairs.get_signal)


@pytest.mark.system
def test_strategy_files_shipped_to_a_worker_are_removed_when_it_ends(tmp_path: Path) -> None:
    (tmp_path / "one.py").write_text("X = 1\n")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from btkit.app.sweep_jobs import StrategyFiles\n"
        "shipped = StrategyFiles.read(Path(sys.argv[1]))\n"
        "folder = shipped.materialise()\n"
        "assert shipped.materialise() == folder  # once per content\n"
        "assert (folder / 'one.py').read_text() == 'X = 1\\n'\n"
        "print(folder)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip())
    assert folder.name.startswith("btkit-strategies-")
    assert not folder.exists()
