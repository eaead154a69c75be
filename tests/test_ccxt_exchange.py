"""The real ccxt client and the real CLI against a local Binance-speaking server."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from btkit.adapters.store.candle_csv import read_candle_csv
from tests.binance_server import GOOD_KEY, BinanceServer
from tests.conftest import ALWAYS_LONG, REPO, Lines, json_events

WINDOW = ("--start", "2018-01-20T06:00", "--end", "2018-01-20T14:00")


@pytest.fixture
def binance():
    files = {
        s: read_candle_csv(REPO / "data" / "candles" / f"{s}-1m.csv") for s in ("ETHBTC", "LTCBTC")
    }
    with BinanceServer(files) as server:
        yield server


def exchange_env(server, **extra):
    return {
        "BTKIT_EXCHANGE_URL": server.url,
        "BTKIT_EXCHANGE_RATE_LIMIT_MS": "1",
        # Generous: a loaded CI machine must never turn a normal answer into a timeout.
        "BTKIT_EXCHANGE_TIMEOUT_SECONDS": "5",
        "BTKIT_RETRY_BASE_SECONDS": "0.05",
        **extra,
    }


def closes(stdout):
    return [
        (
            e["symbol"],
            e["signal"]["timestamp"],
            e["close_timestamp"],
            e["close_reason"],
            round(e["pnl"]["pnl_percentage"], 9),
        )
        for e in json_events(stdout)
        if e["action"] == "closed"
    ]


def run_both(project, server, symbol="ETHBTC", strategy="always-long", env=None):
    shutil.copy(REPO / "data" / "candles" / f"{symbol}-1m.csv", project.root / "data" / "candles")
    project.write_strategy("always_long.py", ALWAYS_LONG)
    args = ("live", symbol, "-s", strategy, "--json", *WINDOW)
    replay = project.run(*args, "-e", "replay", "--data-dir", project.clone_data("replay-data"))
    live = project.run(*args, "-e", "binance", env=exchange_env(server, **(env or {})))
    assert replay.returncode == 0, replay.stderr
    assert live.returncode == 0, live.stderr
    return replay, live


def test_a_live_run_against_the_exchange_matches_replay(project, binance):
    replay, live = run_both(project, binance)
    assert len(closes(replay.stdout)) >= 3
    assert closes(live.stdout) == closes(replay.stdout)
    assert "exchange: binance-sim" in live.stderr  # --json: start-up info goes to the log
    assert (project.signal_dir / "binance-sim-always-long-ETHBTC.json").exists()


def test_every_injected_fault_is_retried_and_the_events_stay_right(project, binance):
    binance.faults.slow_seconds = 30  # far past the client's timeout, whatever the load
    binance.inject("429", "ok", "ok", "500", "ok", "malformed", "503", "ok", "slow", "418")
    replay, live = run_both(project, binance)
    assert closes(live.stdout) == closes(replay.stdout)
    log = live.stderr
    for trace in (
        "rate limit",
        "OperationFailed",
        "BadResponse",
        "ExchangeNotAvailable",
        "RequestTimeout",
    ):
        assert trace in log, trace
    assert "retry 1 in 1.00 s" in log  # Retry-After: 1 honoured; simulated: no retry cap


def test_missing_candles_are_reported_not_invented(project, binance):
    gap = {1516435200000 + n * 60_000 for n in range(3)}  # 08:00-08:02
    binance.faults.missing = gap
    csv = project.root / "data" / "candles" / "ETHBTC-1m.csv"
    shutil.copy(REPO / "data" / "candles" / "ETHBTC-1m.csv", csv)
    lines = csv.read_text().splitlines(keepends=True)
    project.clone_data("replay-data")
    gapped = project.root / "replay-data" / "candles" / "ETHBTC-1m.csv"
    gapped.write_text(
        "".join(line for line in lines if not any(line.startswith(str(t)) for t in gap))
    )
    project.write_strategy("always_long.py", ALWAYS_LONG)
    args = ("live", "ETHBTC", "-s", "always-long", "--json", *WINDOW)
    replay = project.run(*args, "-e", "replay", "--data-dir", "replay-data")
    live = project.run(*args, "-e", "binance", env=exchange_env(binance))
    assert closes(live.stdout) == closes(replay.stdout)
    assert "3 candle(s) missing after 1516435140000" in live.stderr


def test_an_outage_longer_than_the_budget_exits_nonzero_with_state_intact(project, binance):
    project.write_strategy("always_long.py", ALWAYS_LONG)
    # A simulated run retries the same minute until the budget (3 s here) is spent.
    env = exchange_env(binance, BTKIT_OUTAGE_BUDGET_MINUTES="0.05", BTKIT_RETRY_MAX="1")
    with project.start(
        "live",
        "ETHBTC",
        "-s",
        "always-long",
        "-e",
        "binance",
        "--json",
        "--speed",
        "30",
        *WINDOW,
        env=env,
    ) as daemon:
        opened = json.loads(daemon.stdout.readline())
        assert opened["action"] == "opened"
        binance.faults.outage = True
        assert daemon.wait(timeout=60) == 1
        stderr = daemon.stderr.read()
    assert "longer than the outage budget" in stderr
    assert "skipped" not in stderr  # no minute of the simulated run was given up
    state = json.loads((project.signal_dir / "binance-sim-always-long-ETHBTC.json").read_text())
    assert state["signal"]["id"] == opened["signal"]["id"]


def test_unknown_symbol_lists_close_matches_and_unified_symbols_work(project, binance):
    unknown = project.run(
        "live", "ETHBTX", "-s", "my-strategy", "-e", "binance", *WINDOW, env=exchange_env(binance)
    )
    assert unknown.returncode == 2
    assert "binance has no market 'ETHBTX'. Close matches: ETHBTC" in unknown.stderr
    unified = project.run(
        "live", "ETH/BTC", "-s", "my-strategy", "-e", "binance", *WINDOW, env=exchange_env(binance)
    )
    assert unified.returncode == 0, unified.stderr
    assert (project.signal_dir / "binance-sim-my-strategy-ETHBTC.json").exists()


def test_bad_credentials_are_a_clear_error(project, binance):
    env = exchange_env(
        binance,
        BTKIT_CREDENTIALS__BINANCE__API_KEY="wrong-key",
        BTKIT_CREDENTIALS__BINANCE__SECRET="wrong-secret",
    )
    done = project.run("live", "ETHBTC", "-s", "my-strategy", "-e", "binance", *WINDOW, env=env)
    assert done.returncode == 2
    assert "binance refused the API credentials" in done.stderr
    assert "wrong-secret" not in done.stderr + done.stdout


def test_an_error_body_echoing_the_api_key_is_redacted(project, binance):
    binance.faults.echo_headers = True
    key = "leaky-api-key-0123456789"
    env = exchange_env(
        binance,
        BTKIT_CREDENTIALS__BINANCE__API_KEY=key,
        BTKIT_CREDENTIALS__BINANCE__SECRET="leaky-secret-0123456789",
        # The refusal comes as HTTP 400, which ccxt calls ExchangeNotAvailable (transient):
        # a short budget ends the retries, and the final error line must still be redacted.
        BTKIT_OUTAGE_BUDGET_MINUTES="0.1",
    )
    for level in ("INFO", "DEBUG"):
        done = project.run(
            "live",
            "ETHBTC",
            "-s",
            "my-strategy",
            "-e",
            "binance",
            "--log-level",
            level,
            *WINDOW,
            env=env,
        )
        assert done.returncode != 0
        no_traceback = "Traceback" not in done.stderr
        assert no_traceback
        assert "error: " in done.stderr.splitlines()[-1]
        assert "proxy: request refused" in done.stderr
        assert "X-MBX-APIKEY" in done.stderr  # the echoed headers are shown ...
        assert key not in done.stdout + done.stderr  # ... with the key redacted
        assert "***" in done.stderr


def test_secrets_never_reach_output_or_files(project, binance):
    secret = "s3cret-value-that-must-not-leak"
    env = exchange_env(
        binance,
        BTKIT_CREDENTIALS__BINANCE__API_KEY=GOOD_KEY,
        BTKIT_CREDENTIALS__BINANCE__SECRET=secret,
        BTKIT_LOG_LEVEL="DEBUG",
    )
    done = project.run(
        "live",
        "ETHBTC",
        "-s",
        "my-strategy",
        "-e",
        "binance",
        "--json",
        "--log-level",
        "DEBUG",
        *WINDOW,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert project.run("report", "my-strategy", env=env).returncode == 0
    assert secret not in done.stdout + done.stderr
    for path in Path(project.root).rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert secret.encode() not in content, path
            assert GOOD_KEY.encode() not in content, path


def test_sigterm_during_retries_still_stops_cleanly(project, binance):
    binance.faults.outage = True
    env = exchange_env(binance, BTKIT_RETRY_BASE_SECONDS="5", BTKIT_RETRY_MAX="3")
    with project.start(
        "live", "ETHBTC", "-s", "my-strategy", "-e", "binance", *WINDOW, env=env
    ) as daemon:
        stderr = Lines(daemon.stderr)
        stderr.wait_for(lambda line: "; retry 1" in line)  # a backoff wait of 5 s
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
    assert code == 0, stderr.text()


def _strict_json(line: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"bare {constant} in --json output: {line}")

    return json.loads(line, parse_constant=refuse)


def test_nan_and_null_prices_are_dropped_at_the_edge_and_never_reach_the_engine(project, binance):
    six = 1516428000000  # 2018-01-20T06:00Z, the window's start
    poisoned = {six + n * 60_000 for n in range(3, 480, 7)}
    binance.faults.raw = {t: {4: "NaN"} for t in poisoned}  # close: Binance's "NaN" string
    nulls = {six + n * 60_000 for n in range(5, 480, 11)} - poisoned
    binance.faults.raw |= {t: {2: None, 3: None} for t in nulls}  # high, low: JSON null
    csv = project.root / "data" / "candles" / "ETHBTC-1m.csv"
    shutil.copy(REPO / "data" / "candles" / "ETHBTC-1m.csv", csv)
    project.clone_data("replay-data")
    gapped = project.root / "replay-data" / "candles" / "ETHBTC-1m.csv"
    dropped = poisoned | nulls
    gapped.write_text(
        "".join(
            line
            for line in csv.read_text().splitlines(keepends=True)
            if not line[:1].isdigit() or int(line.split(",")[0]) not in dropped
        )
    )
    project.write_strategy("always_long.py", ALWAYS_LONG)
    args = ("live", "ETHBTC", "-s", "always-long", "--json", *WINDOW)
    replay = project.run(*args, "-e", "replay", "--data-dir", "replay-data")
    live = project.run(*args, "-e", "binance", env=exchange_env(binance))
    assert replay.returncode == 0, replay.stderr
    assert live.returncode == 0, live.stderr
    events = [_strict_json(line) for line in live.stdout.splitlines() if line.startswith("{")]
    assert len(closes(live.stdout)) >= 3
    assert closes(live.stdout) == closes(replay.stdout)  # as if the bad minutes were gaps
    assert all(e["current_price"] == e["current_price"] for e in events)  # no NaN anywhere
    assert f"{six + 3 * 60_000} (a price is not a finite number)" in live.stderr
    assert live.stderr.count(f"{six + 3 * 60_000} (") == 1  # logged once, not every tick
    report = project.run("report", "always-long", "--format", "json")
    assert report.returncode == 0, report.stderr
    _strict_json(report.stdout)
