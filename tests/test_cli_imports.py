"""`btkit --help` answers without loading what only the commands need.

Speed itself is measured in bench/ (`python -X importtime`, wall time); this
pins the cause: which modules a help request imports.
"""

from __future__ import annotations

import subprocess
import sys
import types

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

HEAVY = (
    "numpy",
    "rich",
    "ccxt",
    "matplotlib",
    "sqlite3",
    "pydantic",
    "pydantic_settings",
    "asyncio",
)


def _loaded(*args: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout
    return set(done.stderr.split())


@pytest.mark.parametrize(
    "args",
    [("--help",), ("-h",), ("backtest", "--help"), ("live", "-h"), ("sweep", "ETHBTC", "-h")],
)
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


COMMANDS = ["live", "backtest", "sweep", "download", "report", "events", "status", "init"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_a_command_help_page_is_the_one_the_group_would_show(command, flag, capsys, monkeypatch):
    """`btkit COMMAND -h` skips the group's option parsing, not a word of the page."""
    from btkit.cli.main import app, main

    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    monkeypatch.setattr(sys, "argv", ["/venv/bin/btkit", command, flag])  # as the script
    with pytest.raises(SystemExit) as through_group:
        app([command, flag])
    expected = capsys.readouterr()
    with pytest.raises(SystemExit) as direct:
        main()
    shown = capsys.readouterr()
    assert (direct.value.code or 0) == (through_group.value.code or 0) == 0
    assert shown.out == expected.out
    assert f"Usage: btkit {command} " in shown.out


def test_a_help_flag_after_double_dash_or_for_an_unknown_command_is_left_to_the_group(
    capsys, monkeypatch
):
    from btkit.cli.main import main

    monkeypatch.setattr(sys, "argv", ["btkit", "nope", "--help"])
    with pytest.raises(SystemExit) as unknown:
        main()
    assert unknown.value.code == 2
    assert "No such command" in capsys.readouterr().err
