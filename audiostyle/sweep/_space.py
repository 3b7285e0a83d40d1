"""Search spaces for sweeps: audiostyle's :mod:`~audiostyle.space` dimensions in Optuna and Ray Tune terms.

Also the small, Ray-free helpers a sweep's command line needs: ``--set key=value`` parsing and the
(de)serialisation of a space in a sweep manifest, so ``--resume`` rebuilds exactly the space it ran with.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
from typing import Any, Iterable, Mapping

from audiostyle.errors import AudiostyleError
from audiostyle.space import Choice, Dimension, Float, Int, Space

log = logging.getLogger(__name__)

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


def to_tune(space: Space) -> dict[str, Any]:
    """Ray Tune sampling domains for a space (used by PBT's mutations and random search)."""
    from ray import tune

    out: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, Float):
            out[name] = tune.loguniform(dim.low, dim.high) if dim.log else tune.uniform(dim.low, dim.high)
        elif isinstance(dim, Int):
            # Tune's integer upper bounds are exclusive; audiostyle's are inclusive.
            out[name] = tune.lograndint(dim.low, dim.high + 1) if dim.log else tune.randint(dim.low, dim.high + 1)
        elif isinstance(dim, Choice):
            out[name] = tune.choice(list(dim.options))
        else:
            raise AudiostyleError(f"search dimension {name}={dim!r} is not a Float, Int or Choice.")
    return out


def pbt_mutations(space: Space) -> dict[str, Any]:
    """PBT's ``hyperparam_mutations``: Tune domains for numbers, plain lists for choices.

    (PBT perturbs a Tune domain by multiplying it, which fails for categorical values.)
    """
    tune_space = to_tune(space)
    return {k: list(d.options) if isinstance(d, Choice) else tune_space[k] for k, d in space.items()}


@dataclasses.dataclass(frozen=True)
class ClipToSpace:
    """PBT's ``custom_explore_fn``: perturbed numbers clipped back into their dimension (ints rounded)."""

    space: dict

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for name, dim in self.space.items():
            if name in config and isinstance(dim, (Float, Int)):
                value = min(max(config[name], dim.low), dim.high)
                config[name] = int(round(value)) if isinstance(dim, Int) else float(value)
        return config


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


def parse_value(text: str) -> Any:
    """A ``--set`` value: a Python literal (``3``, ``1e-3``, ``True``, ``'x'``, ``[1, 2]``) or else the bare string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["alpha=0.01", "activation=tanh"]`` → ``{"alpha": 0.01, "activation": "tanh"}``.

    Raises :class:`AudiostyleError` for an item without ``=``.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AudiostyleError(f"--set {item!r}: write KEY=VALUE, e.g. --set alpha=0.006 --set activation=tanh.")
        out[key.strip()] = parse_value(value)
    return out
