"""Schedulers: early stopping (ASHA, and its multi-objective form) and population-based training.

:func:`make_scheduler` builds the plan's scheduler:

``asha``, one objective
    Ray Tune's ``ASHAScheduler`` on the objective's ``tracked.*`` value (the headline unless objectives were given).
``asha``, several objectives (``--pareto``)
    :class:`ParetoASHA`: asynchronous successive halving that ranks the trials at each rung by non-dominated
    rank over all the objectives (in the spirit of Syne Tune's MOASHA), so a trial on the Pareto front is never
    stopped for a poor scalar headline.
``pbt``
    Ray Tune's ``PopulationBasedTraining``, mutating only the fields a checkpoint survives
    (:func:`pbt_mutations`). Synchronous: at every ``grace`` steps the whole population is ranked at the same
    step, the top quarter saves and the bottom quarter exploits it. Asynchronous PBT ranks each trial against
    whatever the others last reported and skips an exploit when the donor's checkpoint is not yet saved, so which
    trials exploit depends on timing; the synchronous form costs a pause and a restore per interval and makes
    the exploits a function of the seed and the scores.
``none``
    Every trial runs its whole budget.

The rungs sit at ``grace · 3^k`` steps; ``max_t`` is one past the budget, as ASHA would otherwise stop every
trial at its last report, before the trial's final result (status, final metrics, artifacts) arrives.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any, Mapping, Sequence

import numpy as np
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining, TrialScheduler

from audiostyle.errors import AudiostyleError
from audiostyle.methods.space import Float, Int, Space
from audiostyle.sweep._keys import STEP, tracked

SCHEDULERS = ("asha", "pbt", "none")
REDUCTION_FACTOR = 3
MIN_REPORTS = 4
"""Reports a trial makes over its step budget at least, unless the user fixed its cadence: with fewer, ASHA meets
a trial at its last report only and can stop nothing early (:func:`report_cadence`)."""


def report_cadence(config: Any, budget: int, fixed: Mapping[str, Any]) -> dict[str, int]:
    """Config values that make a trial report at least :data:`MIN_REPORTS` times over ``budget`` steps.

    ``report_every`` is lowered to ``budget // MIN_REPORTS`` when the config reports less often and the user
    ``fixed`` neither it nor ``checkpoint_every``; a ``checkpoint_every`` above 0 keeps its ratio to it. ``{}`` when
    nothing changes (or the config has no cadence).
    """
    every = getattr(config, "report_every", None)
    if not every or budget < 1 or budget // every >= MIN_REPORTS or {"report_every", "checkpoint_every"} & set(fixed):
        return {}
    new = max(1, budget // MIN_REPORTS)
    checkpoint = getattr(config, "checkpoint_every", None)
    if not checkpoint:
        return {"report_every": new}
    return {"report_every": new, "checkpoint_every": new * max(1, round(checkpoint / every))}


def nondominated_ranks(costs: np.ndarray) -> np.ndarray:
    """The non-dominated sorting rank of each row of ``costs`` (lower is better in every column): 0 for the
    Pareto front, 1 for the front once rank 0 is removed, and so on."""
    n = len(costs)
    ranks = np.full(n, -1)
    left = np.arange(n)
    rank = 0
    while len(left):
        sub = costs[left]
        dominated = [bool(np.any(np.all(sub <= c, axis=1) & np.any(sub < c, axis=1))) for c in sub]
        front = left[~np.array(dominated, dtype=bool)]
        ranks[front] = rank
        left = np.setdiff1d(left, front)
        rank += 1
    return ranks


class ParetoASHA(FIFOScheduler):
    """Asynchronous successive halving on several objectives (MOASHA-like).

    When a trial reaches a rung, its objective values join those recorded there. It continues when it is
    non-dominated among them, or when its place in the order (non-dominated rank, then the first objective)
    is among the best ``1 / reduction_factor`` of them; otherwise it is stopped. Trials whose values are not
    yet finite at a rung continue (a diverging trial ends by itself).

    Parameters
    ----------
    metrics, modes : sequence of str
        Result keys of the objectives and their directions (``"max"``/``"min"``).
    time_attr : str
        Result key of the trial's progress (the method's step).
    max_t, grace_period, reduction_factor : int
        As for Ray Tune's ``ASHAScheduler``.
    """

    def __init__(self, metrics: Sequence[str], modes: Sequence[str], *, time_attr: str, max_t: int,
                 grace_period: int, reduction_factor: int = REDUCTION_FACTOR) -> None:
        super().__init__()
        self._metrics = list(metrics)
        self._signs = np.array([-1.0 if mode == "max" else 1.0 for mode in modes])
        self._time_attr, self._rf = time_attr, reduction_factor
        rungs, rung = [], grace_period
        while rung < max_t:
            rungs.append(rung)
            rung *= reduction_factor
        self.rungs: dict[int, dict[str, np.ndarray]] = {r: {} for r in reversed(rungs)}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """CONTINUE or STOP the trial at the highest rung it has reached and not yet been recorded at."""
        if self._time_attr not in result:
            return TrialScheduler.CONTINUE
        progress = result[self._time_attr]
        for rung, recorded in self.rungs.items():
            if progress < rung or trial.trial_id in recorded:
                continue
            costs = np.array([float(result.get(m, math.nan)) for m in self._metrics]) * self._signs
            if not np.all(np.isfinite(costs)):
                return TrialScheduler.CONTINUE
            recorded[trial.trial_id] = costs
            return TrialScheduler.CONTINUE if self._promoted(recorded, trial.trial_id) else TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def _promoted(self, recorded: dict[str, np.ndarray], trial_id: str) -> bool:
        ids = list(recorded)
        costs = np.stack([recorded[i] for i in ids])
        ranks = nondominated_ranks(costs)
        mine = ids.index(trial_id)
        if ranks[mine] == 0:
            return True
        order = sorted(range(len(ids)), key=lambda i: (ranks[i], costs[i][0]))
        return order.index(mine) < math.ceil(len(ids) / self._rf)

    def debug_string(self) -> str:
        return "ParetoASHA: " + ", ".join(f"rung {r}: {len(v)} trials" for r, v in sorted(self.rungs.items()))


def mutable_space(space: Space) -> Space:
    """The fields PBT may change mid-trial: the continuous ones (:class:`Float`: learning rates, loss weights).

    Integers and choices (network widths, depths, feature types) shape the networks and their checkpoints: a
    trial keeps the values it started with, as a donor's checkpoint would not load into another architecture.
    """
    return {name: dim for name, dim in space.items() if isinstance(dim, Float)}


def pbt_mutations(space: Space) -> dict[str, Any]:
    """PBT's ``hyperparam_mutations``: a Tune domain for each field of :func:`mutable_space`."""
    from audiostyle.sweep._search import to_tune

    return to_tune(mutable_space(space))


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


