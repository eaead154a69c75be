"""`btkit live` as a process: OS signals, the event printer, and the exit status."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from btkit.adapters.system.stop_signals import StopLatch
from btkit.adapters.system.systemd import Notifier
from btkit.domain.model import OpenedResult
from btkit.domain.timefmt import format_time
from btkit.drivers.live import LiveSession
from btkit.drivers.loop_watchdog import LoopWatchdog
from btkit.faults import crash_point
from btkit.ports import EventPrinter, StartupInfo
from btkit.settings import Settings
from btkit.wiring.live import LiveSetup, RunOptions, open_live
from btkit.wiring.system import stop_latch, systemd_notifier

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
    latch: StopLatch | None = None,
) -> int:
    """Run until stopped or the replay ends; 0 on a clean end, 1 if a symbol failed.

    `latch` holds stop signals received before the loop ran (the CLI installs it
    first thing); a stop during start-up ends the run before its first tick.
    """
    if latch is None:
        latch = stop_latch()
    notifier = systemd_notifier()
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    control = _StopControl(task, drain, notifier)
    latch.attach(loop, control.on_signal)
    try:
        return await _run(
            settings, symbols, strategy, exchange, printer, options, control, latch.requested
        )
    except asyncio.CancelledError:
        if not control.cancelled_start:
            raise
        task.uncancel()
        printer.finish("stopped during start-up, before the first tick; no signal opened or closed")
        return 0
    finally:
        latch.detach(loop)


async def _run(
    settings: Settings,
    symbols: Sequence[str],
    strategy: str,
    exchange: str,
    printer: EventPrinter,
    options: RunOptions,
    control: _StopControl,
    stop_requested: threading.Event,
) -> int:
    notifier = control.notifier
    log.info(
        "starting %s on %s for %d symbol(s): loading the strategy, markets and saved state",
        strategy,
        exchange,
        len(symbols),
    )
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
        control.running(session)
        session.on_status = lambda changed: notifier.send(f"STATUS={changed.status_line()}")
        notifier.ready(session.status_line())
        opened = closed = redelivered = 0
        watchdog = LoopWatchdog(
            blocked_after=settings.strategy_timeout_seconds,
            describe=lambda: (
                " or ".join(r.in_strategy for r in session.runners if r.in_strategy) or None
            ),
            stop_requested=stop_requested,
        )
        pulse = asyncio.create_task(watchdog.run(), name="btkit-loop-watchdog")
        try:
            async for result in setup.session.events():
                printer.event(result)  # flushed: written to stdout before it counts delivered
                crash_point("event:printed")
                redelivered += result.redelivered
                if isinstance(result, OpenedResult):
                    opened += 1
                else:
                    closed += 1
        finally:
            pulse.cancel()
        notifier.stopping()
        still_open = session.open_signals
        printer.finish(
            f"stopped: {opened} opened, {closed} closed, {still_open} open signal(s) kept "
            "in the state files for the next start"
            + (f"; {redelivered} event(s) redelivered from before a crash" if redelivered else "")
            + (
                f"; failed symbols: {' '.join(session.failed_symbols)}"
                if session.failed_symbols
                else ""
            )
            + (
                ". The replay was already at its end; add --restart to replay it again"
                if setup.already_finished
                else ""
            )
        )
        return 1 if session.failed_symbols else 0


class _StopControl:
    """What a stop signal does: cancel the start-up, or stop (or drain) the session."""

    def __init__(self, task: asyncio.Task[int], drain: bool, notifier: Notifier) -> None:
        self.notifier = notifier
        self.cancelled_start = False
        self._task = task
        self._drain = drain
        self._session: LiveSession | None = None
        self._received: list[str] = []

    def running(self, session: LiveSession) -> None:
        """From here on a signal stops the session after its tick instead."""
        self._session = session

    def on_signal(self, name: str) -> None:
        self._received.append(name)
        self.notifier.stopping()
        session = self._session
        if session is None:
            if not self.cancelled_start:
                log.warning("%s during start-up: stopping before the first tick", name)
                self.cancelled_start = True
                self._task.cancel()
            return
        if len(self._received) == 1 and self._drain:
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
        trade=settings.trade,
        trade_detail=setup.trade_detail,
    )
