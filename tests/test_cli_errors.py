"""Every command's bad inputs, in process: exit 2 (1 where the disk is at fault) and one
`error:` line that says what to do, never a traceback. Processes add nothing here; the
subprocess tests in test_cli*.py cover what needs one (signals, pipes, start-up)."""

from __future__ import annotations

from subprocess import CompletedProcess

import pytest

from btkit.cli import download_command
from tests.conftest import InProcess, Project

Result = CompletedProcess[str]


def error_line(result: Result, code: int = 2) -> str:
    """The one `error:` line of a refused command (and nothing else went wrong)."""
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output  # and no exception escaped: InProcess raises it
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def usage_error(result: Result, command: str) -> str:
    """Click's usage errors: exit 2, the problem, and how to get help."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert f"Try 'btkit {command}-h' for help." in result.stderr
    return result.stderr.split("Error: ")[1].strip()


def test_the_top_level_refuses_unknown_commands_and_options(cli: InProcess):
    assert usage_error(cli.run("nosuch"), "") == "No such command 'nosuch'."
    assert usage_error(cli.run("--bogus"), "") == "No such option: --bogus"
    bare = cli.run()
    assert bare.returncode == 2  # no command: the help, as a usage error
    assert "live" in bare.stdout + bare.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--start", "2018-13-45"], "'2018-13-45' is not a date; use YYYY-MM-DD"),
        (["--end", "tomorrow"], "'tomorrow' is not a date"),
        (["--start", "2018-01-21", "--end", "2018-01-20"], "--start 2018-01-21 is after --end"),
        (["--speed", "0"], "--speed must be a positive number"),
        (["--speed", "fast"], "or 'max', not 'fast'"),
        (["--speed", "nan"], "--speed must be a positive number"),
        (["-e", "binance", "--end", "2018-01-20"], "--end and --restart need simulated time"),
        (["-e", "binance", "--restart"], "--end and --restart need simulated time"),
        (["--log-level", "chatty"], "--log-level must be one of DEBUG, INFO"),
        (["--strategies-dir", "nowhere"], "Strategies folder nowhere does not exist. Create one"),
    ],
)
def test_live_refuses_bad_options(cli: InProcess, args: list[str], says: str):
    assert says in error_line(cli.run("live", "ETHBTC", "-s", "my-strategy", *args))


def test_live_refuses_bad_symbols_and_names(cli: InProcess, project: Project):
    twice = error_line(cli.run("live", "ETHBTC", "ETHBTC", "-s", "my-strategy"))
    assert "A symbol is given twice: ETHBTC ETHBTC" in twice
    assert "Did you mean my-strategy" in error_line(cli.run("live", "ETHBTC", "-s", "mystrategy"))
    assert "'yes' is not a symbol. Options such as --json, --restart and --drain are flags" in (
        error_line(cli.run("live", "ETHBTC", "-s", "my-strategy", "--drain", "yes"))
    )
    assert "Missing option '--strategy'" in usage_error(cli.run("live", "ETHBTC"), "live ")
    assert "Missing argument 'SYMBOL'" in usage_error(cli.run("live", "-s", "x"), "live ")
    assert not project.signal_dir.exists() or not any(project.signal_dir.iterdir())


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--step", "7m"], "--step must be one of 1m, 3m, 5m, 15m, 30m, 1h, not '7m'"),
        (["--start", "yesterday"], "'yesterday' is not a date"),
        (["-s", "mystrategy"], "Did you mean my-strategy"),
        (["--log-level", "LOUD"], "--log-level must be one of"),
        (["--json", "true"], "write `--json`, not `--json true`"),
    ],
)
def test_backtest_refuses_bad_options(cli: InProcess, args: list[str], says: str):
    strategy = [] if "-s" in args else ["-s", "my-strategy"]
    assert says in error_line(cli.run("backtest", "ETHBTC", *strategy, *args))


def test_backtest_refuses_bad_counts_and_missing_strategies(cli: InProcess, project: Project):
    workers = usage_error(
        cli.run("backtest", "ETHBTC", "-s", "my-strategy", "--workers", "0"), "backtest "
    )
    assert "Invalid value for '--workers'" in workers
    (project.root / "strategies" / "my_strategy.py").unlink()
    assert "Strategy 'my-strategy' not found" in error_line(
        cli.run("backtest", "ETHBTC", "-s", "my-strategy")
    )
    assert not list((project.root / "logs").rglob("*.md"))


@pytest.fixture
def ledger(cli: InProcess, project: Project) -> Project:
    """A project whose ledger has one live run of my-strategy, and its live report."""
    from tests.conftest import copy_candles

    copy_candles(project.root / "data" / "candles", "ETHBTC", rows=300)
    done = cli.run("live", "ETHBTC", "-s", "my-strategy")
    assert done.returncode == 0, done.stderr
    assert (project.root / "logs" / "live" / "my-strategy.md").exists()
    return project


def test_report_refuses_bad_options_and_keeps_the_last_report(cli: InProcess, ledger: Project):
    report = ledger.root / "logs" / "live" / "my-strategy.md"
    before = report.read_bytes()
    assert "--mode must be live or backtest, not 'paper'" in error_line(
        cli.run("report", "my-strategy", "--mode", "paper")
    )
    assert "'soon' is not a date" in error_line(cli.run("report", "my-strategy", "--since", "soon"))
    reversed_range = cli.run(
        "report", "my-strategy", "--since", "2018-01-22", "--until", "2018-01-21"
    )
    assert "--since 2018-01-22 is after --until 2018-01-21" in error_line(reversed_range)
    unknown_run = error_line(cli.run("report", "my-strategy", "--run", "live-nope"))
    assert "no live run 'live-nope' of my-strategy. Its live runs: live; or --run all" in (
        unknown_run
    )
    assert "Its backtest runs: none" in error_line(
        cli.run("report", "my-strategy", "--mode", "backtest", "--run", "backtest-nope")
    )
    assert "Missing argument 'strategy'" in usage_error(cli.run("report"), "report ")
    assert report.read_bytes() == before  # no refused report replaced the last good one
    for run in ("live", "all"):
        assert cli.run("report", "my-strategy", "--run", run, "--format", "json").returncode == 0


def test_status_and_list_refuse_bad_settings_and_options(cli: InProcess):
    bad = error_line(cli.run("status", env={"BTKIT_FEE_PERCENT": "a lot"}))
    assert "invalid settings (fee_percent:" in bad
    assert "Check BTKIT_* variables and .env" in bad
    unknown = error_line(cli.run("list", env={"BTKIT_STRATEGY_DIR": "x"}))
    assert "Unknown setting BTKIT_STRATEGY_DIR (did you mean BTKIT_STRATEGIES_DIR?)" in unknown
    assert usage_error(cli.run("status", "--bogus"), "status ") == "No such option: --bogus"
    assert "Got unexpected extra argument(s) (x)" in usage_error(cli.run("list", "x"), "list ")


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad input must be refused before any exchange is asked."""

    def refuse(*args: object, **kwargs: object) -> int:
        raise AssertionError("the download started despite bad input")

    monkeypatch.setattr(download_command, "run_download", refuse)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--days", "3", "--start", "2024-01-01"], "give --days or --start, not both"),
        (["--start", "2024-02-01", "--end", "2024-01-01"], "--start 2024-02-01 is after --end"),
        (["--start", "nope"], "'nope' is not a date"),
        (["--log-level", "LOUD"], "--log-level must be one of"),
    ],
)
@pytest.mark.usefixtures("no_download")
def test_download_refuses_bad_options_before_asking_the_exchange(
    cli: InProcess, args: list[str], says: str
):
    assert says in error_line(cli.run("download", "ETHBTC", "-e", "binance", *args))


