"""systemd integration: the generated unit, the notify protocol, journal-friendly logs."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
from pathlib import Path

from btkit.app.service import UnitSpec, render_unit


def directives(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )


def spec(**changes):
    values = dict(
        command=["/opt/btkit/bin/btkit"],
        workdir=Path("/srv/btkit"),
        strategies_dir=Path("/srv/btkit/strategies"),
        data_dir=Path("/srv/btkit/data"),
        logs_dir=Path("/srv/btkit/logs"),
        symbols=["BTCUSDT"],
        strategy="my-strategy",
        exchange="binance",
    )
    values.update(changes)
    return UnitSpec(**values)


def test_system_unit_has_every_directive():
    unit = directives(render_unit(spec()))
    assert unit["ExecStart"].startswith("/opt/btkit/bin/btkit live BTCUSDT --strategy my-strategy")
    assert "--data-dir /srv/btkit/data" in unit["ExecStart"]
    expected = {
        "Type": "notify",
        "WorkingDirectory": "/srv/btkit",
        "EnvironmentFile": "-/srv/btkit/.env",
        "Restart": "always",
        "RestartSec": "10",
        "WatchdogSec": "180",
        "KillSignal": "SIGTERM",
        "TimeoutStopSec": "90",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/srv/btkit/data /srv/btkit/logs",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "WantedBy": "multi-user.target",
    }
    assert {k: unit[k] for k in expected} == expected


def test_template_user_and_home_variants():
    template = directives(render_unit(spec(template=True, symbols=[])))
    assert " live %i --strategy" in template["ExecStart"]
    user = directives(render_unit(spec(user=True)))
    assert user["WantedBy"] == "default.target"
    assert "ProtectSystem" not in user
    home = directives(
        render_unit(spec(workdir=Path("/home/ann/bot"), data_dir=Path("/home/ann/bot/data")))
    )
    assert home["ProtectHome"] == "read-only"
    replay = directives(render_unit(spec(exchange="replay")))
    assert replay["Restart"] == "on-failure"


def test_cli_writes_units_that_systemd_accepts(project):
    done = project.run(
        "service",
        "ETHBTC",
        "LTCBTC",
        "-s",
        "my-strategy",
        "-e",
        "binance",
        "--write",
        "btkit-my-strategy.service",
    )
    assert done.returncode == 0, done.stderr
    assert "systemctl daemon-reload" in done.stderr
    path = project.root / "btkit-my-strategy.service"
    unit = directives(path.read_text())
    executable = unit["ExecStart"].split()[0]
    assert Path(executable).is_absolute()
    assert Path(executable).exists()
    template = project.run(
        "service", "--template", "-s", "my-strategy", "--write", "btkit@.service"
    )
    assert template.returncode == 0
    analyze = shutil.which("systemd-analyze")
    if analyze:  # where systemd is installed, it checks the units itself
        for name in ("btkit-my-strategy.service", "btkit@.service"):
            verify = subprocess.run(
                [analyze, "verify", str(project.root / name)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert verify.returncode == 0, verify.stderr


def test_notify_protocol_on_a_real_socket(project, tmp_path):
    address = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.settimeout(0.2)
    messages: list[str] = []
    done = threading.Event()

    def collect():
        while not done.is_set():
            try:
                messages.append(receiver.recv(4096).decode())
            except TimeoutError:
                continue

    thread = threading.Thread(target=collect)
    thread.start()
    try:
        run = project.run(
            "live",
            "ETHBTC",
            "LTCBTC",
            "-s",
            "my-strategy",
            "--speed",
            "2000",
            env={"NOTIFY_SOCKET": address},
        )
    finally:
        done.set()
        thread.join()
        receiver.close()
    assert run.returncode == 0, run.stderr
    assert messages[0].startswith("READY=1\nSTATUS=2 symbol(s)")
    assert messages[-1] == "STOPPING=1\nSTATUS=stopping"
    pings = [m for m in messages if m.startswith("WATCHDOG=1")]
    # one ping per completed tick cycle (both symbols), not one per symbol tick
    assert 1300 < len(pings) < 1500
    assert re.search(r"STATUS=2 symbol\(s\), \d open signal\(s\), last tick 2018-01-2", pings[-1])


def test_under_systemd_logs_have_no_colours_or_timestamps(project):
    run = project.run(
        "live", "ETHBTC", "-s", "my-strategy", "--json", env={"JOURNAL_STREAM": "8:12345"}
    )
    assert run.returncode == 0
    lines = [line for line in run.stderr.splitlines() if line]
    assert lines
    assert all(re.match(r"^(INFO|WARNING|ERROR|DEBUG) ", line) for line in lines), lines[:3]
    assert "\x1b[" not in run.stderr
