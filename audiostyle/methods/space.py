"""Search spaces: the primitives a method declares its default space with, and everything about a space
that needs no Ray (its Optuna distributions, its manifest description, restricting it, first points).

A method declares its default space as ``{config_field: Dimension}``; :mod:`audiostyle.sweep` searches it, and
the notebooks and ``best`` read the same declaration. Optuna is imported only by :func:`to_optuna`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Union

from audiostyle.errors import AudiostyleError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Float:
    """A real value in ``[low, high]``, sampled on a log scale when ``log``."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]`` (inclusive), on a log scale when ``log``."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """One of a fixed tuple of options (numbers, strings or booleans)."""

    options: tuple[Any, ...]


Dimension = Union[Float, Int, Choice]
Space = dict[str, Dimension]

_TYPES: dict[str, type] = {"Float": Float, "Int": Int, "Choice": Choice}


def to_optuna(space: Space) -> dict[str, Any]:
    """Optuna distributions for a space (``{field: BaseDistribution}``), for ``OptunaSearch(space=...)``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, Float):
            out[name] = FloatDistribution(float(dim.low), float(dim.high), log=dim.log)
        elif isinstance(dim, Int):
            out[name] = IntDistribution(int(dim.low), int(dim.high), log=dim.log)
        elif isinstance(dim, Choice):
            out[name] = CategoricalDistribution(list(dim.options))
        else:
            raise AudiostyleError(f"search dimension {name}={dim!r} is not a Float, Int or Choice.")
    return out


def contains(dim: Dimension, value: Any) -> bool:
    """Whether ``value`` lies in ``dim`` (bounds inclusive; a Choice compares by equality)."""
    if isinstance(dim, Choice):
        return value in dim.options
    try:
        return dim.low <= value <= dim.high
    except TypeError:
        return False


def restrict(space: Space, fixed: Mapping[str, Any]) -> Space:
    """The space without the fields that ``fixed`` (the sweep's overrides) pins to one value."""
    pinned = sorted(set(space) & set(fixed))
    if pinned:
        log.info("fixed by overrides, not searched: %s", ", ".join(pinned))
    return {k: v for k, v in space.items() if k not in fixed}


def seed_points(
    points: Iterable[Mapping[str, Any]], space: Space, defaults: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The reports' best configs as first points for the searcher, complete over the searched space.

    Keys outside the space (fixed by overrides) and values outside a dimension's range are dropped
    with a log line; a point left empty is skipped. Fields a point does not give take the config's
    default (``defaults``) when it lies in the dimension, else the dimension's low end or first option:
    Ray's OptunaSearch accepts only complete points.
    """
    defaults = defaults or {}
    out: list[dict[str, Any]] = []
    for point in points:
        kept = {k: v for k, v in point.items() if k in space and contains(space[k], v)}
        dropped = sorted(set(point) - set(kept))
        if dropped:
            log.info("best-known point %s: not searched here, dropped %s", dict(point), ", ".join(dropped))
        if not kept:
            continue
        for name, dim in space.items():
            if name not in kept:
                default = defaults.get(name)
                kept[name] = default if default is not None and contains(dim, default) else _fallback(dim)
        if kept not in out:
            out.append(kept)
    return out


def _fallback(dim: Dimension) -> Any:
    return dim.options[0] if isinstance(dim, Choice) else dim.low


def describe(space: Space) -> dict[str, dict[str, Any]]:
    """A JSON-able description of a space (for the sweep manifest): ``{field: {"type": "Float", ...}}``."""
    return {name: {"type": type(dim).__name__, **dataclasses.asdict(dim)} for name, dim in space.items()}


def from_description(described: Mapping[str, Mapping[str, Any]]) -> Space:
    """The inverse of :func:`describe` (Choice options come back as a tuple)."""
    space: Space = {}
    for name, spec in described.items():
        spec = dict(spec)
        kind = _TYPES.get(spec.pop("type", ""))
        if kind is None:
            raise AudiostyleError(f"sweep manifest: dimension {name}={spec!r} has no known type (Float, Int, Choice).")
        if kind is Choice:
            spec["options"] = tuple(spec["options"])
        space[name] = kind(**spec)
    return space


def draw(space: Space, rng: Any) -> dict[str, Any]:
    """One random point of ``space`` (uniform, log-uniform on log axes, choices equally likely), from a
    ``numpy.random.Generator``."""
    import math

    point: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, Choice):
            point[name] = dim.options[int(rng.integers(len(dim.options)))]
            continue
        low, high = (math.log(dim.low), math.log(dim.high)) if dim.log else (dim.low, dim.high)
        value = rng.uniform(low, high)
        value = math.exp(value) if dim.log else value
        point[name] = min(max(int(round(value)), dim.low), dim.high) if isinstance(dim, Int) else float(value)
    return point
