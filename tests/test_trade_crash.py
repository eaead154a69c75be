"""SIGKILL at every step of the live order flow (and at random), then a restart: the
account on the stand-in and btkit's ledger must agree (tests/trade_live.py)."""

from __future__ import annotations

import random
import signal

import pytest

from tests.conftest import Project
from tests.trade_live import check_account, live_args, prepare, stand_in, trade_env

pytestmark = pytest.mark.system

ORDER_POINTS = (
    "order:entry-intent",
    "order:entry-sent",
    "order:protect-intent",
    "order:protected",
    "order:protect-cancelled",
    "order:exit-sent",
)
END = "2018-01-20T07:00"


def _kill_then_finish(
    project: Project, server, kills: list[str], *, every: bool = True
) -> list[str]:
    """One run per kill, each dying by SIGKILL (`every`; else a run may reach the end
    without passing its point), then one to the end; the logs."""
    logs = []
    for kill in kills:
        env = trade_env(server, BTKIT_FAULT_KILL_AT=kill)
        killed = project.run(*live_args(END), env=env)
        died = killed.returncode == -signal.SIGKILL
        assert died or (not every and killed.returncode == 0), (kill, killed.stderr[-3000:])
        logs.append(killed.stderr)
    done = project.run(*live_args(END), env=trade_env(server))
    assert done.returncode == 0, done.stderr[-3000:]
    logs.append(done.stderr)
    return logs


@pytest.mark.parametrize("point", ORDER_POINTS)
def test_a_kill_at_each_order_step_leaves_the_account_consistent(project, point):
    prepare(project)
    with stand_in() as server:
        _kill_then_finish(project, server, [point])
        check_account(server, project)


def test_random_kills_leave_the_account_consistent(project):
    rng = random.Random(13)
    kills = [f"{rng.choice(ORDER_POINTS)}:{rng.randint(1, 3)}" for _ in range(3)]
    prepare(project)
    with stand_in() as server:
        _kill_then_finish(project, server, kills, every=False)
        check_account(server, project)
