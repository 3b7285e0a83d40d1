"""Search-space primitives, independent of Ray and Optuna.

A method declares its default space as ``{config_field: Dimension}``; ``audiostyle.sweep`` turns each
dimension into the Ray Tune / Optuna distribution it names. Keeping this tiny layer lets methods stay
free of Ray while sweeps, notebooks and ``best`` read the same declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union


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
