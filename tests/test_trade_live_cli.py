"""`btkit live --trade live` end to end: the real CLI in a subprocess against the
signed Binance stand-in, which follows the run's simulated time (tests/trade_live.py)."""

from __future__ import annotations

import pytest

from tests.binance_server import TRADE_SECRET
from tests.conftest import json_events
from tests.trade_live import check_account, live_args, prepare, stand_in, trade_env

pytestmark = pytest.mark.system


def test_a_live_run_opens_and_closes_positions_and_the_books_agree(project):
    prepare(project)
    with stand_in() as server:
        done = project.run(*live_args("2018-01-20T08:00"), env=trade_env(server))
        assert done.returncode == 0, done.stderr
        events = json_events(done.stdout)
        closed = [e for e in events if e["action"] == "closed"]
        assert len(closed) >= 2
        roles = {e["trade"]["role"] for e in closed}
        assert len(roles) >= 2, roles
        assert roles <= {"exit", "take_profit", "stop_loss"}, roles
        for e in closed:  # sold, or a protective leg filled first and nothing was left
            assert e["trade"]["status"] == "closed" or "filled first" in e["trade"]["how"], e
        # Every signal traded: a closed trade's unsellable dust once kept its slot, and
        # after five closes every entry was skipped as over BTKIT_MAX_OPEN_POSITIONS.
        entries = [e["trade"] for e in events if e["action"] == "opened"]
        assert entries
        assert all(t["status"] == "closed" for t in entries)
        assert all(
            t["how"].startswith(("protected", "the price was already past")) for t in entries
        ), [t["how"] for t in entries]
        with server._lock:
            requests = [(p, q) for m, p, q in server.order_requests if m == "POST"]
        for entry in entries:  # protection was sent right after each entry
            at = next(
                i
                for i, (_, q) in enumerate(requests)
                if q.get("newClientOrderId") == entry["client_id"]
            )
            assert "oco" in requests[at + 1][0]
        check_account(server, project)
        assert TRADE_SECRET not in done.stdout + done.stderr


def test_an_entry_filled_past_its_take_profit_or_stop_is_sold_not_left_naked(project):
    """The stand-in refuses an OCO whose legs the price has already crossed (-2010):
    btkit sells at market with the crossed reason instead of halting with a naked
    position (it used to halt the symbol for the rest of the run)."""
    prepare(project)
    with stand_in() as server:
        done = project.run(*live_args("2018-01-20T06:30"), env=trade_env(server))
        assert done.returncode == 0, done.stderr
        crossed = [
            e
            for e in json_events(done.stdout)
            if e["action"] == "opened" and "already past" in e["trade"]["how"]
        ]
        assert crossed, done.stdout
        assert "TRADING HALTED" not in done.stderr
        check_account(server, project)
