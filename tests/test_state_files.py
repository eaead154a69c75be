"""State files are checked on load like a new signal, and never overwritten when foreign.

Through the real CLI on the replay exchange: a bad or foreign file is moved
aside (kept byte for byte), reported loudly, and the run goes on.
"""

from __future__ import annotations

import json
import math

import pytest

from btkit.adapters.store.signal_state import ForeignStateFile, UnusableStateFile, parse_state
from tests.conftest import Project, json_events

FIRST = 1_516_423_980_000  # the first ETHBTC candle of the test data
OPENED = FIRST + 30 * 60_000


def state_document(**signal_changes: object) -> dict[str, object]:
    signal = {
        "id": "restored-1",
        "position": "long",
        "price_open": 0.0889,
        "price_take_profit": 0.0899,
        "price_stop_loss": 0.0879,
        "minute_estimated_time": 60,
        "symbol": "ETHBTC",
        "strategy_name": "my-strategy",
        "exchange_name": "replay",
        "timestamp": OPENED,
        "note": "",
    }
    signal.update(signal_changes)
    return {
        "version": 1,
        "exchange_name": "replay",
        "strategy_name": "my-strategy",
        "symbol": "ETHBTC",
        "signal": signal,
        "last_signal_call": OPENED,
        "last_tick": OPENED,
    }


def write_state(project: Project, text: str) -> None:
    project.signal_dir.mkdir(parents=True, exist_ok=True)
    (project.signal_dir / "replay-my-strategy-ETHBTC.json").write_text(text)


RULES = [
    ({"price_take_profit": -0.0899}, "price_take_profit must be a finite number > 0"),
    ({"price_take_profit": 0.0869}, "long needs take-profit > open > stop-loss"),
    ({"price_open": math.nan}, "price_open must be a finite number > 0, got nan"),
    ({"position": "sideways"}, "position must be 'long' or 'short'"),
    ({"minute_estimated_time": 0}, "minute_estimated_time must be a number > 0"),
    ({"note": "x" * 10_000}, "note is 10000 bytes"),
    ({"stake": -5}, "stake must be a finite number > 0"),
]
NAMES = ("replay", "my-strategy", "ETHBTC")


@pytest.mark.parametrize(("changes", "rule"), RULES)
def test_a_restored_signal_must_pass_the_rules_of_a_new_one(changes, rule):
    with pytest.raises(UnusableStateFile, match="its signal restored-1 is invalid") as caught:
        parse_state(json.dumps(state_document(**changes)).encode(), NAMES)
    assert rule in str(caught.value)


@pytest.mark.parametrize(("changes", "rule"), [RULES[0], RULES[2]])
def test_an_invalid_restored_signal_is_moved_aside_loudly(project, changes, rule):
    text = json.dumps(state_document(**changes))  # NaN is written as the bare word NaN
    write_state(project, text)
    done = project.run("live", "ETHBTC", "-s", "my-strategy", "--json")
    assert done.returncode == 0, done.stderr
    assert "CORRUPT STATE FILE" in done.stderr
    assert "its signal restored-1 is invalid" in done.stderr
    assert rule in done.stderr
    kept = list(project.signal_dir.glob("replay-my-strategy-ETHBTC.json.corrupt-*"))
    assert [k.read_text() for k in kept] == [text]
    events = json_events(done.stdout)
    assert events  # the run went on from the start of the history
    assert all(e["signal"]["id"] != "restored-1" for e in events)


@pytest.mark.parametrize(
    "owner",
    [{"strategy_name": "other-strategy"}, {"exchange_name": "binance"}, {"symbol": "LTCBTC"}],
)
def test_a_signal_of_another_run_is_foreign(owner):
    with pytest.raises(ForeignStateFile, match="belongs to"):
        parse_state(json.dumps(state_document(**owner)).encode(), NAMES)
    top_level = {**state_document(), **owner, "signal": None}  # another run's cursor
    with pytest.raises(ForeignStateFile, match="belongs to"):
        parse_state(json.dumps(top_level).encode(), NAMES)


def test_another_runs_state_file_is_moved_aside_not_overwritten(project):
    text = json.dumps(state_document(strategy_name="other-strategy"))
    write_state(project, text)
    done = project.run("live", "ETHBTC", "-s", "my-strategy", "--json")
    assert done.returncode == 0, done.stderr
    assert "FOREIGN STATE FILE" in done.stderr
    kept = list(project.signal_dir.glob("replay-my-strategy-ETHBTC.json.foreign-*"))
    assert [k.read_text() for k in kept] == [text]
    assert json_events(done.stdout)
    own = json.loads((project.signal_dir / "replay-my-strategy-ETHBTC.json").read_text())
    assert own["signal"] is None or own["signal"]["strategy_name"] == "my-strategy"


def test_a_valid_state_file_round_trips_an_infinite_lifetime_as_null():
    document = state_document(minute_estimated_time=None)
    state = parse_state(json.dumps(document).encode(), ("replay", "my-strategy", "ETHBTC"))
    assert state.signal is not None
    assert state.signal.minute_estimated_time == math.inf
    with pytest.raises(UnusableStateFile, match="minute_estimated_time"):
        parse_state(json.dumps(state_document(minute_estimated_time="soon")).encode())


def test_a_signals_own_stake_round_trips_and_is_left_out_when_unset():
    from btkit.domain.model import signal_to_dict

    state = parse_state(json.dumps(state_document(stake=250)).encode(), NAMES)
    assert state.signal is not None
    assert state.signal.stake == 250.0
    written = {**state_document(), "signal": signal_to_dict(state.signal)}  # as save writes it
    again = parse_state(json.dumps(written).encode(), NAMES)
    assert again.signal == state.signal
    unset = parse_state(json.dumps(state_document()).encode(), NAMES)
    assert unset.signal is not None
    assert unset.signal.stake is None
    assert "stake" not in signal_to_dict(unset.signal)  # events and reports unchanged