def _pbt(plan: Any) -> PopulationBasedTraining:
    mutations = pbt_mutations(plan.space)
    if not mutations:
        raise AudiostyleError(
            f"{plan.method}: scheduler='pbt' mutates continuous fields (Float: learning rates, loss weights) "
            f"and the searched space has none ({', '.join(plan.space)}): use scheduler='asha'."
        )
    random.seed(plan.seed)  # PBT draws its exploit/explore choices from Python's global generator
    return PopulationBasedTraining(
        time_attr=STEP,
        metric=tracked(plan.objectives[0].metric),
        mode=plan.objectives[0].mode,
        perturbation_interval=plan.grace_steps,
        synch=True,
        hyperparam_mutations=mutations,
        custom_explore_fn=ClipToSpace(mutable_space(plan.space)),
    )


def make_scheduler(plan: Any) -> Any:
    """The plan's scheduler (see the module notes)."""
    if plan.scheduler == "pbt":
        return _pbt(plan)
    if plan.scheduler == "none":
        return FIFOScheduler()
    max_t = plan.budget_steps + 1
    if len(plan.objectives) > 1:
        return ParetoASHA([tracked(o.metric) for o in plan.objectives], [o.mode for o in plan.objectives],
                          time_attr=STEP, max_t=max_t, grace_period=plan.grace_steps)
    first = plan.objectives[0]
    return ASHAScheduler(time_attr=STEP, metric=tracked(first.metric), mode=first.mode, max_t=max_t,
                         grace_period=plan.grace_steps, reduction_factor=REDUCTION_FACTOR)
