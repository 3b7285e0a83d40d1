"""Objectives: a metric name with the direction that is better, built on :mod:`audiostyle.metrics._names`.

The methods (their headline), the sweep (searcher, scheduler, ranking), the analysis and ``best`` take their
objectives from here; names and directions stay defined once, in ``_names``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping

from audiostyle.errors import AudiostyleError, check_choice
from audiostyle.metrics._names import HEADLINE, METRIC_DIRECTIONS, PARETO

MODES = ("max", "min")


@dataclass(frozen=True)
class Objective:
    """A metric name and the direction that is better (``"max"`` or ``"min"``)."""

    metric: str
    mode: Literal["max", "min"]

    def __post_init__(self) -> None:
        check_choice(f"mode of objective {self.metric!r}", self.mode, MODES)


def objective(metric: str) -> Objective:
    """The common metric ``metric`` with its direction (:data:`METRIC_DIRECTIONS`; maximised if not common)."""
    return Objective(metric, METRIC_DIRECTIONS.get(metric, "max"))


COMMON_OBJECTIVES: tuple[Objective, ...] = tuple(objective(name) for name in METRIC_DIRECTIONS)
"""The ranked common metrics as objectives, in :data:`METRIC_DIRECTIONS` order."""

HEADLINE_OBJECTIVE = objective(HEADLINE)
"""The headline of every transfer method: the one scalar a sweep ranks and early-stops on."""

PARETO_OBJECTIVES = tuple(Objective(name, mode) for name, mode in PARETO)
"""The default multi-objective pair: melody kept against timbre moved (:data:`PARETO`)."""


def parse_objectives(objectives: Iterable[Any] | None, headline: Objective) -> list[Objective]:
    """Objectives from ``Objective``, ``(metric, mode)``, ``{"metric", "mode"}`` or ``"metric[:mode]"``.

    A missing mode is the metric's direction (:data:`METRIC_DIRECTIONS`). None or empty gives ``[headline]``.
    """
    if not objectives:
        return [headline]
    out: list[Objective] = []
    for item in objectives:
        if isinstance(item, Objective):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(Objective(item["metric"], item.get("mode") or objective(item["metric"]).mode))
        elif isinstance(item, str):
            metric, _, mode = item.partition(":")
            out.append(Objective(metric, mode or objective(metric).mode))  # type: ignore[arg-type]
        else:
            try:
                out.append(Objective(*item))
            except TypeError as exc:
                raise AudiostyleError(f"objective {item!r}: give (metric, mode), e.g. ('timbre_dist', 'min').") from exc
    return out
