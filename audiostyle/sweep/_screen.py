"""Configs screened before they cost a trial: those that cannot run on the sweep's prepared data, and those far
costlier per step than the space's typical config.

The method says what it can (:meth:`~audiostyle.methods.base.Method.screen`,
:meth:`~audiostyle.methods.base.Method.step_cost` on :meth:`~audiostyle.methods.base.Method.trial_shape`); the
searcher (:class:`~audiostyle.sweep._search.RestorableOptunaSearch`) asks :class:`ConfigScreen` before each launch
and tells Optuna a screened config failed, with the reason as its ``screened`` user attribute, so TPE learns to
avoid the region. A config the user asked for (a first point: ``--config``, the reports' configs) is never
screened out for its cost, nor is any config when the fixed values alone make the whole space costly: the
median is taken over the space with those values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from audiostyle.errors import AudiostyleError
from audiostyle.methods.base import Method
from audiostyle.methods.space import Space, draw

log = logging.getLogger(__name__)

MAX_COST_RATIO = 10.0
"""A drawn config estimated to cost more than this many times the space's median per step is not launched."""
COST_DRAWS = 256
"""Random points of the space the median cost is taken over."""


@dataclass
class ConfigScreen:
    """``screen(params) -> reason or None`` for the searcher's proposals (the searched values only)."""

    method: Method
    overrides: dict[str, Any]
    shape: dict[str, int]
    median_cost: float | None = None
    asked: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def build(cls, method: Method, overrides: Mapping[str, Any], space: Space, shape: Mapping[str, int],
              asked: Sequence[Mapping[str, Any]] = (), seed: int = 0) -> "ConfigScreen":
        """The screen of a sweep: the median estimated step cost over :data:`COST_DRAWS` runnable points."""
        screen = cls(method, dict(overrides), dict(shape), None, [dict(p) for p in asked])
        rng = np.random.default_rng(seed)
        costs = [c for c in (screen._cost(draw(space, rng)) for _ in range(COST_DRAWS)) if c is not None]
        screen.median_cost = float(np.median(costs)) if costs else None
        return screen

    def _config(self, params: Mapping[str, Any]) -> Any:
        return self.method.make_config({**self.overrides, **params})

    def _cost(self, params: Mapping[str, Any]) -> float | None:
        try:
            config = self._config(params)
        except AudiostyleError:
            return None
        return None if self.method.screen(config, self.shape) else self.method.step_cost(config, self.shape)

    def __call__(self, params: Mapping[str, Any]) -> str | None:
        try:
            config = self._config(params)
        except AudiostyleError as exc:
            return str(exc)
        problem = self.method.screen(config, self.shape)
        if problem or not self.median_cost or any(all(params.get(k) == v for k, v in p.items()) for p in self.asked if p):
            return problem
        cost = self.method.step_cost(config, self.shape)
        if cost is not None and cost > MAX_COST_RATIO * self.median_cost:
            return (f"estimated at {cost / self.median_cost:.0f}× the median cost per step of the space (limit "
                    f"{MAX_COST_RATIO:g}×); fix these values with --set (or --config) to run it anyway")
        return None
