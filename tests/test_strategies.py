from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from btkit.domain.errors import ConfigError, StrategyLoadError
from btkit.strategies import load_strategies, resolve_strategy, scan_strategies, strategy

REPO = Path(__file__).resolve().parents[1]

GOOD = """
from btkit import strategy

@strategy("alpha", interval="5m")
async def alpha(symbol):
    return None
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_loads_every_strategy_in_the_folder(tmp_path):
    write(tmp_path, "a.py", GOOD)
    write(tmp_path, "_helpers.py", "raise SystemExit('never imported')")
    found = load_strategies(tmp_path)
    assert list(found) == ["alpha"]
    assert found["alpha"].interval_ms == 300_000
    assert found["alpha"].source == tmp_path / "a.py"


def test_unknown_name_lists_the_available_ones(tmp_path):
    write(tmp_path, "a.py", GOOD)
    with pytest.raises(
        ConfigError, match=r"'alpah' not found .*Did you mean alpha\?.*Available: alpha"
    ):
        resolve_strategy(tmp_path, "alpah")


def test_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "broken.py", "x = 1\ndef oops(:\n")
    with pytest.raises(StrategyLoadError, match=rf"{path}:2 failed to import: SyntaxError"):
        load_strategies(tmp_path)


def test_runtime_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "broken.py", "import os\n\nvalue = 1 / 0\n")
    with pytest.raises(StrategyLoadError, match=rf"{path}:3 failed to import: ZeroDivisionError"):
        load_strategies(tmp_path)


def test_bad_declaration_is_reported_at_its_line(tmp_path):
    text = GOOD.replace('interval="5m"', 'interval="7m"')
    path = write(tmp_path, "a.py", text)
    with pytest.raises(StrategyLoadError, match=rf"{path}:4 .*interval must be one of"):
        load_strategies(tmp_path)


def test_duplicate_names_name_both_files(tmp_path):
    first = write(tmp_path, "a.py", GOOD)
    second = write(tmp_path, "b.py", GOOD)
    with pytest.raises(ConfigError, match=rf"declared twice: in {first} and in {second}"):
        load_strategies(tmp_path)


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="new-strategy"):
        load_strategies(tmp_path / "nope")


def test_signal_function_must_be_async():
    with pytest.raises(TypeError, match="async def"):
        strategy("sync")(lambda symbol: None)


def test_shipped_strategy_loads(tmp_path):
    shutil.copy(REPO / "strategies" / "my_strategy.py", tmp_path)
    definition = resolve_strategy(tmp_path, "my-strategy")
    assert definition.interval == "5m"
    assert asyncio.iscoroutinefunction(definition.get_signal)


def test_one_broken_file_does_not_hide_the_others(tmp_path, caplog):
    write(tmp_path, "a.py", GOOD)
    broken = write(tmp_path, "b.py", "x = 1\ndef oops(:\n")
    scanned = scan_strategies(tmp_path)
    assert list(scanned.found) == ["alpha"]
    assert [path for path, _ in scanned.broken] == [broken]
    assert resolve_strategy(tmp_path, "alpha").name == "alpha"
    assert f"{broken}:2 failed to import: SyntaxError" in caplog.text


def test_a_broken_file_that_names_the_strategy_is_the_error(tmp_path):
    write(tmp_path, "a.py", GOOD)
    broken = write(tmp_path, "b.py", GOOD.replace("alpha", "beta") + "oops(\n")
    with pytest.raises(StrategyLoadError, match=rf"{broken}:\d+ failed to import"):
        resolve_strategy(tmp_path, "beta")


def test_not_found_names_the_files_that_failed(tmp_path):
    write(tmp_path, "a.py", GOOD)
    broken = write(tmp_path, "b.py", "value = 1 / 0\n")
    expected = rf"'gamma' not found.*{broken}:1 failed to import.*'gamma' may be declared there"
    with pytest.raises(StrategyLoadError, match=expected):
        resolve_strategy(tmp_path, "gamma")
