"""The command line as a user meets it: help, arguments, settings, errors, pipes, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from btkit.settings import Settings
from tests.conftest import ALWAYS_LONG, json_events, wait_for_paths
from tests.test_disk import read_only, run_limited


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr + done.stdout
    assert "Error:" not in done.stderr.replace("error:", "")


def test_bad_log_level_is_a_clear_error(cli, project):
    done = cli.run("live", "ETHBTC", "-s", "my-strategy", "--log-level", "LOUD")
    assert done.returncode == 2
    assert "--log-level must be one of DEBUG, INFO, WARNING, ERROR, not 'LOUD'" in done.stderr
    no_traceback(done)
    env = cli.run("backtest", "ETHBTC", "-s", "my-strategy", env={"BTKIT_LOG_LEVEL": "loud"})
    assert env.returncode == 2
    assert "log_level" in env.stderr
    no_traceback(env)


def test_a_read_only_data_folder_in_backtest_is_refused_before_the_work(project):
    args = ("backtest", "ETHBTC", "-s", "my-strategy")
    with read_only(project.root / "data") as how:
        done = run_limited(project, args, 0) if how == "fsize" else project.run(*args)
    assert done.returncode == 1
    assert "Cannot write to data" in done.stderr
    assert "Backtest summary" not in done.stdout
    no_traceback(done)


SLOW = """
import pathlib, time
from btkit import strategy

@strategy("slow", interval="1m", warmup_minutes=10)
async def slow(symbol):
    pathlib.Path(f"started-{symbol}").touch()
    time.sleep(0.002)