def test_download_refuses_unknown_exchanges_and_bad_counts(cli: InProcess):
    unknown = error_line(cli.run("download", "ETHBTC", "-e", "binanse", "--days", "1"))
    assert "Unknown exchange 'binanse'. Did you mean binance" in unknown
    days = usage_error(cli.run("download", "ETHBTC", "-e", "binance", "--days", "0"), "download ")
    assert "Invalid value for '--days'" in days
    missing = usage_error(cli.run("download", "ETHBTC"), "download ")
    assert "Missing option '--exchange'" in missing


def test_service_refuses_incomplete_or_conflicting_options(cli: InProcess, project: Project):
    assert "--strategy is required" in error_line(cli.run("service", "ETHBTC"))
    assert "give the symbols, or --template" in error_line(cli.run("service", "-s", "my-strategy"))
    assert "--template takes no symbols" in error_line(
        cli.run("service", "ETHBTC", "-s", "my-strategy", "--template")
    )
    assert "No unit was written" in error_line(
        cli.run("service", "ETHBTC", "-s", "my-strategy", "--strategies-dir", "nowhere")
    )
    assert not list(project.root.glob("*.service"))


def test_new_strategy_refuses_bad_names_and_unusable_folders(cli: InProcess, project: Project):
    assert "use lower-case letters, digits, '-' and '_'" in error_line(
        cli.run("new-strategy", "My Strategy")
    )
    in_the_way = project.root / "strategies" / "my_strategy.py"
    blocked = error_line(
        cli.run("new-strategy", "mine", "--strategies-dir", str(in_the_way / "sub")), code=1
    )
    assert f"Cannot create folder {in_the_way / 'sub'}: Not a directory" in blocked
    assert "already exists; pick another name" in error_line(cli.run("new-strategy", "my_strategy"))


def test_init_refuses_a_file_for_a_folder(cli: InProcess, project: Project):
    in_the_way = project.root / "strategies" / "my_strategy.py"
    before = in_the_way.read_bytes()
    said = error_line(cli.run("init", str(in_the_way)))
    assert f"{in_the_way} is a file: give `btkit init` a folder" in said
    assert in_the_way.read_bytes() == before
