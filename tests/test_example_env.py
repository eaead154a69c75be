"""`btkit init`'s example .env: every line, uncommented, loads and gives the defaults."""

from __future__ import annotations

import os
import re

from btkit.cli.listing import example_env
from btkit.settings import Settings

SETTING = re.compile(r"^# (BTKIT_[A-Z0-9_]+)=(.*)$")


def test_every_example_line_uncommented_is_valid_and_the_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no project .env
    for name in [n for n in os.environ if n.startswith("BTKIT_")]:
        monkeypatch.delenv(name)
    defaults = Settings().model_dump()
    pairs = [m.groups() for line in example_env().splitlines() if (m := SETTING.match(line))]
    assert ("BTKIT_PAPER_BALANCES", '{"USDT": 10000.0, "BTC": 1.0, "ETH": 10.0}') in pairs
    for name, value in pairs:
        if value:  # an empty value means "not set" (no default)
            monkeypatch.setenv(name, value)
    assert Settings().model_dump() == defaults
