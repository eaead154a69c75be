"""Temporary btkit projects, helpers to run the real CLI in a subprocess, and the
`system` marker: tests that start real processes carry it, so `pytest -m "not system"`
runs the in-process tests in seconds."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

ALWAYS_LONG = """
from btkit import Signal, get_average_price, strategy

@strategy("always-long", interval="5m", warmup_minutes=10)
async def always_long(symbol):
    price = await get_average_price(symbol)
    return Signal("long", price, price * 1.01, price * 0.99, 240)
"""


@dataclass
class Project:
    root: Path

    @property
    def signal_dir(self) -> Path:
        return self.root / "data" / "signal"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BTKIT_")}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "btkit", *args]

    def run(
        self, *args: str, timeout: float = 900, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            cwd=self.root,
            env={**self.env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return _Daemon(
            self.command(*args),
            cwd=self.root,
            env={**self.env(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def write_strategy(self, name: str, text: str) -> Path:
        path = self.root / "strategies" / name
        path.write_text(text)
        return path

    def clone_data(self, name: str) -> str:
        """A second data folder with the same candles, for a reference run."""
        shutil.copytree(self.root / "data" / "candles", self.root / name / "candles")
        return name


# --- The `system` marker --------------------------------------------------------------
#
# A test is marked `system` when it, a helper function it calls, or a fixture it uses
# starts a process (project.run/start, subprocess, run_limited), or when its module is
# listed below. Every test is watched: one that starts a process without the mark fails
# with a note saying how to mark it, so `-m "not system"` stays honest.

SYSTEM_MODULES: frozenset[str] = frozenset({"test_sweep_cli", "test_sweep_cluster"})
"""Modules whose every test is a system test although the source check cannot see it."""
_STARTS_PROCESSES = ("project.run(", "project.start(", "subprocess.", "run_limited(", "Popen(")
_PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn"})
_spawned: list[str] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event in _PROCESS_EVENTS:
        _spawned.append(event)


sys.addaudithook(_audit)


def _source(function: object) -> str:
    try:
        return inspect.getsource(function)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return ""


_helpers: dict[str, frozenset[str]] = {}


def _spawning_helpers(module: object) -> frozenset[str]:
    """Names of the module's helper functions (its own or imported from tests/) that
    start processes, directly or through another such helper."""
    name = getattr(module, "__name__", "")
    if name not in _helpers:
        sources = {
            helper: _source(value)
            for helper, value in vars(module).items()
            if inspect.isfunction(value)
            and value.__module__.startswith("tests")
            and not helper.startswith("test_")
        }
        found = {h for h, text in sources.items() if any(c in text for c in _STARTS_PROCESSES)}
        grew = True
        while grew:
            more = {h for h, text in sources.items() if any(f"{f}(" in text for f in found)}
            grew = not more <= found
            found |= more
        _helpers[name] = frozenset(found)
    return _helpers[name]


def _starts_processes(item: pytest.Item) -> bool:
    module = getattr(item, "module", None)
    if module is None:
        return False
    if module.__name__.rpartition(".")[2] in SYSTEM_MODULES:
        return True
    helpers = _spawning_helpers(module)
    fixtures = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    texts = [_source(getattr(item, "function", None))]
    texts += [_source(definitions[-1].func) for definitions in fixtures.values()]
    return any(
        call in text
        for text in texts
        for call in (*_STARTS_PROCESSES, *(f"{helper}(" for helper in helpers))
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("system") is None and _starts_processes(item):
            item.add_marker(pytest.mark.system)


@pytest.fixture(autouse=True)
def _processes_only_in_system_tests(request: pytest.FixtureRequest):
    before = len(_spawned)
    yield
    if len(_spawned) > before and request.node.get_closest_marker("system") is None:
        pytest.fail(
            f"{request.node.nodeid} started a process ({_spawned[before]}) but is not marked "
            "`system`: add @pytest.mark.system, or list its module in SYSTEM_MODULES "
            "(tests/conftest.py)",
            pytrace=False,
        )


class _Daemon(subprocess.Popen[str]):
    """A started btkit that a failing test cannot leave running: leaving the `with`
    block kills it if it is still alive, so a failed wait never hangs the suite."""

    def __exit__(self, *exc_info: object) -> None:
        if self.poll() is None:
            self.kill()
        super().__exit__(*exc_info)


class Lines:
    """A pipe's lines, read on a thread, so a test waits for one with a deadline (no sleeps)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        try:
            for line in stream:
                with self._changed:
                    self.lines.append(line)
                    self._changed.notify_all()
        except (ValueError, OSError):
            pass  # the pipe was closed under us as the process was reaped: no more lines
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    raise AssertionError("no matching line in:\n" + "".join(self.lines))
                self._changed.wait(left)

    def text(self, timeout: float = 60) -> str:
        self._thread.join(timeout)
        return "".join(self.lines)


