"""`btkit live` as a process: OS signals, the event printer, and the exit status."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

from btkit.console import EventPrinter, StartupInfo
from btkit.domain import OpenedResult
from btkit.runtime.assembly import LiveSetup, RunOptions, open_live
from btkit.runtime.live import LiveSession
from btkit.runtime.systemd import Notifier
from btkit.settings import Settings
from btkit.timefmt import format_time

log = logging.getLogger(__name__)


async def run_daemon(
    settings: Settings,
    symbols: Sequence[str],
    *,
    strategy: str,
    exchange: str,
    printer: EventPrinter,
    options: RunOptions = RunOptions(),
    drain: bool = False,
) -> int:
    """Run until stopped or the replay ends; 0 on a clean end, 1 if a symbol failed."""
    notifier = Notifier.from_environment()
    async with open_live(
        settings,
        symbols,
        strategy,
        exchange,
        options=options,
        on_cycle=lambda session: notifier.watchdog(session.status_line()),
    ) as setup:
        session = setup.session
        printer.startup(_startup_info(settings, setup, options))
        _install_stop_handlers(session, drain, notifier)
        notifier.ready(session.status_line())
        opened = closed = 0
        async for result in setup.session.events():
            printer.event(result)
            if isinstance(result, OpenedResult):
                opened += 1
            else:
                closed += 1
        notifier.stopping()
        still_open = session.open_signals
        printer.finish(
            f"stopped: {opened} opened, {closed} closed, {still_open} open signal(s) kept "
            "in the state files for the next start"
            + (
                f"; failed symbols: {' '.join(session.failed_symbols)}"
                if session.failed_symbols
                else ""
            )
        )
        return 1 if session.failed_symbols else 0


def _install_stop_handlers(session: LiveSession, drain: bool, notifier: Notifier) -> None:
    loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_signal(name: str) -> None:
        received.append(name)
        notifier.stopping()
        if len(received) == 1 and drain:
            log.warning(
                "%s: no new signals; waiting for %d open signal(s) to close "
                "(send it again to stop now)",
                name,
                session.open_signals,
            )
            session.stop(drain=True)
        else:
            log.warning("%s: finishing the current tick, then stopping", name)
            session.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig.name)


def _startup_info(settings: Settings, setup: LiveSetup, options: RunOptions) -> StartupInfo:
    strategy = setup.strategy
    replay_text = None
    if setup.replay_start_ms is not None:
        speed = "max" if options.speed is None else f"{options.speed:g} min/s"
        replay_text = f"from {format_time(setup.replay_start_ms)} at speed {speed}"
    return StartupInfo(
        strategy=strategy.name,
        strategy_file=str(strategy.source),
        interval=strategy.interval,
        exchange=setup.exchange_label,
        symbols=setup.symbols,
        folders={
            "strategies": str(settings.strategies_dir),
            "state": str(settings.signal_dir),
            "logs": str(settings.logs_dir),
        },
        restored=[r.restored_signal for r in setup.session.runners if r.restored_signal],
        replay=replay_text,
    )
