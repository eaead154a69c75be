"""systemd units that run `btkit live`: one service, or a template with one instance per symbol."""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from btkit.settings import Settings

HOME_PREFIXES = ("/home/", "/root/", "/run/user/")


@dataclass(frozen=True, slots=True)
class UnitSpec:
    command: list[str]
    """How to start btkit: its absolute path, or the interpreter with -m btkit."""
    workdir: Path
    strategies_dir: Path
    data_dir: Path
    logs_dir: Path
    symbols: Sequence[str]
    strategy: str
    exchange: str
    template: bool = False
    user: bool = False


def btkit_command() -> list[str]:
    """The absolute path of the `btkit` this interpreter installed, else `python -m btkit`.

    The interpreter's path is kept as is, not resolved: a virtual environment's
    `python` is a symlink, and the base interpreter it points to lacks btkit.
    """
    interpreter = Path(sys.executable).absolute()
    beside = interpreter.parent / "btkit"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("btkit")
    if found:
        return [str(Path(found).absolute())]
    return [str(interpreter), "-m", "btkit"]


def check_unit(spec: UnitSpec, settings: Settings) -> None:
    """Check what `btkit live` would check at start, so a unit never crash-loops on a typo.

    The strategy must load, the exchange must be known, and on replay every
    symbol needs its candle file. A real exchange's symbols need the network:
    `btkit live` checks those when the unit starts.
    """
    from btkit.adapters.exchanges.replay import REPLAY, candle_file
    from btkit.domain.errors import DataError
    from btkit.strategies import resolve_strategy
    from btkit.wiring.exchanges import check_exchange_id

    resolve_strategy(settings.strategies_dir, spec.strategy)
    if spec.exchange != REPLAY:
        check_exchange_id(spec.exchange, settings.candles_dir)
        return
    for symbol in spec.symbols:
        if not candle_file(settings.candles_dir, symbol).exists():
            available = sorted(
                p.name.removesuffix("-1m.csv") for p in settings.candles_dir.glob("*-1m.csv")
            )
            raise DataError(
                f"No candle file for {symbol} in {settings.candles_dir} for the replay exchange. "
                f"Available: {', '.join(available) or 'none'}. Use --exchange for a real "
                f"exchange, or fetch candles with `btkit download {symbol} --exchange binance`."
            )


def render_unit(spec: UnitSpec) -> str:
    symbols = ["%i"] if spec.template else list(spec.symbols)
    exec_start = shlex.join(
        [
            *spec.command,
            "live",
            *symbols,
            "--strategy",
            spec.strategy,
            "--exchange",
            spec.exchange,
            "--strategies-dir",
            str(spec.strategies_dir),
            "--data-dir",
            str(spec.data_dir),
            "--logs-dir",
            str(spec.logs_dir),
        ]
    )
    what = "%i" if spec.template else " ".join(spec.symbols)
    replay = spec.exchange == "replay"
    lines = [
        "[Unit]",
        f"Description=btkit live {spec.strategy} on {spec.exchange}: {what}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exec_start}",
        f"WorkingDirectory={spec.workdir}",
        f"EnvironmentFile=-{spec.workdir / '.env'}",
        # A replay ends by itself when its history does; restart it only on failure.
        f"Restart={'on-failure' if replay else 'always'}",
        "RestartSec=10",
        "# WATCHDOG=1 follows every completed tick cycle (once a minute).",
        "WatchdogSec=180",
        "KillSignal=SIGTERM",
        "# Long enough to finish a tick, persist, and close the exchange client.",
        "TimeoutStopSec=90",
        "LimitNOFILE=65536",
        "NoNewPrivileges=yes",
    ]
    if spec.user:
        lines += ["# Sandboxing (ProtectSystem=, ReadWritePaths=, ...) needs a system unit."]
    else:
        paths = [str(p) for p in (spec.workdir, spec.data_dir, spec.logs_dir, spec.strategies_dir)]
        under_home = any(p.startswith(HOME_PREFIXES) for p in paths)
        under_tmp = any(p.startswith(("/tmp/", "/var/tmp/")) for p in paths)
        lines += [
            "ProtectSystem=strict",
            f"ReadWritePaths={spec.data_dir} {spec.logs_dir}",
            # A private /tmp would hide folders that live under /tmp.
            f"PrivateTmp={'no' if under_tmp else 'yes'}",
            f"ProtectHome={'read-only' if under_home else 'yes'}",
        ]
    lines += [
        "",
        "[Install]",
        f"WantedBy={'default.target' if spec.user else 'multi-user.target'}",
        "",
    ]
    return "\n".join(lines)


def unit_name(spec: UnitSpec) -> str:
    if spec.template:
        return "btkit@.service"
    return f"btkit-{spec.strategy}.service"