"""


def test_ctrl_c_during_a_backtest_exits_130_with_a_message(project):
    project.write_strategy("slow.py", SLOW)
    for symbols in (["ETHBTC"], ["ETHBTC", "LTCBTC"]):  # in process, and in worker processes
        for marker in project.root.glob("started-*"):
            marker.unlink()
        with subprocess.Popen(
            project.command("backtest", *symbols, "-s", "slow"),
            cwd=project.root,
            env=project.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as process:
            wait_for_paths(process, *(project.root / f"started-{s}" for s in symbols))
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
            out, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "interrupted: backtest stopped; nothing was recorded" in err
        assert "Traceback" not in err + out
        assert "KeyboardInterrupt" not in err
    assert not (project.root / "logs" / "backtest" / "slow.md").exists()


def test_a_closed_stdout_pipe_ends_quietly(project):
    project.write_strategy("always_long.py", ALWAYS_LONG)
    for args in (
        ("live", "ETHBTC", "-s", "always-long", "--json"),
        ("backtest", "ETHBTC", "LTCBTC", "-s", "always-long", "--json"),
        ("report", "always-long"),
    ):
        with subprocess.Popen(
            project.command(*args),
            cwd=project.root,
            env=project.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            assert process.stdout.readline()  # like `| head -1`
            process.stdout.close()
            err = process.stderr.read()
            process.wait(timeout=60)
        assert "Traceback" not in err, args
        assert "BrokenPipeError" not in err, args
        assert "never retrieved" not in err, args


def test_unknown_btkit_variables_are_an_error_with_a_close_match(cli, project):
    done = cli.run("live", "ETHBTC", "-s", "my-strategy", env={"BTKIT_FEE_PERCNT": "0.2"})
    assert done.returncode == 2
    assert "Unknown setting BTKIT_FEE_PERCNT (did you mean BTKIT_FEE_PERCENT?)" in done.stderr
    (project.root / ".env").write_text("BTKIT_DATA_DRI=elsewhere\n")
    dotenv = cli.run("status")
    assert dotenv.returncode == 2
    assert "BTKIT_DATA_DRI (in .env, did you mean BTKIT_DATA_DIR?)" in dotenv.stderr
    (project.root / ".env").write_text(
        "BTKIT_FEE_PERCENT=0.2\nBTKIT_CREDENTIALS__BINANCE__API_KEY=k\n"
        "BTKIT_CREDENTIALS__BINANCE__SECRET=s\nOTHER_TOOL=1\n"
    )
    assert cli.run("status").returncode == 0


def test_boolean_flags_take_no_value(cli, project):
    done = cli.run("live", "ETHBTC", "-s", "my-strategy", "--json", "true")
    assert done.returncode == 2
    assert "write `--json`, not `--json true`" in done.stderr
    help_text = cli.run("live", "-h").stdout
    assert "--json " in help_text
    assert "<bool>" not in help_text


def test_help_short_option_version_examples_and_dates(cli, project):
    for command in ("live", "backtest", "download", "service", "report", "status", "list"):
        done = cli.run(command, "-h")
        assert done.returncode == 0, command
        assert "Examples:" in done.stdout, command
        assert f"btkit {command}" in done.stdout, command
        assert "Dates are UTC: 2018-01-21, 2018-01-21T10:00" in done.stdout, command
    version = cli.run("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("btkit 0.")
    top = cli.run("-h").stdout
    assert "--install-completion" in top
    assert "places orders only with `btkit live --trade paper|live`" in " ".join(top.split())


def test_defaults_are_the_same_across_commands(cli, project):
    for command in ("live", "backtest", "service"):
        assert "[default: replay]" in cli.run(command, "-h").stdout, command


def test_service_checks_its_arguments_like_live(cli, project):
    unknown = cli.run("service", "ETHBTC", "-s", "nope", "-e", "binance", "--write", "x.service")
    assert unknown.returncode == 2
    assert "Strategy 'nope' not found" in unknown.stderr
    assert "No unit was written" in unknown.stderr
    assert not (project.root / "x.service").exists()
    assert unknown.stdout == ""
    exchange = cli.run("service", "ETHBTC", "-s", "my-strategy", "-e", "binanse")
    assert exchange.returncode == 2
    assert "Unknown exchange 'binanse'" in exchange.stderr
    replay = cli.run("service", "BTCUSDT", "-s", "my-strategy")
    assert replay.returncode == 2
    assert "btkit download BTCUSDT" in replay.stderr
    bad_path = cli.run("service", "ETHBTC", "-s", "my-strategy", "--write", "no/such/dir/x.service")
    assert bad_path.returncode == 2
    assert "cannot write the unit to no/such/dir/x.service" in bad_path.stderr
    no_traceback(bad_path)


def test_init_sets_up_an_empty_folder_that_runs(project, tmp_path):
    folder = tmp_path / "fresh"
    done = project.run("init", str(folder))
    assert done.returncode == 0, done.stderr
    assert "btkit download BTCUSDT --exchange binance" in done.stdout
    for sub in ("strategies", "data/candles", "logs"):
        assert (folder / sub).is_dir()
    env_text = (folder / ".env").read_text()
    for name in Settings.model_fields:
        if name != "credentials":
            assert f"# BTKIT_{name.upper()}=" in env_text
    assert "# BTKIT_CREDENTIALS__BINANCE__API_KEY=" in env_text
    assert all(not line or line.startswith("#") for line in env_text.splitlines())
    # The example strategy runs once candles are there; a second init keeps every file.
    (folder / "strategies" / "my_strategy.py").write_text(
        (folder / "strategies" / "my_strategy.py").read_text() + "# mine\n"
    )
    again = project.run("init", str(folder))
    assert again.returncode == 0
    assert "kept as they were" in again.stdout
    assert (folder / "strategies" / "my_strategy.py").read_text().endswith("# mine\n")
    for csv in (project.root / "data" / "candles").glob("*.csv"):
        (folder / "data" / "candles" / csv.name).write_bytes(csv.read_bytes())
    live = subprocess.run(
        project.command("live", "ETHBTC", "-s", "my-strategy", "--json"),
        cwd=folder,
        env=project.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert live.returncode == 0, live.stderr
    assert json_events(live.stdout)


def test_the_packaged_example_strategy_is_the_shipped_one():
    from importlib.resources import files

    from tests.conftest import REPO

    packaged = files("btkit").joinpath("templates/my_strategy.py.tmpl").read_text()
    assert packaged == (REPO / "strategies" / "my_strategy.py").read_text()


def test_list_shows_strategies_broken_files_and_candle_files(project):
    project.write_strategy("broken.py", "oops(\n")
    done = project.run("list")
    assert done.returncode == 0, done.stderr
    assert "my-strategy" in done.stdout
    assert "5m" in done.stdout
    assert "broken.py:1 failed to import" in done.stdout
    assert "ETHBTC" in done.stdout
    assert "LTCBTC" in done.stdout
    assert "2018-01-20 04:53 UTC" in done.stdout


def test_new_strategy_and_missing_candles_hint_at_download(cli, project):
    made = cli.run("new-strategy", "my-breakout")
    assert "btkit download" in made.stdout
    missing = cli.run("backtest", "BTCUSDT", "-s", "my-strategy")
    assert missing.returncode == 2
    assert "btkit download BTCUSDT --exchange binance" in missing.stderr
    live = cli.run("live", "BTCUSDT", "-s", "my-strategy")
    assert live.returncode == 2
    assert "btkit download BTCUSDT --exchange binance" in live.stderr


def test_an_unexpected_error_is_one_line_and_its_traceback_is_kept_redacted(
    tmp_path, monkeypatch, capsys
):
    import stat
    import sys

    import pytest

    from btkit.cli import main as cli
    from btkit.cli import report_command

    secret = "crash-secret-0123456789"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BTKIT_CREDENTIALS__BINANCE__API_KEY", secret)
    monkeypatch.setenv("BTKIT_CREDENTIALS__BINANCE__SECRET", "other-secret-0123456789")

    def broken(settings, console):
        raise RuntimeError(f"a bug that holds {secret}")

    monkeypatch.setattr(report_command, "run_status", broken)
    monkeypatch.setattr(sys, "argv", ["btkit", "status"])
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
    finally:
        cli._secrets.clear()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "error: unexpected internal error: RuntimeError: a bug that holds ***" in err
    assert "Traceback" not in err
    assert secret not in err
    crash = Path(err.split("the traceback is in ")[1].split(";")[0])
    try:
        assert stat.S_IMODE(crash.stat().st_mode) == 0o600
        text = crash.read_text()
        assert "Traceback" in text
        assert "a bug that holds ***" in text
        assert secret not in text
    finally:
        crash.unlink()


def test_the_readme_sample_output_is_the_real_output(project):
    from tests.conftest import REPO, copy_candles

    readme = (REPO / "README.md").read_text()
    block = readme.split("The\ndemo above, piped (`| cat`), prints:\n\n```\n")[1].split("```")[0]
    expected = block.splitlines()
    for symbol in ("ETHBTC", "LTCBTC"):
        copy_candles(project.root / "data" / "candles", symbol, rows=None)  # the whole demo
    done = project.run("live", "ETHBTC", "LTCBTC", "--strategy", "my-strategy")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    head = expected[: expected.index("...")]
    assert lines[: len(head)] == head
    assert lines[-1] == expected[-1]
