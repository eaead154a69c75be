"""`btkit live --trade live` end to end: the real CLI in a subprocess against the
signed Binance stand-in, which follows the run's simulated time (tests/trade_live.py)."""

from __future__ import annotations

import pytest

from tests.binance_server import TRADE_KEY, TRADE_SECRET
from tests.conftest import json_events
from tests.trade_live import (
    check_account,
    ledger_fills,
    live_args,
    prepare,
    stand_in,
    trade_env,
)

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


def test_a_protective_fill_while_btkit_is_stopped_closes_the_signal_on_restart(project):
    prepare(project)
    with stand_in() as server:
        first = project.run(*live_args("2018-01-20T06:16"), env=trade_env(server))
        assert first.returncode == 0, first.stderr
        opened = json_events(first.stdout)[-1]
        assert opened["action"] == "opened"  # held, with its OCO on the exchange
        digest = opened["trade"]["client_id"].rsplit("-", 1)[-1]
        minute = server.engine.now_ms
        while any(i.status == "EXECUTING" for i in server.engine.lists.values()):
            minute += 60_000  # btkit is stopped: the market moves through a leg
            server.advance_to(minute)
        legs = [t for t in server.engine.trades if t.order.client_id.endswith(digest)]
        leg = legs[-1].order
        assert leg.client_id.startswith(("btk-t-", "btk-s-"))
        assert leg.client_id not in {f.client_id for f in ledger_fills(project)}
        again = project.run(*live_args("2018-01-20T06:30"), env=trade_env(server))
        assert again.returncode == 0, again.stderr
        closed = next(
            e
            for e in json_events(again.stdout)
            if e["action"] == "closed" and e["signal"]["id"] == opened["signal"]["id"]
        )
        role = "take_profit" if leg.client_id.startswith("btk-t-") else "stop_loss"
        assert closed["close_reason"] == role
        assert closed["trade"]["client_id"] == leg.client_id
        assert "protective order filled" in closed["trade"]["how"]
        check_account(server, project)


def _entries(stdout: str) -> list[dict]:
    return [e["trade"] for e in json_events(stdout) if e["action"] == "opened"]


def _clean(done) -> None:
    """Exit 0, no traceback, neither the key nor the secret anywhere."""
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for secret in (TRADE_KEY, TRADE_SECRET):
        assert secret not in done.stdout + done.stderr


def test_a_lost_entry_response_never_sends_a_second_entry(project):
    prepare(project)
    with stand_in() as server:
        server.inject_orders("lost")  # the first entry executes; its answer never comes
        done = project.run(*live_args("2018-01-20T06:06"), env=trade_env(server))
        _clean(done)
        first = _entries(done.stdout)[0]
        assert first["status"] == "closed"
        assert first["filled"] > 0
        sent = [
            q
            for m, _, q in server.order_requests
            if q.get("newClientOrderId") == first["client_id"]
        ]
        assert len(sent) == 1  # looked up by its client id, never sent again
        assert "looking" in done.stderr
        check_account(server, project)


@pytest.mark.parametrize(
    ("stake", "balances", "fault", "says"),
    [
        ("0.00001", None, None, "below the market's minimum order"),
        ("0.01", {"BTC": 0.005}, None, "insufficient balance"),
        ("0.01", None, "reject", "the exchange refused the entry order"),
    ],
    ids=["below-minimum", "insufficient", "rejected"],
)
def test_an_entry_that_cannot_be_placed_says_why_and_loses_nothing(
    project, stake, balances, fault, says
):
    prepare(project)
    with stand_in(balances) as server:
        before = dict(server.engine.balances)
        if fault:
            server.inject_orders(fault)
        done = project.run(*live_args("2018-01-20T06:02", stake=stake), env=trade_env(server))
        _clean(done)
        first = _entries(done.stdout)[0]
        assert first["status"] in ("skipped", "rejected")
        assert says in first["how"]
        assert says in done.stderr  # the log says it too
        assert not server.engine.trades
        assert server.engine.balances == before
        check_account(server, project, quote_start=sum(before["BTC"]))


def test_trade_live_without_confirmation_exits_2_saying_what_would_happen(project):
    prepare(project)
    with stand_in() as server:
        done = project.run(*live_args("2018-01-20T06:02", confirm=False), env=trade_env(server))
        assert done.returncode == 2
        assert "would place real orders on binance with stake 0.01" in done.stderr
        assert "--confirm-live" in done.stderr
        assert not server.order_requests
        assert TRADE_SECRET not in done.stdout + done.stderr
