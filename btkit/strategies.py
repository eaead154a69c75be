"""Strategies: the `@strategy` decorator and loading `*.py` files from a folder.

A module declares strategies by decorating async functions; loading a folder
collects every `StrategyDef` its modules define. Nothing is registered
globally, so two folders never see each other's strategies.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from btkit.context import bound_values
from btkit.domain.errors import ConfigError, StrategyLoadError
from btkit.domain.model import Signal
from btkit.engine.intervals import SIGNAL_INTERVALS, interval_ms
from btkit.engine.params import (
    Keep,
    Space,
    Value,
    Values,
    check_space,
    checked_values,
    label,
    name_suffix,
)

if TYPE_CHECKING:
    from btkit.market.screen_mask import Screen

log = logging.getLogger(__name__)

SignalFunction = Callable[[str], Awaitable[Signal | Mapping[str, Any] | None]]
Callback = Callable[[Any], object]


@dataclass(frozen=True, slots=True)
class StrategyDef:
    name: str
    interval: str
    get_signal: SignalFunction
    warmup_minutes: int = 60
    on_open: Callback | None = None
    on_active: Callback | None = None
    on_idle: Callback | None = None
    on_close: Callback | None = None
    on_tick: Callback | None = None
    source: Path | None = None
    params: tuple[tuple[str, Any], ...] = ()
    """Declared tunable parameters (name, IntRange | FloatRange | Choice), in order."""
    values: tuple[tuple[str, Value], ...] = ()
    """The parameter values this definition runs with (the defaults unless bound)."""
    declared_name: str = ""
    """The name in `@strategy(...)`; `name` adds the values once bound (`name+fast:10`)."""
    unbound: StrategyDef | None = None
    """The functions as written, before `param()` values were wrapped around them."""
    screen: Screen | None = None
    """Backtests only: candle columns in, per candle whether a signal may open right after."""
    constraint: Keep | None = None
    """Which parameter sets make sense (`fast < slow`); sweeps skip, `bind` refuses the rest."""

    def allows(self, values: Values) -> bool:
        """Whether the constraint accepts `values` (a full set); its failure is a ConfigError."""
        if self.constraint is None:
            return True
        try:
            return bool(self.constraint(dict(values)))
        except Exception as exc:
            raise ConfigError(
                f"The constraint of strategy {self.declared_name or self.name!r} "
                f"({self.source or 'its file'}) raised {type(exc).__name__}: {exc}. Fix it."
            ) from exc

    @property
    def interval_ms(self) -> int:
        return interval_ms(self.interval)

    @property
    def space(self) -> Space:
        return dict(self.params)

    def bind(self, values: Values) -> StrategyDef:
        """This strategy run with `values` (missing ones at their default).

        The name gains the values (`my-strategy+fast:10+slow:30`), so state files,
        ledger runs, signal ids and reports of different parameter sets never mix.
        """
        base = self.unbound or self
        family = self.declared_name or self.name
        if not values and not base.params:
            return self
        try:
            chosen = checked_values(base.space, values)
        except ValueError as exc:
            raise ConfigError(
                f"Strategy {family!r}: {exc}. Run `btkit sweep` again or fix the saved "
                "parameter set."
            ) from None
        if not replace(base, source=self.source).allows(chosen):
            raise ConfigError(
                f"Strategy {family!r}: the parameter set {label(chosen)} breaks the strategy's "
                "constraint (its `constraint=` in @strategy); choose values it allows."
            )
        bound = _wrapped(base, chosen)
        return replace(bound, name=f"{family}+{name_suffix(chosen)}", source=self.source)


def strategy(
    name: str,
    *,
    interval: str = "1m",
    warmup_minutes: int = 60,
    on_open: Callback | None = None,
    on_active: Callback | None = None,
    on_idle: Callback | None = None,
    on_close: Callback | None = None,
    on_tick: Callback | None = None,
    params: Space | None = None,
    screen: Screen | None = None,
    constraint: Keep | None = None,
) -> Callable[[SignalFunction], StrategyDef]:
    """Declare an async `get_signal(symbol)` as the strategy `name`.

    `interval` is the least time between two `get_signal` calls for a symbol;
    `warmup_minutes` is the history it needs before its first call. Callbacks
    receive the tick result and may be plain or async functions. `params`
    declares tunable parameters (`{"fast": IntRange(5, 50, step=5)}`) that the
    code reads with `param("fast")`: their defaults unless `btkit sweep` or
    `--params NAME` binds other values. `constraint` (a function of the values
    dict, e.g. `lambda p: p["fast"] < p["slow"]`) says which combinations make
    sense: sweeps skip the others and `--params` refuses them.

    `screen` makes backtests and sweeps fast for a strategy that rarely signals:
    a plain function given `Candles` (read its columns, `.close` etc., as whole
    arrays) that returns one bool per candle: False where `get_signal` surely
    returns None at the tick right after that candle finished. The backtest
    then skips those calls (counted as answered None); `get_signal` still makes
    every decision, so a screen that is too generous only costs time, while one
    that wrongly says False loses signals: `btkit backtest --check-screen`
    checks it. The first rows lack history (the arrays start about
    `warmup_minutes` before the rows that count): answer True where unsure.
    Live runs ignore the screen.
    """
    if interval not in SIGNAL_INTERVALS:
        raise ValueError(
            f"strategy {name!r}: interval must be one of {', '.join(SIGNAL_INTERVALS)}, "
            f"not {interval!r}"
        )
    if warmup_minutes < 0:
        raise ValueError(f"strategy {name!r}: warmup_minutes must be >= 0")
    space = dict(params or {})
    try:
        defaults = check_space(space)
    except ValueError as exc:
        raise ValueError(f"strategy {name!r}: {exc}") from None
    if constraint is not None and space:
        try:
            allowed = constraint(dict(defaults))
        except Exception as exc:
            raise ValueError(
                f"strategy {name!r}: its constraint raised {type(exc).__name__}: {exc} "
                "on the parameters' defaults"
            ) from exc
        if not allowed:
            raise ValueError(f"strategy {name!r}: the parameters' defaults break its constraint")

    def decorate(function: SignalFunction) -> StrategyDef:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"strategy {name!r}: get_signal must be an `async def` function")
        written = StrategyDef(
            name,
            interval,
            function,
            warmup_minutes,
            on_open,
            on_active,
            on_idle,
            on_close,
            on_tick,
            params=tuple(space.items()),
            declared_name=name,
            screen=screen,
            constraint=constraint,
        )
        # No parameters: the functions run as written, exactly as before parameters existed.
        return _wrapped(written, defaults) if space else written

    return decorate


def _wrapped(written: StrategyDef, values: dict[str, Value]) -> StrategyDef:
    """`written` whose every call sees `values` through `param()`."""
    frozen = tuple(values.items())

    async def get_signal(symbol: str) -> Signal | Mapping[str, Any] | None:
        with bound_values(frozen):
            return await written.get_signal(symbol)

    # The runner calls this instead, with the values on its tick (no wrapper per call).
    get_signal.btkit_written = written.get_signal  # type: ignore[attr-defined]

    return replace(
        written,
        get_signal=get_signal,
        values=frozen,
        unbound=written,
        on_open=_wrapped_callback(written.on_open, frozen),
        on_active=_wrapped_callback(written.on_active, frozen),
        on_idle=_wrapped_callback(written.on_idle, frozen),
        on_close=_wrapped_callback(written.on_close, frozen),
        on_tick=_wrapped_callback(written.on_tick, frozen),
        screen=_wrapped_screen(written.screen, frozen),
    )


def _wrapped_screen(screen: Screen | None, values: tuple[tuple[str, Value], ...]) -> Screen | None:
    """`screen` seeing `values` through `param()`, as `get_signal` does."""
    if screen is None:
        return None
    function = screen

    def call(candles: Any) -> Any:
        with bound_values(values):
            return function(candles)

    return call


def _wrapped_callback(
    callback: Callback | None, values: tuple[tuple[str, Value], ...]
) -> Callback | None:
    if callback is None:
        return None
    function = callback

    async def awaiting(pending: Awaitable[object]) -> object:
        with bound_values(values):
            return await pending

    def call(result: Any) -> object:
        with bound_values(values):
            outcome = function(result)
        return awaiting(outcome) if inspect.isawaitable(outcome) else outcome

    return call


@dataclass(frozen=True, slots=True)
class StrategyFolder:
    """What a strategies folder holds: the strategies that loaded and the files that failed."""

    folder: Path
    found: dict[str, StrategyDef]
    broken: list[tuple[Path, StrategyLoadError]]


def scan_strategies(folder: Path) -> StrategyFolder:
    """Load every `*.py` file of `folder` (files starting `_` skipped), keeping failures apart.

    One broken file must not block the strategies of the others: the caller
    decides whether a failure matters for the strategy it wants.
    """
    if not folder.is_dir():
        raise ConfigError(
            f"Strategies folder {folder} does not exist. Create one with `btkit init` or "
            "`btkit new-strategy NAME`, or point --strategies-dir at your folder."
        )
    found: dict[str, StrategyDef] = {}
    broken: list[tuple[Path, StrategyLoadError]] = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            module = _import_file(path)
        except StrategyLoadError as exc:
            broken.append((path, exc))
            continue
        for value in vars(module).values():
            if not isinstance(value, StrategyDef):
                continue
            if value.name in found and found[value.name].source != path:
                raise ConfigError(
                    f"Strategy name {value.name!r} is declared twice: in "
                    f"{found[value.name].source} and in {path}. Rename one of them."
                )
            found[value.name] = replace(value, source=path)
    return StrategyFolder(folder, found, broken)


def load_strategies(folder: Path) -> dict[str, StrategyDef]:
    """Every strategy of `folder`; the first file that fails to import is an error."""
    scanned = scan_strategies(folder)
    if scanned.broken:
        raise scanned.broken[0][1]
    return scanned.found


def resolve_strategy(folder: Path, name: str, *, warn: bool = True) -> StrategyDef:
    """The strategy `name`; other files that fail to import are only warned about.

    A broken file is an error when it mentions `name` (the strategy probably
    lives there), or when `name` is found nowhere else.
    """
    scanned = scan_strategies(folder)
    suspects = [exc for path, exc in scanned.broken if _mentions(path, name)]
    if suspects:
        raise suspects[0]
    if name in scanned.found:
        if warn:
            for _, exc in scanned.broken:
                log.warning("%s (strategy %r is elsewhere, so btkit goes on)", exc, name)
        return scanned.found[name]
    names = sorted(scanned.found)
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    listing = ", ".join(names) if names else "none"
    failed = "".join(f" {exc} {name!r} may be declared there." for _, exc in scanned.broken)
    error = StrategyLoadError if scanned.broken else ConfigError
    raise error(
        f"Strategy {name!r} not found in {folder}.{hint} Available: {listing}.{failed} "
        "Use --strategies-dir to look elsewhere, or `btkit new-strategy NAME` to create one."
    )


def _mentions(path: Path, name: str) -> bool:
    """Whether a file's text names the strategy, as `@strategy("name"` would."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return f'"{name}"' in text or f"'{name}'" in text


def _import_file(path: Path) -> ModuleType:
    module_name = f"btkit_user_strategies.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StrategyLoadError(f"Cannot load strategy file {path}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        line = _failing_line(path, exc)
        raise StrategyLoadError(
            f"Strategy file {path}:{line} failed to import: {type(exc).__name__}: {exc}. "
            "Fix the file (or move it out of the strategies folder) and try again."
        ) from exc
    return module


def _failing_line(path: Path, exc: Exception) -> int | str:
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        return exc.lineno
    target = path.resolve()
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == target
    ]
    return frames[-1].lineno or "?" if frames else "?"
