"""Schedulers: early stopping (ASHA, and its multi-objective form) and population-based training.

:func:`make_scheduler` builds the plan's scheduler:

``asha``, one objective
    Ray Tune's ``ASHAScheduler`` on the objective's ``tracked.*`` value (the headline unless objectives were given).
``asha``, several objectives (``--pareto``)
    :class:`ParetoASHA`: asynchronous successive halving that ranks the trials at each rung by non-dominated
    rank over all the objectives (in the spirit of Syne Tune's MOASHA), so a trial on the Pareto front is never
    stopped for a poor scalar headline.
``halving``, one objective
    :class:`SyncHalving`: synchronous successive halving. A trial that reaches a rung waits there, paused with its
    state checkpointed, until every trial that can reach the rung has; then the best ``1 / reduction_factor``
    continue and the rest stop. Which trials continue depends on the scores only, never on the order the trials
    arrive in (asynchronous ASHA passes a trial that beats the trials that reached the rung *before* it, so draws
    that arrive in rising order all run their whole budget). The price: a pause and a restore per rung, and a
    wait at each rung for its slowest trial.
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
trial at its last report, before the trial's final result (status, final metrics, artifacts) arrives. With a
``--trial-budget`` they sit at the same fractions of the trial's seconds instead (:func:`rung_clock`).
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any, Mapping, Sequence

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining, TrialScheduler
from ray.tune.utils import flatten_dict

from audiostyle.errors import AudiostyleError
from audiostyle.methods.space import Float, Int, Space
from audiostyle.sweep._keys import FINAL, METRICS, STEP, TRACKED, TRAIN_SECONDS, tracked

SCHEDULERS = ("asha", "halving", "pbt", "none")
DEFAULT_SCHEDULER = "halving"
"""The scheduler of a sweep on one objective unless asked otherwise (several objectives: ``asha``, its Pareto
form): in ``benchmarks/results/sweep.md`` it reaches the search target on 2 of 3 seeds, in trial-steps and in
CPU-seconds, where ASHA does on none in trial-steps."""
ACTOR_REUSE_LEAKS = ("halving",)
"""Schedulers under which Ray Tune's actor reuse is unreliable, so their sweeps start a fresh actor per trial
(:func:`reuses_actors`). Under halving with reused actors: on 2026-12-05 a 9-trial sweep on 2 CPUs returned with 1 CPU
still allocated 60 s later (no actor or placement group alive; three sweeps in a row), so the next sweep in the same
Ray session found too few; on 2026-12-06 a standalone script of three such sweeps got its CPUs back within 2 s, but
in the test session the halving tests failed again: once the rising-draws test, once a reused actor's Ray result
log that lacked a report the store had (step 2). PBT pauses too and shows neither."""
REDUCTION_FACTOR = 3
MIN_REPORTS = 4
"""Reports a trial makes over its step budget at least, unless the user fixed its cadence: with fewer, ASHA meets
a trial at its last report only and can stop nothing early (:func:`report_cadence`)."""


def report_cadence(config: Any, budget: int, fixed: Mapping[str, Any], scheduler: str = "asha") -> dict[str, int]:
    """Config values that make a trial report at least :data:`MIN_REPORTS` times over ``budget`` steps.

    ``report_every`` is lowered to ``budget // MIN_REPORTS`` when the config reports less often and the user
    ``fixed`` neither it nor ``checkpoint_every``; a ``checkpoint_every`` above 0 keeps its ratio to it. Under
    ``halving`` a trial pauses at the report that reaches a rung, so (unless fixed) it checkpoints at every report:
    a pause after an unsaved report would restart the trial from its last checkpoint (also when the user fixed
    ``report_every``, not when ``checkpoint_every``). ``{}`` when nothing changes (or the config has no cadence).
    """
    every = getattr(config, "report_every", None)
    if not every or budget < 1:
        return {}
    out: dict[str, int] = {}
    checkpoint = getattr(config, "checkpoint_every", None)
    if budget // every < MIN_REPORTS and not {"report_every", "checkpoint_every"} & set(fixed):
        out["report_every"] = max(1, budget // MIN_REPORTS)
        if checkpoint:
            out["checkpoint_every"] = out["report_every"] * max(1, round(checkpoint / every))
    report = out.get("report_every", every)
    if scheduler == "halving" and checkpoint is not None and "checkpoint_every" not in fixed and (
            out.get("checkpoint_every", checkpoint) != report):
        out["checkpoint_every"] = report
    return out


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


def rung_marks(grace_period: float, max_t: float, reduction_factor: int = REDUCTION_FACTOR) -> list[float]:
    """The progress (steps, or seconds: :func:`rung_clock`) at which successive halving ranks trials, ascending:
    ``grace_period · reduction_factor^k`` below ``max_t``."""
    rungs = [grace_period]
    while rungs[-1] * reduction_factor < max_t:
        rungs.append(rungs[-1] * reduction_factor)
    return [r for r in rungs if r < max_t]


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
        Result key of the trial's progress (the method's step, or its running seconds: :func:`rung_clock`).
    max_t, grace_period, reduction_factor : int
        As for Ray Tune's ``ASHAScheduler``.
    """

    def __init__(self, metrics: Sequence[str], modes: Sequence[str], *, time_attr: str, max_t: int,
                 grace_period: int, reduction_factor: int = REDUCTION_FACTOR) -> None:
        super().__init__()
        self._metrics = list(metrics)
        self._signs = np.array([-1.0 if mode == "max" else 1.0 for mode in modes])
        self._time_attr, self._rf = time_attr, reduction_factor
        self.rungs: dict[int, dict[str, np.ndarray]] = {
            r: {} for r in reversed(rung_marks(grace_period, max_t, reduction_factor))}

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


