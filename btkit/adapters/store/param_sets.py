"""Named parameter sets per strategy (`--params NAME`), one JSON file per strategy."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from btkit.adapters.store.atomic import atomic_write_bytes, ensure_private_dir
from btkit.domain.errors import ConfigError
from btkit.engine.params import Value


def _path(data_dir: Path, strategy: str) -> Path:
    return data_dir / "params" / f"{strategy}.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"Cannot read the saved parameter sets {path}: {exc}. Fix or delete the file, "
            "then run `btkit sweep` again."
        ) from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} is not a JSON object of parameter sets; fix or delete it.")
    return loaded


def save_param_set(
    data_dir: Path, strategy: str, name: str, values: dict[str, Value], about: dict[str, Any]
) -> Path:
    """Keep `values` as `name` (replacing an older set of that name), atomically."""
    path = _path(data_dir, strategy)
    ensure_private_dir(path.parent)
    sets = _read(path)
    sets[name] = {"values": values, **about}
    atomic_write_bytes(path, (json.dumps(sets, indent=2, sort_keys=True) + "\n").encode())
    return path


def load_param_set(data_dir: Path, strategy: str, name: str) -> dict[str, Value]:
    path = _path(data_dir, strategy)
    sets = _read(path)
    entry = sets.get(name)
    if not isinstance(entry, dict) or not isinstance(entry.get("values"), dict):
        known = sorted(sets)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        listing = ", ".join(known) if known else "none yet"
        raise ConfigError(
            f"No parameter set {name!r} for strategy {strategy!r} (in {path}).{hint} "
            f"Saved: {listing}. `btkit sweep ... --strategy {strategy} --save {name}` "
            "saves the best set under that name."
        )
    values: dict[str, Value] = entry["values"]
    return values
