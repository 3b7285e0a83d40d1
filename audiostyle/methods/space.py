"""Search spaces: the primitives a method declares its default space with, and everything about a space
that needs no Ray (its Optuna distributions, its manifest description, restricting it, first points).

A method declares its default space as ``{config_field: Dimension}``; :mod:`audiostyle.sweep` searches it, and
the notebooks and ``best`` read the same declaration. Optuna is imported only by :func:`to_optuna` and
:func:`optuna_params`.

Conditional spaces: a :class:`Given` dimension draws its field from the case its parent field took (e.g. the
shallow CNN's 2-D convolutions draw fewer, narrower filters than its 1-D ones). Optuna searches such a space
define-by-run (:class:`DefineByRun`): each case is its own Optuna parameter, named ``<field>|<parent>=<value>``
(:func:`param_name`), so TPE models each case's values apart, and the config the trial receives holds the field
itself (:func:`from_params`). Everything that needs one range per field (the notebooks' importances and parallel
coordinates, ``--help``'s envelope, PBT) reads :func:`flat`, each conditional field's envelope over its cases.
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


Plain = Union[Float, Int, Choice]


@dataclass(frozen=True)
class Given:
    """A field drawn from ``cases[v]`` when the field ``on`` (a :class:`Choice` declared before it in the same
    space) took the value ``v``; every option of ``on`` has its case. ``cases`` is kept as ``((v, dimension), ...)``.
    """

    on: str
    cases: tuple[tuple[Any, Plain], ...]

    def __init__(self, on: str, cases: Mapping[Any, Plain] | Iterable[tuple[Any, Plain]]) -> None:
        pairs = tuple(cases.items()) if isinstance(cases, Mapping) else tuple(cases)
        if not pairs or any(isinstance(dim, Given) for _, dim in pairs):
            raise AudiostyleError(f"Given(on={on!r}): give one plain dimension (Float, Int, Choice) per case.")
        object.__setattr__(self, "on", on)
        object.__setattr__(self, "cases", pairs)

    def case(self, value: Any) -> Plain:
        """The dimension drawn when ``on`` is ``value``; :class:`AudiostyleError` when it has no case."""
        for key, dim in self.cases:
            if key == value:
                return dim
        known = ", ".join(repr(k) for k, _ in self.cases)
        raise AudiostyleError(f"{self.on}={value!r} has no case here (cases: {known}).")


Dimension = Union[Float, Int, Choice, Given]
Space = dict[str, Dimension]

_TYPES: dict[str, type] = {"Float": Float, "Int": Int, "Choice": Choice, "Given": Given}


def check_space(space: Space) -> Space:
    """``space`` unchanged, or :class:`AudiostyleError` when a :class:`Given` field's parent is not a Choice
    declared before it, or an option of that Choice has no case."""
    seen: dict[str, Dimension] = {}
    for name, dim in space.items():
        if isinstance(dim, Given):
            parent = seen.get(dim.on)
            if not isinstance(parent, Choice):
                raise AudiostyleError(f"search dimension {name} depends on {dim.on!r}, which is not a Choice declared "
                                      "before it in the space: declare the parent first.")
            missing = [o for o in parent.options if o not in [k for k, _ in dim.cases]]
            if missing:
                raise AudiostyleError(f"search dimension {name}: {dim.on}={missing[0]!r} has no case; give one per "
                                      f"option of {dim.on}.")
        seen[name] = dim
    return space


def resolve(dim: Dimension, point: Mapping[str, Any]) -> Plain:
    """The plain dimension a field is drawn from given the values drawn before it (``point``)."""
    return dim.case(point[dim.on]) if isinstance(dim, Given) else dim


def envelope(dim: Dimension) -> Plain:
    """A plain dimension covering every case of ``dim``: the union of options when every case is a Choice, else
    the widest bounds (an Int when every case holds integers only)."""
    if not isinstance(dim, Given):
        return dim
    dims = [d for _, d in dim.cases]
    if all(isinstance(d, Choice) for d in dims):
        return Choice(tuple(dict.fromkeys(o for d in dims for o in d.options)))
    ends = [v for d in dims for v in (d.options if isinstance(d, Choice) else (d.low, d.high))]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ends):
        raise AudiostyleError(f"Given(on={dim.on!r}) mixes ranges and non-numeric options: no one range covers it.")
    log = any(getattr(d, "log", False) for d in dims)
    if all(isinstance(d, (Int, Choice)) for d in dims) and all(isinstance(v, int) for v in ends):
        return Int(min(ends), max(ends), log=log)
    return Float(float(min(ends)), float(max(ends)), log=log)


def flat(space: Space) -> dict[str, Plain]:
    """``space`` with each conditional field replaced by its :func:`envelope` (one range per field)."""
    return {name: envelope(dim) for name, dim in space.items()}


def is_conditional(space: Space) -> bool:
    return any(isinstance(dim, Given) for dim in space.values())


def _distribution(dim: Plain) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dim, Float):
        return FloatDistribution(float(dim.low), float(dim.high), log=dim.log)
    if isinstance(dim, Int):
        return IntDistribution(int(dim.low), int(dim.high), log=dim.log)
    if isinstance(dim, Choice):
        return CategoricalDistribution(list(dim.options))
    raise AudiostyleError(f"search dimension {dim!r} is not a Float, Int or Choice.")


def to_optuna(space: Space) -> dict[str, Any]:
    """Optuna distributions for a space without conditional fields (``{field: BaseDistribution}``), for
    ``OptunaSearch(space=...)``; a conditional space is searched with :class:`DefineByRun`."""
    if is_conditional(space):
        raise AudiostyleError("a conditional space has no fixed distributions: search it with DefineByRun, or "
                              "read flat(space) for one range per field.")
    return {name: _distribution(dim) for name, dim in space.items()}


def param_name(name: str, dim: Dimension, point: Mapping[str, Any]) -> str:
    """The Optuna parameter of field ``name`` in ``point``: the field itself, or ``<field>|<parent>=<value>``."""
    return f"{name}|{dim.on}={point[dim.on]}" if isinstance(dim, Given) else name


def optuna_params(space: Space, config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``config``'s searched values as Optuna parameters, and their distributions: ``(params, distributions)``.
    Fields ``config`` lacks are left out (with those that depend on them)."""
    params, distributions = {}, {}
    for name, dim in space.items():
        if name not in config or (isinstance(dim, Given) and dim.on not in config):
            continue
        key = param_name(name, dim, config)
        params[key], distributions[key] = config[name], _distribution(resolve(dim, config))
    return params, distributions


