"""`btkit sweep` end to end: the real CLI, SQLite store, SIGKILL and resume, saved sets."""

from __future__ import annotations

import json
import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from btkit.cli.main import app
from tests.conftest import Project, wait_for_paths

SWEPT = """
import asyncio
from pathlib import Path

from btkit import Choice, FloatRange, Signal, get_average_price, param, strategy


@strategy(
    "swept",
    interval="5m",
    warmup_minutes=10,
    params={"tp": FloatRange(0.5, 1.0, step=0.5), "side": Choice("long", "short")},
)
async def swept(symbol):
    if param("side") == "short" and param("tp") == 1.0 and Path("gate").exists():
        Path("reached").touch()  # the last parameter set: every other job is done
        while Path("gate").exists():
            await asyncio.sleep(0.01)
    price = await get_average_price(symbol)
    tp = param("tp") / 100
    if param("side") == "long":
        return Signal("long", price, price * (1 + tp), price * (1 - tp), 120)
    return Signal("short", price, price * (1 - tp), price * (1 + tp), 120)
"""
SWEEP = ("sweep", "ETHBTC", "LTCBTC", "-s", "swept", "--workers", "1", "--json")
TOTAL = 4 * 2 * 2  # sets x windows x symbols


@pytest.fixture
def swept(project: Project) -> Project:
    project.write_strategy("swept.py", SWEPT)
    return project


def _results(stdout: str) -> dict[str, object]:
    result = json.loads(stdout)
    result.pop("jobs")
    return result


def _stored(root: Path) -> int:
    with sqlite3.connect(root / "data" / "sweeps" / "jobs.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM jobs").fetchone()[0])


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M")


def test_sweep_ranks_saves_the_best_and_backtest_params_runs_exactly_it(swept: Project) -> None:
    done = swept.run(*SWEEP)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["jobs"] == {"total": TOTAL, "run": TOTAL, "reused": 0}
    board = result["leaderboard"]
    assert len(board) == 4
    assert len({json.dumps(r["params"]) for r in board}) == 4
    scores = [r["in_sample"]["score"] for r in board]
    assert scores == sorted(scores, reverse=True)
    assert result["best"] == {"params": board[0]["params"], "saved_as": "best"}
    report = (swept.root / "logs" / "sweep" / "swept.md").read_text()
    assert "## Walk-forward" in report
    assert "| 1 |" in report
    saved = json.loads((swept.root / "data" / "params" / "swept.json").read_text())
    assert saved["best"]["values"] == board[0]["params"]

    # The saved winner over the out-of-sample window: the very trades the sweep scored.
    test_window = result["windows"][-1]
    backtest = swept.run(
        "backtest", "ETHBTC", "LTCBTC", "-s", "swept", "--params", "best", "--json",
        "--start", _utc(test_window["start"]), "--end", _utc(test_window["end"]),
    )  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    closed = [json.loads(line) for line in backtest.stdout.splitlines()]
    out_of_sample = board[0]["out_of_sample"]
    assert len(closed) == out_of_sample["trades"]
    assert sum(c["pnl"]["pnl_percentage"] for c in closed) == pytest.approx(
        out_of_sample["total_pnl"], abs=1e-9
    )
    tp = board[0]["params"]["tp"]
    assert f"swept+side:{board[0]['params']['side']}+tp:{tp}.md" in backtest.stderr
    # Nothing of a sweep or a backtest goes into the ledger: the one backtest run is stored
    # in data/runs/.
    assert not (swept.root / "data" / "btkit.sqlite").exists()
    assert len(list((swept.root / "data" / "runs").glob("backtest-*.npz"))) == 1

    # live --params: its own state file, apart from a run at the defaults.
    live = swept.run(
        "live", "ETHBTC", "-s", "swept", "--params", "best", "--json",
        "--start", _utc(test_window["start"]), "--end", _utc(test_window["start"] + 3_600_000),
    )  # fmt: skip
    assert live.returncode == 0, live.stderr
    suffix = f"side:{board[0]['params']['side']}+tp:{tp}".replace(":", "_")
    assert [p.name for p in swept.signal_dir.glob("*.json")] == [
        f"replay-swept+{suffix}-ETHBTC.json"
    ]


def test_a_killed_sweep_resumes_without_rerunning_finished_jobs(swept: Project) -> None:
    reference = swept.run(*SWEEP, "--data-dir", swept.clone_data("reference"))
    assert reference.returncode == 0, reference.stderr

    (swept.root / "gate").touch()
    with swept.start(*SWEEP) as process:
        wait_for_paths(process, swept.root / "reached")
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = _stored(swept.root)
    assert finished == TOTAL - 4  # every job before the last set, durable at the kill

    (swept.root / "reached").unlink()
    with swept.start(*SWEEP) as process:  # Ctrl-C in the same place: a clear stop
        wait_for_paths(process, swept.root / "reached")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "the same command resumes after them" in stderr
    assert _stored(swept.root) == TOTAL - 4
    (swept.root / "gate").unlink()

    resumed = swept.run(*SWEEP)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["jobs"] == {"total": TOTAL, "run": 4, "reused": TOTAL - 4}
    assert _results(resumed.stdout) == _results(reference.stdout)


def test_unknown_saved_set_and_unsweepable_strategy_are_clear_errors(swept: Project) -> None:
    unknown = swept.run("backtest", "ETHBTC", "-s", "swept", "--params", "nope")
    assert unknown.returncode == 2
    assert "No parameter set 'nope' for strategy 'swept'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    live = swept.run("live", "ETHBTC", "-s", "swept", "--params", "nope")
    assert live.returncode == 2
    assert "No parameter set 'nope'" in live.stderr

    swept.write_strategy(
        "fixed.py",
        "from btkit import strategy\n\n@strategy('fixed')\nasync def f(symbol):\n    return None\n",
    )
    fixed = swept.run("sweep", "ETHBTC", "-s", "fixed")
    assert fixed.returncode == 2
    assert "declares no parameters to sweep" in fixed.stderr
    assert not (swept.root / "data" / "params").exists()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (("--grid", "--samples", "3"), "give --grid or --samples N, not both"),
        (("--metric", "luck"), "--metric must be one of sharpe, total-return, profit-factor"),
        (("--save", "Best Set"), "--save 'Best Set': use lower-case letters"),
    ],
)
def test_option_errors_exit_2_before_any_work(options: tuple[str, ...], words: str) -> None:
    result = CliRunner().invoke(app, ["sweep", "ETHBTC", "-s", "swept", *options])
    assert result.exit_code == 2
    assert words in result.output


def test_samples_draw_a_seeded_subset(swept: Project) -> None:
    first = swept.run(*SWEEP, "--samples", "2", "--seed", "3", "--metric", "total-return")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["jobs"] == {"total": 8, "run": 8, "reused": 0}
    assert len(result["leaderboard"]) == 2


def test_my_strategys_sweep_leaves_out_the_sets_its_constraint_forbids(project: Project) -> None:
    done = project.run(
        "sweep", "ETHBTC", "-s", "my-strategy", "--workers", "2", "--json",
        "--start", "2018-01-20", "--end", "2018-01-24",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["sets"] == {"run": 23, "skipped_by_constraint": 2}  # (20, 20), (25, 20)
    swept = [row["params"] for row in result["leaderboard"]]
    assert all(p["fast"] < p["slow"] for p in swept)
    assert len(swept) == 23
    assert "2 more left out by the strategy's constraint" in done.stderr
