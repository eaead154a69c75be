"""Temporary btkit projects and helpers to run the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
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


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project folder with the shipped strategy and one day of ETHBTC and LTCBTC."""
    (tmp_path / "strategies").mkdir()
    shutil.copy(REPO / "strategies" / "my_strategy.py", tmp_path / "strategies")
    candles = tmp_path / "data" / "candles"
    candles.mkdir(parents=True)
    for symbol in ("ETHBTC", "LTCBTC"):
        copy_candles(candles, symbol, rows=1440)
    return Project(tmp_path)
