"""`btkit --help` answers without loading what only the commands need.

Speed itself is measured in bench/ (`python -X importtime`, wall time); this
pins the cause: which modules a help request imports.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import atexit, sys
def report():
    print("\\n".join(sorted(sys.modules)), file=sys.stderr)
atexit.register(report)
sys.argv = ["btkit", *sys.argv[1:]]
from btkit.cli.main import main
main()
"""

HEAVY = ("numpy", "rich", "ccxt", "matplotlib", "sqlite3", "pydantic_settings", "asyncio")


def _loaded(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout
    return set(done.stderr.split())


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("backtest", "--help"), ("live", "-h")])
def test_help_loads_neither_the_engine_nor_heavy_libraries(args):
    loaded = _loaded(*args)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == []
    ours = sorted(m for m in loaded if m.startswith("btkit."))
    assert ours == ["btkit.cli", "btkit.cli.main"]


def test_the_package_still_exports_the_strategy_api_on_first_use():
    import btkit

    assert btkit.Signal.__module__ == "btkit.domain.model"
    assert btkit.Candles.__module__ == "btkit.domain.candles"
    assert btkit.get_candles.__module__ == "btkit.context"
    assert btkit.strategy.__module__ == "btkit.strategies"
    assert btkit.Backtest is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        btkit.nope  # noqa: B018
