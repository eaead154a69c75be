"""The architecture as a test: who may import what (docs/ARCHITECTURE.md, "Layers").

Read from the source with `ast` (every import, also those inside functions and
under TYPE_CHECKING), so a rule broken in a rarely run branch is still caught.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "btkit"

HEAVY = {"ccxt", "sqlite3", "filelock", "matplotlib"}
"""Third-party or slow I/O libraries: only adapters may import them."""
UI = {"rich", "typer"}
"""The console: the outer edge only."""


@cache
def imports() -> dict[str, set[str]]:
    """Module name -> every module it imports (absolute names)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{module}: use absolute imports"
                assert node.module is not None
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[module] = names
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def _unit(module: str) -> str:
    """btkit.engine.step -> engine; btkit -> btkit (the package's own __init__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "btkit"


def _modules_of(*units: str) -> dict[str, set[str]]:
    return {m: names for m, names in imports().items() if _unit(m) in units}


def _own(names: set[str]) -> set[str]:
    """The btkit units among `names` (a `from btkit.x import y` names module btkit.x)."""
    return {_unit(n) for n in names if _top(n) == "btkit" and n != "btkit"}


def _third_party(names: set[str]) -> set[str]:
    return {_top(n) for n in names if _top(n) not in sys.stdlib_module_names} - {"btkit"}


def test_the_scan_sees_the_package():
    assert {"btkit.engine.step", "btkit.drivers.runner", "btkit.ports"} <= set(imports())
    assert "sqlite3" in {_top(n) for n in imports()["btkit.adapters.store.ledger"]}


# The one exception: the candle window strategies get is NumPy columns by design
# (issue 14: candles at array speed); ports name it only under TYPE_CHECKING.
DOMAIN_NUMPY = {"btkit.domain.candles"}


def test_domain_imports_only_the_standard_library():
    for module, names in _modules_of("domain").items():
        allowed = {"numpy"} if module in DOMAIN_NUMPY else set()
        assert _third_party(names) <= allowed, module
        assert _own(names) <= {"domain"}, module


def test_engine_imports_only_domain_and_numpy():
    for module, names in _modules_of("engine").items():
        assert _third_party(names) <= {"numpy"}, module
        assert _own(names) <= {"domain", "engine"}, module


def test_ports_import_only_domain():
    names = imports()["btkit.ports"]
    assert _third_party(names) == set()
    assert _own(names) <= {"domain"}


@pytest.mark.parametrize("unit", ["drivers", "app", "market", "context", "strategies", "wiring"])
def test_inner_layers_never_import_io_libraries_or_the_console(unit):
    for module, names in _modules_of(unit).items():
        assert {_top(n) for n in names} & (HEAVY | UI) == set(), module


def test_only_adapters_import_ccxt_sqlite_filelock_matplotlib():
    offenders = {
        module: {_top(n) for n in names} & HEAVY
        for module, names in imports().items()
        if _unit(module) != "adapters"
    }
    assert {m: libs for m, libs in offenders.items() if libs} == {}


def test_only_the_cli_imports_typer_and_rich():
    offenders = {
        module: {_top(n) for n in names} & UI
        for module, names in imports().items()
        if _unit(module) != "cli"
    }
    assert {m: libs for m, libs in offenders.items() if libs} == {}


def test_adapters_are_constructed_only_in_wiring():
    """One composition root: use cases, api.py and the CLI ask `btkit.wiring` for adapters."""
    constructors = {
        "SqliteLedger",
        "JsonSignalStore",
        "MemorySignalStore",
        "ReplayExchange",
        "CcxtExchange",
        "WallClock",
        "SimulatedClock",
        "LiveReportWriter",
        "ArrayMarket",
        "ExchangeMarket",
        "CandleAppender",
        "StopLatch",
        "from_environment",  # Notifier.from_environment
    }
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(("wiring/", "adapters/")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in constructors:
                    offenders.append(f"{relative}:{node.lineno} {name}(...)")
    assert offenders == []


def test_no_import_cycles_between_the_top_level_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, names in imports().items():
        unit = _unit(module)
        if unit == "btkit":
            continue  # the package's facade: lazily re-exports `api` for library users
        graph[unit] |= _own(names) - {unit, "btkit"}
    cycles = []

    def visit(unit: str, path: list[str]) -> None:
        for nxt in sorted(graph[unit]):
            if nxt == path[0]:
                cycles.append(" -> ".join([*path, nxt]))
            elif nxt not in path and nxt > path[0]:
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert cycles == []


def test_a_strategy_s_import_btkit_loads_no_io_library():
    """`import btkit` is what every strategy file does: no ccxt, SQLite, filelock, matplotlib."""
    code = (
        "import sys, btkit\n"
        "from btkit import Signal, get_candles, get_average_price, strategy\n"
        f"print(' '.join(sorted(m for m in {sorted(HEAVY | UI)!r} if m in sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