def catches(pid: int, sig: signal.Signals) -> bool:
    """Whether process `pid` has a handler for `sig` (Linux: SigCgt in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def wait_for_paths(process: subprocess.Popen[str], *paths: Path, timeout: float = 120) -> None:
    """Wait (with a deadline) until a running process has created every path: a test
    strategy's way of saying "I am at this point now"."""
    deadline = time.monotonic() + timeout
    while not all(path.exists() for path in paths):
        assert process.poll() is None, "the process ended before it got there"
        assert time.monotonic() < deadline, f"none of {paths} appeared in {timeout:g} s"
        time.sleep(0.01)


def wait_until_catching(
    process: subprocess.Popen[str], sig: signal.Signals = signal.SIGTERM, timeout: float = 120
) -> None:
    """Wait (with a deadline) until the process handles `sig`: its earliest safe moment."""
    deadline = time.monotonic() + timeout
    while not catches(process.pid, sig):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"process never installed a {sig.name} handler")
        time.sleep(0.002)


def json_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def copy_candles(target: Path, symbol: str, rows: int | None) -> None:
    source = REPO / "data" / "candles" / f"{symbol}-1m.csv"
    lines = source.read_text().splitlines(keepends=True)
    (target / f"{symbol}-1m.csv").write_text("".join(lines if rows is None else lines[: rows + 1]))


def _new_project(root: Path) -> Project:
    (root / "strategies").mkdir(parents=True)
    shutil.copy(REPO / "strategies" / "my_strategy.py", root / "strategies")
    candles = root / "data" / "candles"
    candles.mkdir(parents=True)
    for symbol in ("ETHBTC", "LTCBTC"):
        copy_candles(candles, symbol, rows=1440)
    return Project(root)


@pytest.fixture(scope="session")
def _replayed_once(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = _new_project(tmp_path_factory.mktemp("replayed") / "p")
    done = project.run("live", "ETHBTC", "LTCBTC", "-s", "my-strategy")
    assert done.returncode == 0, done.stderr
    return project


@pytest.fixture
def replayed(_replayed_once: Project, tmp_path: Path) -> Project:
    """A project after `btkit live ETHBTC LTCBTC -s my-strategy` over its day of candles
    (ledger, state files, live report): one real run per session, a copy per test."""
    root = tmp_path / "replayed"
    shutil.copytree(_replayed_once.root, root)
    return Project(root)


class InProcess:
    """`btkit ARGS` run in this process (typer's CliRunner) in the project folder, for
    tests where a process adds nothing; same result shape as `Project.run`."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        from typer.testing import CliRunner

        from btkit.cli.main import app

        result = CliRunner().invoke(app, list(args), env=env, prog_name="btkit")
        if not isinstance(result.exception, SystemExit | None):
            raise result.exception  # a traceback a user would have seen
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcess]:
    """The CLI in process, in the project folder; leaves the working folder, BTKIT_
    variables, logging, stop-signal handlers and secret redaction as it found them."""
    import logging
    import signal as signals

    from btkit.adapters.system.stop_signals import STOP_SIGNALS
    from btkit.cli import main as cli_main

    monkeypatch.chdir(project.root)
    for name in [n for n in os.environ if n.startswith("BTKIT_")]:
        monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stop_handlers = {sig: signals.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        yield InProcess(project)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for sig, handler in stop_handlers.items():
            signals.signal(sig, handler)
        cli_main._secrets.clear()


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project folder with the shipped strategy and one day of ETHBTC and LTCBTC."""
    return _new_project(tmp_path)
