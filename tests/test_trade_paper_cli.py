"""Paper trading as a new user meets it: the real CLI in subprocesses on temp projects
(`btkit live --trade paper`, `btkit positions`, `btkit report`), with the wallet file
and the ledger checked against each other after clean stops, SIGKILLs and restarts."""

from __future__ import annotations

import json
import math
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.binance_server import TRADE_KEY, TRADE_SECRET, BinanceServer
from tests.conftest import REPO, Lines, Project, copy_candles, json_events

pytestmark = pytest.mark.system

END = ("--end", "2018-01-20T16:00")
"""Half a day of the project's candles: several paper round trips, a few seconds."""

ONCE_LONG = """
from btkit import Signal, get_average_price, get_candles, strategy

CUTOFF = 1516428000000  # 2018-01-20 06:00 UTC: one signal, then none


@strategy("once-long", interval="5m", warmup_minutes=10)
async def once_long(symbol):
    candles = await get_candles(symbol, "1m", 1)
    if len(candles) == 0 or candles.timestamp[-1] >= CUTOFF:
        return None
    price = await get_average_price(symbol)
    return Signal("long", price, price * 1.5, price * 0.5, 120)
"""
"""One long with far TP/SL that expires after two hours: open after a run that ends
early, closed after the next one."""


def strict_json(line: str) -> dict:
    """JSON as the spec has it: NaN and Infinity are refused, not parsed."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(line, parse_constant=refuse)


def new_project(root: Path) -> Project:
    (root / "strategies").mkdir(parents=True)
    (root / "strategies" / "my_strategy.py").write_text(
        (REPO / "strategies" / "my_strategy.py").read_text()
    )
    (root / "strategies" / "once_long.py").write_text(ONCE_LONG)
    candles = root / "data" / "candles"
    candles.mkdir(parents=True)
    for symbol in ("ETHBTC", "LTCBTC"):
        copy_candles(candles, symbol, rows=1440)
    return Project(root)


@pytest.fixture
def paper(tmp_path: Path) -> Project:
    return new_project(tmp_path / "p")


def wallet(project: Project, strategy: str = "my-strategy", label: str = "replay") -> dict:
    return json.loads((project.root / "data" / "paper" / f"{label}-{strategy}.json").read_text())


def ledger_fills(project: Project, run: str | None = None) -> list[sqlite3.Row]:
    with sqlite3.connect(project.root / "data" / "btkit.sqlite") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM fills ORDER BY id").fetchall()
    return [r for r in rows if run is None or r["run"] == run]


def balances_from(starting: dict[str, float], fills: list[sqlite3.Row]) -> dict[str, float]:
    """The starting balances plus every ledger fill minus its fee (quote fees: replay)."""
    out = dict(starting)
    for f in fills:
        base, quote = f["symbol"][:-3], f["symbol"][-3:]
        cost = f["amount"] * f["price"]
        sign = 1.0 if f["side"] == "buy" else -1.0
        out[base] = out.get(base, 0.0) + sign * f["amount"]
        out[quote] = out.get(quote, 0.0) - sign * cost - f["fee"]
    return out


def assert_wallet_equals_fills(
    project: Project, fills: list[sqlite3.Row], strategy: str = "my-strategy"
) -> None:
    held = wallet(project, strategy)
    expected = balances_from(held["starting"], fills)
    for code in set(expected) | set(held["balances"]):
        assert math.isclose(
            held["balances"].get(code, 0.0), expected.get(code, 0.0), rel_tol=1e-9, abs_tol=1e-12
        ), (code, held["balances"], expected)
    wallet_trades = sorted(
        (t["fill"]["client_id"], t["fill"]["amount"], t["fill"]["price"]) for t in held["trades"]
    )
    ledger_trades = sorted((f["client_id"], f["amount"], f["price"]) for f in fills)
    assert wallet_trades == ledger_trades  # the ledger's fills are the wallet's trades


def assert_one_entry_per_signal(fills: list[sqlite3.Row]) -> None:
    entries: dict[str, list[str]] = {}
    for f in fills:
        if f["client_id"].startswith("btk-e-"):
            entries.setdefault(f["signal_id"], []).append(f["trade_id"])
    assert entries, "no entry was filled"
    assert all(len(trades) == 1 for trades in entries.values()), entries


def open_signal_ids(project: Project) -> set[str]:
    ids = set()
    for path in (project.root / "data" / "signal").glob("*.json"):
        state = json.loads(path.read_text())
        if state.get("signal"):
            ids.add(state["signal"]["id"])
    return ids


def test_a_replay_paper_run_trades_and_its_wallet_equals_the_ledgers_fills(paper):
    done = paper.run("live", "ETHBTC", "LTCBTC", "-s", "my-strategy", "--trade", "paper",
                     "--json", *END)  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [strict_json(line) for line in done.stdout.splitlines() if line.startswith("{")]
    longs = [e for e in events if e["signal"]["position"] == "long"]
    shorts = [e for e in events if e["signal"]["position"] == "short"]
    assert any(e["action"] == "closed" for e in longs)
    assert shorts
    for event in longs:
        trade = event["trade"]
        assert (trade["mode"], trade["status"]) == ("paper", "closed"), trade
        if event["action"] == "opened":
            assert trade["role"] == "entry"
        else:  # the model's close sells at market; a protective leg that filled is its own
            assert trade["role"] in ("exit", event["close_reason"]), (trade, event)
        assert trade["filled"] == pytest.approx(trade["amount"])
        assert trade["fee"] > 0
        if trade["role"] in ("entry", "exit"):  # the result says how it was filled
            assert "paper: replay tick price" in trade["how"]
            assert "slippage" in trade["how"]
        else:
            assert "by the 1m candle of" in trade["how"], trade
        assert trade["client_id"].startswith("btk-")
    for event in (e for e in shorts if e["action"] == "opened"):
        assert event["trade"]["status"] == "skipped"
        assert "not traded" in event["trade"]["how"], event["trade"]
    fills = ledger_fills(paper)
    assert len(fills) >= 2 * sum(1 for e in longs if e["action"] == "closed")
    assert_one_entry_per_signal(fills)
    assert_wallet_equals_fills(paper, fills)
    assert "trade: paper" in done.stderr  # --json: the start-up info goes to the log
    mode = (paper.root / "data" / "paper").stat().st_mode & 0o777
    assert mode == 0o700
    assert all(p.stat().st_mode & 0o077 == 0 for p in (paper.root / "data" / "paper").iterdir())


def test_the_startup_panel_names_the_paper_mode_and_its_detail(paper):
    done = paper.run("live", "ETHBTC", "-s", "my-strategy", "--trade", "paper",
                     "--end", "2018-01-20T06:00")  # fmt: skip
    assert done.returncode == 0, done.stderr
    (line,) = [li for li in done.stdout.splitlines() if li.startswith("trade:")]
    assert "paper" in line
    assert "no real orders" in line
    assert "stake" in line
    assert "paper wallet" in line
    assert "10000 USDT" in line


def test_positions_show_the_open_position_with_its_protection_then_none_once_closed(paper):
    first = paper.run("live", "ETHBTC", "-s", "once-long", "--trade", "paper",
                      "--end", "2018-01-20T06:30")  # fmt: skip
    assert first.returncode == 0, first.stderr
    (signal_id,) = open_signal_ids(paper)
    view = json.loads(paper.run("positions", "--json").stdout)
    (position,) = view["positions"]
    assert position["signal_id"] == signal_id
    assert position["mode"] == "paper"
    assert position["symbol"] == "ETHBTC"
    assert position["amount"] > 0
    roles = {o["role"]: o["status"] for o in position["orders"]}
    assert roles == {"entry": "closed", "take_profit": "open", "stop_loss": "open"}
    table = paper.run("positions")
    assert table.returncode == 0
    assert "ETHBTC" in table.stdout
    assert "TP " in table.stdout
    assert "SL " in table.stdout

    second = paper.run("live", "ETHBTC", "-s", "once-long", "--trade", "paper", "--json",
                       "--end", "2018-01-20T12:00")  # fmt: skip
    assert second.returncode == 0, second.stderr
    (closed,) = [e for e in json_events(second.stdout) if e["action"] == "closed"]
    assert closed["close_reason"] == "time_expired"
    assert closed["trade"]["role"] == "exit"
    assert json.loads(paper.run("positions", "--json").stdout)["positions"] == []
    assert "ETHBTC" not in paper.run("positions").stdout
    assert_wallet_equals_fills(paper, ledger_fills(paper), "once-long")
    held = wallet(paper, "once-long")
    assert not held["resting"]
    assert held["balances"].get("ETH") == pytest.approx(10.0)


def test_the_report_has_the_trades_section(paper):
    done = paper.run("live", "ETHBTC", "-s", "my-strategy", "--trade", "paper", *END)
    assert done.returncode == 0, done.stderr
    text = paper.run("report", "my-strategy")
    assert text.returncode == 0, text.stderr
    assert "Trades (fills)" in text.stdout
    for figure in ("Realised PnL", "Fees paid", "entry gap", "exit gap"):
        assert figure in text.stdout, figure
    as_json = json.loads(paper.run("report", "my-strategy", "--format", "json").stdout)
    assert as_json["trades"], "no trades in the JSON report"


def test_sigkill_mid_run_then_restart_keeps_wallet_and_ledger_consistent(paper):
    args = ("live", "ETHBTC", "LTCBTC", "-s", "my-strategy", "--trade", "paper", "--json",
            "--speed", "60", *END)  # fmt: skip
    with paper.start(*args) as daemon:
        out = Lines(daemon.stdout)
        out.wait_for(lambda line: '"role": "exit"' in line or '"role":"exit"' in line)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(60)
    after = paper.run(*args[:-4], *END)  # the same run, resumed, to its end at full speed
    assert after.returncode == 0, after.stderr
    fills = ledger_fills(paper)
    assert_one_entry_per_signal(fills)
    assert_wallet_equals_fills(paper, fills)
    assert len({f["run"] for f in fills}) == 1  # a resumed run, not a new one


def test_restart_starts_a_new_wallet_and_keeps_the_old_one_aside(paper):
    args = ("live", "ETHBTC", "-s", "my-strategy", "--trade", "paper", *END)
    assert paper.run(*args).returncode == 0
    old = wallet(paper)
    assert old["trades"]
    again = paper.run(*args, "--restart")
    assert again.returncode == 0, again.stderr
    folder = paper.root / "data" / "paper"
    (aside,) = folder.glob("replay-my-strategy.json.restart-*")
    assert json.loads(aside.read_text())["trades"] == old["trades"]
    assert "previous paper wallet kept as" in again.stderr
    new = wallet(paper)
    runs = list(dict.fromkeys(f["run"] for f in ledger_fills(paper)))  # in fill order
    assert len(runs) == 2  # --restart is a new run in the ledger too
    latest = runs[-1]
    assert_wallet_equals_fills(paper, ledger_fills(paper, latest))
    assert new["starting"] == old["starting"]


@pytest.mark.parametrize(
    ("extra", "exchange", "says"),
    [
        ((), "replay", "replay"),
        (("--confirm-live",), "replay", "replay"),
        (("--confirm-live", "--start", "2018-01-20T06:00"), "binance", "--start/--end"),
    ],
)
def test_trade_live_refusals_exit_2_and_say_why(paper, extra, exchange, says):
    keys = {  # never used: each refusal comes before any request
        "BTKIT_CREDENTIALS__BINANCE__API_KEY": "dummy-key-0000",
        "BTKIT_CREDENTIALS__BINANCE__SECRET": "dummy-secret-0000",
    }
    done = paper.run("live", "ETHBTC", "-s", "my-strategy", "-e", exchange, "--trade", "live",
                     *extra, env=keys)  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert says in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not (paper.root / "data" / "paper").exists()


def test_trade_live_without_confirmation_says_what_would_happen_and_prints_no_secret(paper):
    secret = "s3cr3t-value-never-printed"
    env = {
        "BTKIT_CREDENTIALS__BINANCE__API_KEY": "key-value-never-printed",
        "BTKIT_CREDENTIALS__BINANCE__SECRET": secret,
    }
    done = paper.run("live", "ETHBTC", "-s", "my-strategy", "-e", "binance", "--trade", "live",
                     env=env)  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    message = done.stdout + done.stderr
    assert "--confirm-live" in message
    assert "BTKIT_CONFIRM_LIVE" in message
    assert "real" in message.lower()
    assert secret not in message
    assert "key-value-never-printed" not in message


def test_a_paper_run_on_the_binance_stand_in_fills_at_the_tick_price(paper):
    from btkit.adapters.store.candle_csv import read_candle_csv

    files = {"ETHBTC": read_candle_csv(REPO / "data" / "candles" / "ETHBTC-1m.csv")}
    env = {
        "BTKIT_EXCHANGE_RATE_LIMIT_MS": "1",
        "BTKIT_EXCHANGE_TIMEOUT_SECONDS": "5",
        "BTKIT_RETRY_BASE_SECONDS": "0.05",
    }
    keys = {  # paper with keys set: they are checked, never used for orders, never shown
        "BTKIT_CREDENTIALS__BINANCE__API_KEY": TRADE_KEY,
        "BTKIT_CREDENTIALS__BINANCE__SECRET": TRADE_SECRET,
    }
    with BinanceServer(files) as server:
        done = paper.run("live", "ETHBTC", "-s", "my-strategy", "-e", "binance", "--trade",
                         "paper", "--json", "--start", "2018-01-20T06:00", *END,
                         env={**env, **keys, "BTKIT_EXCHANGE_URL": server.url})  # fmt: skip
        assert not server.engine.orders  # paper: the exchange's account is never touched
    assert done.returncode == 0, done.stderr
    events = [strict_json(line) for line in done.stdout.splitlines() if line.startswith("{")]
    longs = [e for e in events if e["signal"]["position"] == "long"]
    assert longs
    assert all(e["trade"]["status"] == "closed" for e in longs), [e["trade"] for e in longs]
    assert all("tick price" in e["trade"]["how"] for e in longs)
    files = [p.read_bytes() for p in paper.root.rglob("*") if p.is_file()]
    for content in [(done.stdout + done.stderr).encode(), *files]:
        assert TRADE_SECRET.encode() not in content
        assert TRADE_KEY.encode() not in content
    held = json.loads((paper.root / "data" / "paper" / "binance-sim-my-strategy.json").read_text())
    expected = balances_from(held["starting"], ledger_fills(paper))
    for code, amount in expected.items():
        assert held["balances"].get(code, 0.0) == pytest.approx(amount, rel=1e-9, abs=1e-12)


def test_paper_balances_that_are_not_json_are_a_clear_error(paper):
    done = paper.run("live", "ETHBTC", "-s", "my-strategy", "--trade", "paper",
                     env={"BTKIT_PAPER_BALANCES": '{"USDT": 100'})  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "paper_balances" in done.stderr
    assert "takes JSON" in done.stderr
    assert "bug" not in done.stderr
    assert not (paper.root / "data" / "paper").exists()


def test_trade_off_on_a_paper_position_warns_and_the_halt_that_follows_says_what_to_do(paper):
    first = paper.run("live", "ETHBTC", "-s", "once-long", "--trade", "paper",
                      "--end", "2018-01-20T06:30")  # fmt: skip
    assert first.returncode == 0, first.stderr
    (signal_id,) = open_signal_ids(paper)
    off = paper.run("live", "ETHBTC", "-s", "once-long", "--end", "2018-01-20T12:00")
    assert off.returncode == 0, off.stderr
    assert f"the open signal {signal_id[:8]} holds a paper position" in off.stderr
    assert "--trade paper" in off.stderr
    again = paper.run("live", "ETHBTC", "-s", "once-long", "--trade", "paper",
                      "--end", "2018-01-20T13:00")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "TRADING HALTED" in again.stderr
    assert "--restart" in again.stderr
    fresh = paper.run("live", "ETHBTC", "-s", "once-long", "--trade", "paper", "--restart",
                      "--end", "2018-01-20T06:30")  # fmt: skip
    assert fresh.returncode == 0, fresh.stderr
    assert "TRADING HALTED" not in fresh.stderr
    assert "holds a paper position" not in fresh.stderr


@pytest.mark.parametrize(
    "point",
    [
        "order:entry-intent",
        "order:entry-sent",
        "order:protect-intent",
        "order:protected",
        "order:protect-cancelled",
        "order:exit-sent",
        "open:ledger-written",
        "close:ledger-written",
    ],
)
def test_a_kill_at_each_step_of_the_paper_order_flow_loses_and_duplicates_nothing(paper, point):
    args = ("live", "ETHBTC", "LTCBTC", "-s", "my-strategy", "--trade", "paper", "--json",
            "--end", "2018-01-20T12:00")  # fmt: skip
    killed = paper.run(*args, env={"BTKIT_FAULT_KILL_AT": f"{point}:2"})
    assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
    after = paper.run(*args)
    assert after.returncode == 0, after.stderr
    assert "TRADING HALTED" not in after.stderr  # the restart explained everything
    fills = ledger_fills(paper)
    assert_one_entry_per_signal(fills)
    assert_wallet_equals_fills(paper, fills)
    for position in json.loads(paper.run("positions", "--json").stdout)["positions"]:
        assert position["signal_id"] in open_signal_ids(paper)  # nothing orphaned
        resting = {o["role"] for o in position["orders"] if o["status"] == "open"}
        assert resting == {"take_profit", "stop_loss"}, position  # and it is protected