def from_params(space: Space, params: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna parameters (as :func:`optuna_params` names them) back to config fields; other keys kept as given."""
    fields = {k: v for k, v in params.items() if "|" not in k}
    for name, dim in space.items():
        if isinstance(dim, Given) and dim.on in fields:
            key = param_name(name, dim, fields)
            if key in params:
                fields[name] = params[key]
    return fields


@dataclass(frozen=True)
class DefineByRun:
    """``OptunaSearch``'s define-by-run ``space`` (picklable: Ray saves the searcher with its space): called with an
    Optuna trial, suggests every field of ``space`` in declaration order, a conditional one under its case's
    parameter name (:func:`param_name`)."""

    space: Space

    def __post_init__(self) -> None:
        check_space(self.space)

    def __call__(self, trial: Any) -> None:
        point: dict[str, Any] = {}
        for name, dim in self.space.items():
            plain = resolve(dim, point)
            key = param_name(name, dim, point)
            if isinstance(plain, Float):
                point[name] = trial.suggest_float(key, float(plain.low), float(plain.high), log=plain.log)
            elif isinstance(plain, Int):
                point[name] = trial.suggest_int(key, int(plain.low), int(plain.high), log=plain.log)
            else:
                point[name] = trial.suggest_categorical(key, list(plain.options))


def contains(dim: Dimension, value: Any, point: Mapping[str, Any] | None = None) -> bool:
    """Whether ``value`` lies in ``dim`` (bounds inclusive; a Choice compares by equality); a conditional ``dim``
    is resolved on ``point`` (the other fields' values), or checked against its envelope without one."""
    if isinstance(dim, Given):
        try:
            dim = resolve(dim, point) if point is not None and dim.on in point else envelope(dim)
        except AudiostyleError:
            return False
    if isinstance(dim, Choice):
        return value in dim.options
    try:
        return dim.low <= value <= dim.high
    except TypeError:
        return False


def restrict(space: Space, fixed: Mapping[str, Any]) -> Space:
    """The space without the fields that ``fixed`` (the sweep's overrides) pins to one value; a conditional field
    whose parent is pinned becomes its case's plain dimension."""
    pinned = sorted(set(space) & set(fixed))
    if pinned:
        log.info("fixed by overrides, not searched: %s", ", ".join(pinned))
    return {k: resolve(v, fixed) if isinstance(v, Given) and v.on in fixed else v
            for k, v in space.items() if k not in fixed}


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
        kept = {k: v for k, v in point.items() if k in space and contains(space[k], v, point)}
        dropped = sorted(set(point) - set(kept))
        if dropped:
            log.info("best-known point %s: not searched here, dropped %s", dict(point), ", ".join(dropped))
        if not kept:
            continue
        for name, dim in space.items():
            if name in kept and not contains(dim, kept[name], kept):  # its parent took another case
                del kept[name]
            if name not in kept:
                default, plain = defaults.get(name), resolve(dim, kept)
                kept[name] = default if default is not None and contains(plain, default) else _fallback(plain)
        if kept not in out:
            out.append(kept)
    return out


def _fallback(dim: Plain) -> Any:
    return dim.options[0] if isinstance(dim, Choice) else dim.low


def _describe(dim: Dimension) -> dict[str, Any]:
    if isinstance(dim, Given):
        return {"type": "Given", "on": dim.on, "cases": [[key, _describe(d)] for key, d in dim.cases]}
    return {"type": type(dim).__name__, **dataclasses.asdict(dim)}


def describe(space: Space) -> dict[str, dict[str, Any]]:
    """A JSON-able description of a space (for the sweep manifest): ``{field: {"type": "Float", ...}}``."""
    return {name: _describe(dim) for name, dim in space.items()}


def _from_description(name: str, spec: Mapping[str, Any]) -> Dimension:
    spec = dict(spec)
    kind = _TYPES.get(spec.pop("type", ""))
    if kind is None:
        raise AudiostyleError(f"sweep manifest: dimension {name}={spec!r} has no known type (Float, Int, Choice, "
                              "Given).")
    if kind is Given:
        return Given(spec["on"], [(key, _from_description(name, d)) for key, d in spec["cases"]])
    if kind is Choice:
        spec["options"] = tuple(spec["options"])
    return kind(**spec)


def from_description(described: Mapping[str, Mapping[str, Any]]) -> Space:
    """The inverse of :func:`describe` (Choice options come back as a tuple)."""
    return {name: _from_description(name, spec) for name, spec in described.items()}


def draw(space: Space, rng: Any) -> dict[str, Any]:
    """One random point of ``space`` (uniform, log-uniform on log axes, choices equally likely), from a
    ``numpy.random.Generator``."""
    import math

    point: dict[str, Any] = {}
    for name, dim in space.items():
        dim = resolve(dim, point)
        if isinstance(dim, Choice):
            point[name] = dim.options[int(rng.integers(len(dim.options)))]
            continue
        low, high = (math.log(dim.low), math.log(dim.high)) if dim.log else (dim.low, dim.high)
        value = rng.uniform(low, high)
        value = math.exp(value) if dim.log else value
        point[name] = min(max(int(round(value)), dim.low), dim.high) if isinstance(dim, Int) else float(value)
    return point
