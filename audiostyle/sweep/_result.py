"""What a sweep returns: its rows in the store, ranked by :func:`audiostyle.analysis.rank` (the ranking
``python -m audiostyle.best`` uses), its Pareto front, and a printable summary."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from audiostyle import analysis
from audiostyle.metrics import COMMON_METRICS
from audiostyle.metrics import Objective
from audiostyle.store import (
    ARTIFACT_AUDIO, ARTIFACT_SPECTROGRAM, CONFIG_PREFIX, FAILED, METRIC_PREFIX, Store, metric_column,
)
from audiostyle.sweep._plan import Plan


class SweepInterrupted(Exception):
    """SIGINT or SIGTERM stopped the sweep before all its trials ended; ``--resume`` continues it once its
    manifest is stored, else it starts again from nothing.

    Attributes
    ----------
    plan : Plan
    result : SweepResult or None
        The store's rows when the sweep stopped (None when it stopped before Ray Tune ran).
    stored : bool
        Whether the store holds the sweep's manifest (what ``--resume`` reads).
    """

    def __init__(self, plan: Plan, result: "SweepResult | None" = None, stored: bool = True) -> None:
        ended = 0 if result is None else len(result.trials)
        super().__init__(f"sweep {plan.sweep_id} interrupted with {ended} of {plan.samples} trials ended")
        self.plan, self.result, self.stored = plan, result, stored


@dataclass
class SweepResult:
    """What a sweep produced.

    Attributes
    ----------
    plan : Plan
        The sweep as planned (also its manifest in the store).
    trials : pandas.DataFrame
        The sweep's rows in the store (one per trial).
    best : dict or None
        The best usable trial by the first objective (:func:`audiostyle.analysis.rank`).
    pareto : pandas.DataFrame
        Non-dominated trials over the objectives (multi-objective sweeps; else the best row).
    prep_seconds : float
        Driver time to prepare the data (load + prepare, or a cache hit).
    cache_hit : bool
    """

    plan: Plan
    trials: pd.DataFrame
    best: dict[str, Any] | None
    pareto: pd.DataFrame
    prep_seconds: float = math.nan
    cache_hit: bool = False

    @classmethod
    def read(cls, plan: Plan, prep_seconds: float = math.nan, cache_hit: bool = False) -> "SweepResult":
        """The result of ``plan``'s sweep as its store holds it now."""
        trials = Store(plan.store).trials(plan.method, plan.sweep_id)
        ranked = analysis.rank(trials, plan.objectives[0])
        front = analysis.pareto_front(trials, plan.objectives) if len(plan.objectives) > 1 else ranked.head(1)
        best = ranked.iloc[0].to_dict() if len(ranked) else None
        return cls(plan, trials, best, front, prep_seconds, cache_hit)

    sweep_id = property(lambda self: self.plan.sweep_id)
    method = property(lambda self: self.plan.method)
    store = property(lambda self: self.plan.store)
    objectives = property(lambda self: self.plan.objectives)
    experiment_path = property(lambda self: self.plan.experiment_path)

    def all_failed(self) -> str | None:
        """The first trial's error when every trial of the sweep failed (None otherwise)."""
        if not len(self.trials) or set(self.trials["status"]) != {FAILED}:
            return None
        errors = self.trials["error"].dropna()
        return str(errors.iloc[0]).strip().splitlines()[-1] if len(errors) else "no error recorded"

    def summary(self, top: int = 5) -> str:
        """A markdown table of the best ``top`` trials, then the best trial: config, common metrics, the paths of
        its audio (the output; its inputs and target lie beside it) and its figure."""
        obj: Objective = self.objectives[0]
        lines = [f"sweep {self.sweep_id} ({self.method}): {len(self.trials)} trials in {self.store}"]
        if not len(self.trials):
            return lines[0]
        counts = self.trials["status"].value_counts().to_dict()
        lines.append("status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        lines += ["", *_table(analysis.rank(self.trials, obj).head(top), self.trials, self.objectives)]
        if self.best is not None:
            score = _fmt(self.best.get(metric_column(obj.metric)))
            lines += [
                "",
                f"best by {obj.metric} ({obj.mode}): trial {self.best['trial_id']} = {score}",
                "best config: " + json.dumps(analysis.config_of(self.best), sort_keys=True, default=str),
            ]
            found = analysis.metrics_of(self.best)
            lines.append("best metrics: " + ", ".join(f"{m} {_fmt(found[m])}" for m in COMMON_METRICS if m in found))
            for label, key in (("best audio", ARTIFACT_AUDIO), ("best figure", ARTIFACT_SPECTROGRAM)):
                if isinstance(self.best.get(key), str):
                    lines.append(f"{label}: {self.best[key]}")
        if len(self.objectives) > 1:
            lines.append(f"Pareto front over {', '.join(o.metric for o in self.objectives)}: {len(self.pareto)} trials")
        return "\n".join(lines)


def _table(ranked: pd.DataFrame, trials: pd.DataFrame, objectives: list[Objective]) -> list[str]:
    varying = [c for c in ranked.columns if c.startswith(CONFIG_PREFIX) and trials[c].astype(str).nunique() > 1][:6]
    metric_cols = [metric_column(o.metric) for o in objectives if metric_column(o.metric) in ranked]
    cols = ["trial_id", "status", "steps", *metric_cols, *varying]
    header = "| " + " | ".join(c.removeprefix(CONFIG_PREFIX).removeprefix(METRIC_PREFIX) for c in cols) + " |"
    rows = ["| " + " | ".join(_fmt(row[c]) for c in cols) + " |" for _, row in ranked.iterrows()]
    return [header, "|" + "---|" * len(cols), *rows]


def _fmt(value: Any) -> str:
    value = analysis.plain_value(value)
    if value is None:
        return "nan"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
