"""Tunable strategy parameters: declarations, the grid they span, seeded samples of it.

Pure: no I/O. Every parameter has a finite, ordered list of values, so a grid
is their product and a sample is a set of distinct points of that product,
drawn by index (no grid is ever built just to sample it).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product

Value = int | float | str | bool
Values = Mapping[str, Value]
"""One parameter set: name -> value."""

_LABEL_SAFE = re.compile(r"^[A-Za-z0-9._=,+-]{1,64}$")
_NAME_SAFE = re.compile(r"^[A-Za-z0-9._:+-]{1,64}$")


@dataclass(frozen=True, slots=True)
class IntRange:
    """Whole numbers low, low + step, ... up to high (included when on a step)."""

    low: int
    high: int
    step: int = 1
    default: int | None = None

    def values(self) -> tuple[Value, ...]:
        if self.step <= 0 or self.high < self.low:
            raise ValueError(f"IntRange({self.low}, {self.high}, step={self.step}) is empty")
        return tuple(range(self.low, self.high + 1, self.step))

    def initial(self) -> Value:
        return self.low if self.default is None else self.default


@dataclass(frozen=True, slots=True)
class FloatRange:
    """Numbers low, low + step, ... up to high; a step is needed so the grid is finite."""

    low: float
    high: float
    step: float
    default: float | None = None

    def values(self) -> tuple[Value, ...]:
        if not (self.step > 0 and math.isfinite(self.low) and self.high >= self.low):
            raise ValueError(f"FloatRange({self.low}, {self.high}, step={self.step}) is empty")
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        # Rounded so 0.1 + 0.2 reads (and hashes) as 0.3, the number the user wrote.
        return tuple(round(self.low + i * self.step, 12) for i in range(count))

    def initial(self) -> Value:
        return self.low if self.default is None else self.default


@dataclass(frozen=True, slots=True)
class Choice:
    """One of the given values; the default is the first unless named."""

    options: tuple[Value, ...]
    default: Value | None = None

    def __init__(self, *options: Value, default: Value | None = None) -> None:
        object.__setattr__(self, "options", tuple(options))
        object.__setattr__(self, "default", default)

    def values(self) -> tuple[Value, ...]:
        if not self.options:
            raise ValueError("Choice() needs at least one value")
        return self.options

    def initial(self) -> Value:
        return self.options[0] if self.default is None else self.default


Param = IntRange | FloatRange | Choice
Space = Mapping[str, Param]
"""A strategy's declared parameters, in declaration order."""


def check_space(space: Space) -> dict[str, Value]:
    """The defaults of a declaration; a bad declaration is a ValueError naming the parameter."""
    defaults: dict[str, Value] = {}
    for name, declared in space.items():
        if not name.isidentifier():
            raise ValueError(f"parameter name {name!r} must be a Python identifier")
        if not isinstance(declared, IntRange | FloatRange | Choice):
            raise ValueError(
                f"parameter {name!r}: declare it with IntRange, FloatRange or Choice, "
                f"not {type(declared).__name__}"
            )
        try:
            values = declared.values()
        except ValueError as exc:
            raise ValueError(f"parameter {name!r}: {exc}") from None
        initial = declared.initial()
        if initial not in values:
            raise ValueError(f"parameter {name!r}: default {initial!r} is not one of its values")
        defaults[name] = initial
    return defaults


def checked_values(space: Space, given: Values) -> dict[str, Value]:
    """`given` completed with defaults, every value one the declaration allows."""
    values = check_space(space)
    unknown = sorted(set(given) - set(space))
    if unknown:
        declared = ", ".join(space) or "none"
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} (declared: {declared})")
    for name, value in given.items():
        allowed = space[name].values()
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            raise ValueError(
                f"parameter {name}={value!r} is not one of its declared values "
                f"({_describe(allowed)})"
            )
        values[name] = allowed[allowed.index(value)]
    return values


def _describe(values: Sequence[Value]) -> str:
    if len(values) <= 6:
        return ", ".join(map(repr, values))
    return f"{values[0]!r}, {values[1]!r} ... {values[-1]!r}"


def grid_size(space: Space) -> int:
    return math.prod(len(p.values()) for p in space.values())


Keep = Callable[[dict[str, Value]], bool]
"""A strategy's constraint: which parameter sets make sense (None: all)."""


def grid(space: Space, keep: Keep | None = None) -> list[dict[str, Value]]:
    """Every combination that `keep` allows, the first parameter varying slowest."""
    names = list(space)
    every = (
        dict(zip(names, combo, strict=True))
        for combo in product(*(space[n].values() for n in names))
    )
    return [values for values in every if keep is None or keep(values)]


def point(space: Space, index: int) -> dict[str, Value]:
    """The `index`-th combination of `grid(space)`, without building the grid."""
    names = list(space)
    chosen: dict[str, Value] = {}
    for name in reversed(names):
        values = space[name].values()
        index, digit = divmod(index, len(values))
        chosen[name] = values[digit]
    return {name: chosen[name] for name in names}


def sample(space: Space, count: int, seed: int, keep: Keep | None = None) -> list[dict[str, Value]]:
    """`count` distinct combinations that `keep` allows, drawn at random (every allowed
    one when there are fewer).

    Seeded, so a rerun draws the same points and a resumed sweep finds its jobs.
    """
    size = grid_size(space)
    if keep is None:
        if count >= size:
            return grid(space)
        indices = random.Random(seed).sample(range(size), count)
        return [point(space, i) for i in indices]
    rng = random.Random(seed)
    if size <= _SHUFFLE_LIMIT:  # draw from the whole grid in a seeded order
        order: Iterable[int] = rng.sample(range(size), size)
    else:  # too large to shuffle: random draws, given up after many misses
        order = (rng.randrange(size) for _ in range(count * _DRAWS_PER_POINT))
    chosen: list[dict[str, Value]] = []
    seen: set[int] = set()
    for index in order:
        if index in seen:
            continue
        seen.add(index)
        values = point(space, index)
        if keep(values):
            chosen.append(values)
            if len(chosen) == count:
                break
    return chosen


_SHUFFLE_LIMIT = 1_000_000
_DRAWS_PER_POINT = 50


def label(values: Values) -> str:
    """A short, stable name for a parameter set: `fast=10,slow=30`, or a hash when long."""
    text = ",".join(f"{k}={_text(v)}" for k, v in sorted(values.items()))
    if _LABEL_SAFE.match(text):
        return text
    digest = hashlib.sha256(canonical(values).encode()).hexdigest()[:12]
    return f"p-{digest}"


def name_suffix(values: Values) -> str:
    """The parameter part of a run's name, safe in file names: `fast:10+slow:30`.

    Keys are identifiers and values may not hold `:` or `+`, so distinct sets
    never share a suffix; anything else (or a long one) is a hash.
    """
    parts = [(k, _text(v)) for k, v in sorted(values.items())]
    text = "+".join(f"{k}:{v}" for k, v in parts)
    if _NAME_SAFE.match(text) and not any(":" in v or "+" in v for _, v in parts):
        return text
    return f"p-{hashlib.sha256(canonical(values).encode()).hexdigest()[:12]}"


def canonical(values: Values) -> str:
    """JSON with sorted keys: the identity of a parameter set in keys and files."""
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"))


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)
