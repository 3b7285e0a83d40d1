"""What a sweep optimises: objectives, the common metrics with their better direction, trial statuses.

Defined once here and imported by the methods (their headline), the sweep (searcher, scheduler, ranking),
the store (status validation), the analysis and ``best``. Metric names come from :mod:`audiostyle.metrics`;
this module adds only the direction of each and names the headline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal, Mapping

from audiostyle.errors import AudiostyleError, check_choice
from audiostyle import metrics

MODES = ("max", "min")

DIRECTIONS: dict[str, str] = dict(metrics.METRIC_DIRECTIONS)
"""``{ranked common metric: "max" | "min"}`` (:data:`audiostyle.metrics.METRIC_DIRECTIONS`)."""

HEADLINE_METRIC = metrics.HEADLINE
"""The headline of every transfer method: the one scalar a sweep ranks and early-stops on."""

FINISHED, FAILED, STOPPED = "finished", "failed", "stopped"
STATUSES = (FINISHED, FAILED, STOPPED)
"""Trial statuses (the store's ``status`` column); ``stopped`` = early-stopped by the scheduler."""

USABLE_STATUSES = (FINISHED, STOPPED)
"""Statuses whose metrics are valid (a stopped trial's are those of its last report)."""


@dataclass(frozen=True)
class Objective:
    """A metric name and the direction that is better (``"max"`` or ``"min"``)."""

    metric: str
    mode: Literal["max", "min"]

    def __post_init__(self) -> None:
        check_choice(f"mode of objective {self.metric!r}", self.mode, MODES)


def objective(metric: str) -> Objective:
    """The common metric ``metric`` with its direction (:data:`DIRECTIONS`; maximised if not common)."""
    return Objective(metric, DIRECTIONS.get(metric, "max"))  # type: ignore[arg-type]


COMMON_OBJECTIVES: tuple[Objective, ...] = tuple(objective(name) for name in DIRECTIONS)
"""The ranked common metrics as objectives, in :data:`audiostyle.metrics.METRIC_DIRECTIONS` order."""

HEADLINE = objective(HEADLINE_METRIC)
"""The headline of every transfer method."""

PARETO = tuple(Objective(name, mode) for name, mode in metrics.PARETO)
"""The default multi-objective pair: melody kept against timbre moved (:data:`audiostyle.metrics.PARETO`)."""


def parse_objectives(objectives: Iterable[Any] | None, headline: Objective) -> list[Objective]:
    """Objectives from ``Objective``, ``(metric, mode)``, ``{"metric", "mode"}`` or ``"metric[:mode]"``.

    A missing mode is the metric's direction (:data:`DIRECTIONS`). None or empty gives ``[headline]``.
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
