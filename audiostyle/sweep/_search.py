"""Optuna as the sweep's searcher, made safe to restore after the driver died.

Ray Tune snapshots its trial list and its searcher in separate files. When the driver is killed while
a snapshot is being written (seen with storage on S3, where files are uploaded one by one), the
restored trial list can hold trials the restored searcher never suggested. Ray's ``OptunaSearch``
then fails the whole sweep with a ``KeyError`` on the first result of such a trial, and Ray's
``ConcurrencyLimiter`` silently drops their completion (so Optuna never learns them).

:class:`RestorableOptunaSearch` limits concurrency itself (so Tune adds no ``ConcurrencyLimiter``),
ignores intermediate results of trials it does not know, and *adopts* their final results into the
Optuna study (``create_trial`` + ``add_trial``), so the study ends with every trial of the sweep. After
a restore it forgets which trials were live: a trial the snapshot thought running may no longer exist
and must not hold a concurrency slot forever (Ray's resource limits still bound what runs at once).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import optuna
from ray.tune.search.optuna import OptunaSearch

log = logging.getLogger(__name__)


def _params(result: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """A trial's searched values from its result (``config`` dict or flattened ``config/<name>`` keys)."""
    config = result.get("config") if isinstance(result.get("config"), Mapping) else {}
    return {n: config[n] if n in config else result[f"config/{n}"] for n in names if n in config or f"config/{n}" in result}


class RestorableOptunaSearch(OptunaSearch):
    """``OptunaSearch`` with its own concurrency limit and tolerance of trials it did not suggest."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_live: int | None = None
        self._live: set[str] = set()

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Limit suggestions to ``max_concurrent`` live trials (Tune then adds no ConcurrencyLimiter)."""
        self._max_live = int(max_concurrent)
        return True

    def suggest(self, trial_id: str) -> Any:
        if self._max_live is not None and len(self._live) >= self._max_live:
            return None
        suggestion = super().suggest(trial_id)
        if isinstance(suggestion, dict):
            self._live.add(trial_id)
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._ot_trials:
            super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._live.discard(trial_id)
        if trial_id in self._ot_trials:
            super().on_trial_complete(trial_id, result=result, error=error)
        elif trial_id not in self._completed_trials:
            self._adopt(trial_id, result or {}, error)

    def _adopt(self, trial_id: str, result: Mapping[str, Any], error: bool) -> None:
        """Add a trial this searcher never suggested (lost from its snapshot) to the study."""
        names = list(self._space)
        params = _params(result, names)
        metrics = self._metric if isinstance(self._metric, list) else [self._metric]
        values = [result.get(m) for m in metrics]
        complete = not error and len(params) == len(names) and all(
            v is not None and math.isfinite(float(v)) for v in values
        )
        trial = optuna.trial.create_trial(
            params=params,
            distributions={n: self._space[n] for n in params},
            values=[float(v) for v in values] if complete else None,
            state=optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.FAIL,
        )
        self._ot_study.add_trial(trial)
        self._completed_trials.add(trial_id)
        log.info("searcher adopted trial %s (not in its restored snapshot) into the Optuna study", trial_id)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self._live = set()
