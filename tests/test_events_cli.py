"""`btkit events`: the ledger as JSON lines by seq, for a consumer with its own offset."""

from __future__ import annotations

import json
import signal
import subprocess

from btkit.adapters.store.ledger import SqliteLedger
from btkit.domain.model import ClosedResult, OpenSignal, Pnl
from tests.conftest import Lines, json_events
from tests.fakes import minute


def write_events(project, first: int, count: int, *, strategy="strat", symbol="ETHBTC"):
    """`count` signals opened and closed, as a daemon records them; their seqs."""
    ledger = SqliteLedger(project.root / "data" / "btkit.sqlite")
    seqs = []
    for n in range(first, first + count):
        sig = OpenSignal(
            f"sig-{n}", "long", 100.0, 110.0, 95.0, 60, symbol, strategy, "replay", minute(n)
        )
        seqs.append(ledger.write_opened(sig))
        close = ClosedResult(
            strategy_name=strategy,
            exchange_name="replay",
            symbol=symbol,
            timestamp=minute(n + 1),
            current_price=110.0,
            signal=sig,
            close_reason="take_profit",
            close_timestamp=minute(n + 1),
            pnl=Pnl(1.5, 100.0, 110.0),
        )
        seqs.append(ledger.write_closed(close))
    ledger.close()
    return seqs


def test_events_are_printed_once_in_seq_order_and_since_reads_on(project):
    seqs = write_events(project, 0, 3)
    write_events(project, 10, 1, strategy="other", symbol="LTCBTC")
    done = project.run("events", "--strategy", "strat")
    assert done.returncode == 0, done.stderr
    events = json_events(done.stdout)
    assert [e["seq"] for e in events] == seqs == sorted(seqs)
    assert [(e["signal"]["id"], e["action"]) for e in events[:2]] == [
        ("sig-0", "opened"),
        ("sig-0", "closed"),
    ]
    assert events[1]["pnl"]["pnl_percentage"] == 1.5
    assert {(e["run_id"], e["mode"], e["redelivered"]) for e in events} == {("live", "live", False)}
    later = json_events(project.run("events", "-s", "strat", "--since", str(seqs[3])).stdout)
    assert [e["seq"] for e in later] == seqs[4:]
    ltc = json_events(project.run("events", "--symbol", "LTCBTC").stdout)
    assert [e["signal"]["id"] for e in ltc] == ["sig-10", "sig-10"]
    assert json_events(project.run("events", "--mode", "backtest").stdout) == []


def test_follow_prints_new_events_as_they_are_recorded_and_stops_cleanly(project):
    first = write_events(project, 0, 1)
    since, backlog = first[0], first[1:]  # the consumer had handled the first event
    for stop in (signal.SIGTERM, signal.SIGINT):
        with project.start("events", "--follow", "--since", str(since)) as follower:
            lines = Lines(follower.stdout)
            for seq in backlog:
                lines.wait_for(lambda line, seq=seq: f'"seq":{seq},' in line)
            more = write_events(project, 20 + stop, 2)  # another process appends
            lines.wait_for(lambda line, last=more[-1]: f'"seq":{last},' in line)
            follower.send_signal(stop)
            assert follower.wait(timeout=60) == 0
            err = follower.stderr.read()
        seqs = [e["seq"] for e in json_events(lines.text())]
        assert seqs == [*backlog, *more]  # each once, in order, nothing up to --since
        assert "Traceback" not in err
        since, backlog = more[-1], []  # the next follower reads on from its offset


def test_a_missing_or_damaged_ledger_is_a_clear_error_and_is_left_alone(project):
    missing = project.run("events")
    assert missing.returncode == 2
    assert "No ledger at data/btkit.sqlite yet" in missing.stderr
    assert not (project.root / "data" / "btkit.sqlite").exists()
    damaged = project.root / "data" / "btkit.sqlite"
    damaged.write_bytes(b"not a database at all" * 200)
    done = project.run("events", "--follow")
    assert done.returncode == 1
    assert "error: Cannot read the ledger" in done.stderr
    assert "Traceback" not in done.stderr
    assert damaged.read_bytes() == b"not a database at all" * 200
    bad_mode = project.run("events", "--mode", "paper")
    assert bad_mode.returncode == 2
    assert "--mode must be live or backtest" in bad_mode.stderr


def test_a_closed_stdout_pipe_ends_events_quietly(project):
    write_events(project, 0, 600)
    with subprocess.Popen(
        project.command("events"),
        cwd=project.root,
        env=project.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert json.loads(process.stdout.readline())["seq"] == 1  # like `| head -1`
        process.stdout.close()
        err = process.stderr.read()
        assert process.wait(timeout=60) == 0
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err
