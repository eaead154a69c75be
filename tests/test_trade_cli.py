"""What users see of trading: `btkit live --trade/--stake/--confirm-live`, the start-up
panel's trade row, and the trade details on each event (plain, Rich and --json)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from btkit.cli.console import JsonPrinter, PlainPrinter, RichPrinter
from btkit.domain.model import ClosedResult, OpenedResult, OpenSignal, Pnl
from btkit.domain.orders import TradeReport
from btkit.ports import StartupInfo

SIGNAL = OpenSignal(
    "sig-1234567", "long", 100.0, 110.0, 95.0, 60, "BTCUSDT", "s", "binance", 60_000
)
ENTRY = TradeReport("paper", "entry", "btk-e-1", "closed", 0.012, 0.012, 101.2, 0.0012, 100.0)


def opened(trade: TradeReport | None = ENTRY) -> OpenedResult:
    return OpenedResult(
        strategy_name="s",
        exchange_name="binance",
        symbol="BTCUSDT",
        timestamp=60_000,
        current_price=100.0,
        signal=SIGNAL,
        seq=1,
        trade=trade,
    )


def closed(trade: TradeReport | None) -> ClosedResult:
    return ClosedResult(
        strategy_name="s",
        exchange_name="binance",
        symbol="BTCUSDT",
        timestamp=120_000,
        current_price=110.0,
        signal=SIGNAL,
        close_reason="take_profit",
        close_timestamp=120_000,
        pnl=Pnl(9.7, 100.0, 110.0),
        seq=2,
        trade=trade,
    )


def info(trade: str, detail: str = "") -> StartupInfo:
    return StartupInfo(
        "s", "s.py", "5m", "binance", ["BTCUSDT"], {}, trade=trade, trade_detail=detail
    )  # type: ignore[arg-type]


def test_plain_lines_end_with_what_trading_did():
    out = io.StringIO()
    printer = PlainPrinter(out)
    printer.event(opened())
    skipped = TradeReport("paper", "entry", "c", "skipped", how="spot: shorts are not traded")
    printer.event(opened(skipped))
    printer.event(closed(TradeReport("live", "exit", "c", "rejected", 1.0, how="LOT_SIZE")))
    printer.event(closed(None))
    how = "paper: replay tick price + 0.1 % slippage"
    printer.event(
        opened(TradeReport("paper", "entry", "c", "open", 2.0, 1.0, 100.1, 0.1, 100.0, how))
    )
    first, second, third, fourth, fifth = out.getvalue().splitlines()
    assert first.endswith("id sig-1234  paper: filled 0.012 @ 101.2, fee 0.0012, gap +1.200%")
    assert second.endswith("paper: trade skipped: spot: shorts are not traded")
    assert third.endswith("live: order rejected: LOT_SIZE")
    assert fourth.endswith("id sig-1234")  # --trade off: the line as it always was
    assert fifth.endswith(
        "paper: partly filled 1 @ 100.1, fee 0.1 of 2, gap +0.100% "
        "(paper: replay tick price + 0.1 % slippage)"
    )


def test_json_events_carry_the_trade_object_as_valid_json():
    out = io.StringIO()
    JsonPrinter(out).event(opened())
    JsonPrinter(out).event(closed(None))
    with_trade, without = (json.loads(line) for line in out.getvalue().splitlines())
    assert with_trade["trade"] == {
        "mode": "paper",
        "role": "entry",
        "client_id": "btk-e-1",
        "status": "closed",
        "amount": 0.012,
        "filled": 0.012,
        "average": 101.2,
        "fee": 0.0012,
        "model_price": 100.0,
        "how": "",
        "gap_percent": pytest.approx(1.2),
    }
    assert without["trade"] is None


def test_the_panel_shows_live_trading_in_red_and_paper_in_yellow():
    def panel(startup: StartupInfo) -> str:
        out = io.StringIO()
        RichPrinter(Console(file=out, force_terminal=True, width=120, highlight=False)).startup(
            startup
        )
        return out.getvalue()

    live = panel(info("live", "USDT free 1523.4, stake 100 USDT"))
    assert "REAL ORDERS" in live
    assert "\x1b[1;31m" in live  # bold red
    assert "USDT free 1523.4, stake 100 USDT" in live
    paper = panel(info("paper"))
    assert "paper: simulated wallet" in paper
    assert "\x1b[33m" in paper  # yellow
    assert "trade" not in panel(info("off"))  # off: the panel as it always was
    plain = io.StringIO()
    PlainPrinter(plain).startup(info("live"))
    assert "trade: live: REAL ORDERS with real money" in plain.getvalue()


def test_a_rich_line_shows_the_fill_and_keeps_the_pnl_colour():
    out = io.StringIO()
    report = TradeReport("paper", "exit", "c", "closed", 0.012, 0.012, 109.0, 0.0013, 110.0)
    RichPrinter(Console(file=out, force_terminal=True, width=200, highlight=False)).event(
        closed(report)
    )
    text = out.getvalue()
    assert "paper: filled 0.012 @ 109, fee 0.0013, gap -0.909%" in text
    assert "\x1b[32mpnl +9.700%" in text  # green PnL, not the trade text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--trade", "bogus"), "--trade must be off (announce signals only), paper"),
        (("--stake", "0"), "--stake must be a positive quote amount"),
        (("--stake", "-5"), "--stake must be a positive quote amount"),
    ],
)
def test_bad_trade_options_exit_2_with_a_clear_message(cli, args, message):
    done = cli.run("live", "ETHBTC", "-s", "my-strategy", *args)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.split())


def test_bad_trade_settings_from_the_environment_exit_2(cli):
    done = cli.run("live", "ETHBTC", "-s", "my-strategy", env={"BTKIT_TRADE": "yes"})
    assert done.returncode == 2
    assert "trade" in done.stderr
    assert "'off', 'paper' or 'live'" in done.stderr


def test_the_options_reach_the_settings(cli, monkeypatch):
    seen = {}

    async def fake_daemon(settings, *args, **kwargs) -> int:
        seen.update(trade=settings.trade, stake=settings.stake, confirm=settings.confirm_live)
        return 0

    monkeypatch.setattr("btkit.app.daemon.run_daemon", fake_daemon)
    args = ("live", "ETHBTC", "-s", "my-strategy")
    assert cli.run(*args, "--trade", "paper", "--stake", "100").returncode == 0
    assert seen == {"trade": "paper", "stake": 100.0, "confirm": False}
    assert cli.run(*args, "--trade", "live", "--confirm-live").returncode == 0
    assert seen == {"trade": "live", "stake": None, "confirm": True}
    env = {"BTKIT_TRADE": "paper", "BTKIT_STAKE": "25", "BTKIT_CONFIRM_LIVE": "1"}
    assert cli.run(*args, env=env).returncode == 0
    assert seen == {"trade": "paper", "stake": 25.0, "confirm": True}
    assert cli.run(*args).returncode == 0
    assert seen == {"trade": "off", "stake": None, "confirm": False}


def test_help_says_orders_are_placed_only_when_asked(cli):
    root = " ".join(cli.run("--help").stdout.split())
    assert "places no orders" not in root
    assert "places orders only with `btkit live --trade paper|live`" in root
    live = " ".join(cli.run("live", "--help").stdout.split())
    assert "--trade off|paper|live" in live
    assert "--confirm-live" in live
    assert "BTKIT_CONFIRM_LIVE=1" in live