class SyncHalving(FIFOScheduler):
    """Synchronous successive halving on one objective (see the module notes).

    At each rung the trials that can reach it are every trial of the sweep (the first rung) or the ones the
    rung below promoted. A trial that reaches a rung before the others is PAUSEd and *parked*: it holds no
    concurrency slot (:attr:`parked`, which the searcher reads), so new trials start meanwhile. When the last of
    them arrives (or ends), the best ``ceil(n / reduction_factor)`` of the ``n`` recorded continue and the rest
    stop, recorded with their last metrics. A trial is recorded at the first report past a rung that measured the
    objective; one whose value is not finite ranks last.

    Parameters
    ----------
    metric, mode : str
        Result key of the objective and its direction (``"max"``/``"min"``).
    time_attr : str
        Result key of the trial's progress (the method's step, or its running seconds: :func:`rung_clock`).
    max_t, grace_period, reduction_factor : int
        As for Ray Tune's ``ASHAScheduler``.
    """

    def __init__(self, metric: str, mode: str, *, time_attr: str, max_t: int, grace_period: int,
                 reduction_factor: int = REDUCTION_FACTOR) -> None:
        super().__init__()
        self._metric, self._sign = metric, 1.0 if mode == "max" else -1.0
        self._time_attr, self._rf = time_attr, reduction_factor
        self.rungs = rung_marks(grace_period, max_t, reduction_factor)
        self._values: dict[int, dict[str, float]] = {r: {} for r in self.rungs}
        """rung -> trial id -> its value there, signed so that higher is better"""
        self._promoted: dict[int, set[str]] = {}
        """decided rungs -> the ids that continue past them"""
        self._added: set[str] = set()
        self._ended: set[str] = set()
        self.parked: set[str] = set()
        """ids of the trials paused at a rung that is not decided yet"""

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._added.add(trial.trial_id)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """CONTINUE, or PAUSE at a rung until it is decided, or STOP when the rung is decided against the trial."""
        if self._time_attr not in result or result.get(FINAL) or not self._measured(result):
            return TrialScheduler.CONTINUE
        rung = next((r for r in self.rungs if r <= result[self._time_attr] and trial.trial_id not in self._values[r]),
                    None)
        if rung is None:
            return TrialScheduler.CONTINUE
        value = float(result.get(self._metric, math.nan)) * self._sign
        value = value if math.isfinite(value) else -math.inf
        if rung in self._promoted:  # it comes late (a restored sweep): it continues if it beats a promoted trial
            floor = min(self._values[rung][i] for i in self._promoted[rung])
            return TrialScheduler.CONTINUE if value >= floor else TrialScheduler.STOP
        self._values[rung][trial.trial_id] = value
        if self._complete(tune_controller, rung):
            self._decide(tune_controller, rung)
            return TrialScheduler.CONTINUE if trial.trial_id in self._promoted[rung] else TrialScheduler.STOP
        self.parked.add(trial.trial_id)
        return TrialScheduler.PAUSE

    def _measured(self, result: dict) -> bool:
        """Whether this report measured the objective (a report of losses alone carries its last value forward,
        and no checkpoint to pause at): a trial is ranked at a rung on a fresh value only."""
        reported = result.get(METRICS)
        return not isinstance(reported, Mapping) or self._metric.removeprefix(TRACKED) in reported

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self.on_trial_remove(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self.on_trial_remove(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        """A trial that ends no longer holds up a rung."""
        self._ended.add(trial.trial_id)
        self.parked.discard(trial.trial_id)
        self._decide_ready(tune_controller)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        """A new trial first, else a paused one that is not parked (promoted, or paused before a restore)."""
        self._decide_ready(tune_controller)
        trials = tune_controller.get_trials()
        pending = next((t for t in trials if t.status == Trial.PENDING), None)
        return pending or next((t for t in trials if t.status == Trial.PAUSED and t.trial_id not in self.parked), None)

    def _entrants(self, tune_controller: Any, rung: int) -> set[str] | None:
        """The ids of the trials that can reach ``rung``; None while more may still come (trials not yet
        created, or the rung below undecided)."""
        index = self.rungs.index(rung)
        if index:
            return self._promoted.get(self.rungs[index - 1])
        return self._added if tune_controller.search_alg.is_finished() else None

    def _complete(self, tune_controller: Any, rung: int) -> bool:
        entrants = self._entrants(tune_controller, rung)
        if entrants is None:
            return False
        # a restored sweep's trials that had ended before the driver stopped come back ended, never removed
        ended = self._ended | {t.trial_id for t in tune_controller.get_trials()
                               if t.status in (Trial.TERMINATED, Trial.ERROR)}
        return all(i in self._values[rung] or i in ended for i in entrants)

    def _decide_ready(self, tune_controller: Any) -> None:
        for rung in self.rungs:
            if rung not in self._promoted and self._values[rung] and self._complete(tune_controller, rung):
                self._decide(tune_controller, rung)

    def _decide(self, tune_controller: Any, rung: int) -> None:
        """Promote the best ``ceil(n / reduction_factor)`` recorded at ``rung``; stop the parked rest."""
        values = self._values[rung]
        ranked = sorted(values, key=lambda i: -values[i])
        self._promoted[rung] = set(ranked[:math.ceil(len(ranked) / self._rf)])
        for trial in tune_controller.get_trials():
            if trial.trial_id not in self.parked or trial.trial_id not in values:
                continue
            self.parked.discard(trial.trial_id)
            if trial.trial_id not in self._promoted[rung]:
                # Ray tells the searcher of a paused trial it stops without a result: tell it the last one first
                tune_controller.search_alg.on_trial_complete(trial.trial_id, result=flatten_dict(trial.last_result))
                tune_controller.stop_trial(trial)

    def debug_string(self) -> str:
        return "SyncHalving: " + ", ".join(f"rung {r}: {len(v)} trials" for r, v in self._values.items())


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


def reuses_actors(scheduler: str) -> bool:
    """Whether a sweep under ``scheduler`` reuses its trial actors: not under ``ACTOR_REUSE_LEAKS``."""
    return scheduler not in ACTOR_REUSE_LEAKS


def rung_clock(plan: Any) -> tuple[str, float, float]:
    """What the rungs count, as ``(time_attr, max_t, grace_period)``.

    With a ``--trial-budget`` the rungs are in a trial's training seconds (``trial.train_s``: process
    start-up left out, so a trial restored in a new process is not charged it again), the first at the same
    fraction of the budget as ``grace_steps`` is of the step budget: trials are compared after the same compute,
    so a config whose steps cost ten times another's is ranked on what it reached in the same seconds, not in the
    same steps. Otherwise they are in steps, ``max_t`` one past the budget (see the module notes).
    """
    if plan.trial_budget_s:
        fraction = plan.grace_steps / max(plan.budget_steps, 1)
        return TRAIN_SECONDS, float(plan.trial_budget_s), float(plan.trial_budget_s) * min(fraction, 1.0)
    return STEP, plan.budget_steps + 1, plan.grace_steps


def make_scheduler(plan: Any) -> Any:
    """The plan's scheduler (see the module notes), its rungs on :func:`rung_clock`."""
    if plan.scheduler == "pbt":
        return _pbt(plan)
    if plan.scheduler == "none":
        return FIFOScheduler()
    time_attr, max_t, grace = rung_clock(plan)
    if len(plan.objectives) > 1:
        return ParetoASHA([tracked(o.metric) for o in plan.objectives], [o.mode for o in plan.objectives],
                          time_attr=time_attr, max_t=max_t, grace_period=grace)
    first = plan.objectives[0]
    if plan.scheduler == "halving":
        return SyncHalving(tracked(first.metric), first.mode, time_attr=time_attr, max_t=max_t,
                           grace_period=grace, reduction_factor=REDUCTION_FACTOR)
    return ASHAScheduler(time_attr=time_attr, metric=tracked(first.metric), mode=first.mode, max_t=max_t,
                         grace_period=grace, reduction_factor=REDUCTION_FACTOR)
