"""`btkit sweep --cluster`: the same jobs on a real Dask scheduler give the same results."""

from __future__ import annotations

import io
import json
import socket
import sys

import pytest
from rich.console import Console

from btkit.adapters.cluster.dask_engine import run_on_dask
from btkit.app.sweep_plan import SweepOptions
from btkit.cli.sweep_command import Engine, Ranking, run_sweep_command
from btkit.domain.errors import ConfigError
from btkit.settings import Settings
from tests.conftest import Project
from tests.test_sweep_cli import SWEPT

distributed = pytest.importorskip("distributed")


def _sweep(project: Project, data: str, engine: Engine) -> dict[str, object]:
    settings = Settings(
        strategies_dir=project.root / "strategies",
        data_dir=project.root / data,
        logs_dir=project.root / "logs",
    )
    out = io.StringIO()
    code = run_sweep_command(
        settings,
        ["ETHBTC", "LTCBTC"],
        strategy_name="swept",
        options=SweepOptions(folds=1),
        ranking=Ranking("sharpe"),
        engine=engine,
        save_as="best",
        json_output=True,
        stdout=Console(file=out, width=200),
        stderr=Console(file=io.StringIO()),
    )
    assert code == 0
    result: dict[str, object] = json.loads(out.getvalue())
    return result


def test_a_local_dask_cluster_gives_the_results_of_the_local_run(project: Project) -> None:
    project.write_strategy("swept.py", SWEPT)
    local = _sweep(project, "data", Engine(workers=1))
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        on_cluster = _sweep(
            project, project.clone_data("cluster"), Engine(cluster=cluster.scheduler_address)
        )
    assert on_cluster["jobs"] == local["jobs"] == {"total": 16, "run": 16, "reused": 0}
    assert on_cluster == local


def test_an_unreachable_scheduler_is_a_clear_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        ConfigError, match=r"Cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1"
    ):
        run_on_dask(f"tcp://127.0.0.1:{port}", _never, [], {}, None, _never, connect_seconds=0.5)


def test_without_the_extra_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # what a missing package looks like
    with pytest.raises(ConfigError, match=r"pip install 'btkit\[cluster\]'"):
        run_on_dask("tcp://127.0.0.1:8786", _never, [], {}, None, _never)


def _never(*args: object) -> None:
    raise AssertionError("no job should run")


def _where(job: int, shared: bytes, common: object) -> tuple[int, int, int]:
    import os

    return job, os.getpid(), id(shared)


def test_shared_data_reaches_each_worker_process_once() -> None:
    done: list[tuple[int, int, int]] = []
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        run_on_dask(
            cluster.scheduler_address,
            _where,
            [(job, "candles") for job in range(12)],
            {"candles": b"x" * 1_000_000},
            None,
            done.append,
        )
    assert sorted(job for job, _, _ in done) == list(range(12))
    copies: dict[int, set[int]] = {}
    for _, pid, copy in done:
        copies.setdefault(pid, set()).add(copy)
    # One object per worker process, used by every job there (passed per job, each
    # job would unpickle its own copy).
    assert all(len(ids) == 1 for ids in copies.values())
