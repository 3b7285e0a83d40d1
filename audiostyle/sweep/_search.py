"""Searchers: Optuna (TPE, NSGA-II, random) made to see failures as failures and to survive a restore.

:func:`make_searcher` builds the sweep's searcher from its plan. Ray Tune's ``OptunaSearch`` tells Optuna a
trial is COMPLETE whenever its last result carries the metric, and the final result of a trial that failed
(NaN loss, exception) still carries its last good ``tracked.*`` values: TPE would learn a diverged config at its
pre-divergence score. :class:`RestorableOptunaSearch` tells Optuna FAIL for a failed trial and PRUNED for one
the scheduler stopped early (its intermediate values stay in the study, as with Optuna's own pruners); only a
trial that finished is COMPLETE, with its final values.

Restores: Ray Tune snapshots its trial list and its searcher in separate files. When the driver is killed while
a snapshot is being written (seen with storage on S3, where files are uploaded one by one), the restored trial
list can hold trials the restored searcher never suggested. Ray's ``OptunaSearch`` then fails the whole sweep
with a ``KeyError`` on the first result of such a trial, and Ray's ``ConcurrencyLimiter`` silently drops their
completion (so Optuna never learns them). :class:`RestorableOptunaSearch` limits concurrency itself (so Tune adds
no ``ConcurrencyLimiter``), ignores intermediate results of trials it does not know, and *adopts* their final
results into the study (``create_trial`` + ``add_trial``), so the study ends with every trial of the sweep.
After a restore it forgets which trials were live: a trial the snapshot thought running may no longer exist and
must not hold a concurrency slot forever (Ray's resource limits still bound what runs at once). The study lives
in the store's journal, which holds every tell, also those after the snapshot: a trial the restored searcher
thinks open may be closed there (it re-runs from its checkpoint; the second tell is skipped). A trial the study
holds RUNNING that the restored searcher does not know (asked by the stopped driver after its snapshot, never
run) is taken up by the next trial Ray starts, with its config, so the study ends with one trial per Ray trial;
one never taken up is failed when the sweep ends (:func:`audiostyle.sweep._study.fail_unrun`).

The same torn snapshot can leave Ray's count of created trials (kept with the searcher) off the trial list it
restores, either way: Ray would then create more or fewer trials than the sweep's ``samples``.
:class:`ResumableSearchGenerator` reads the restored trial list and sets the count to its length; the searcher
takes back the restored Ray trials it missed (each study trial carries its Ray trial id from the moment it is
asked, so it finds them in the journal) and lets go of those Ray did not restore, which new trials take up.

PBT searches by mutating running trials: its trials start from Ray's random search over the space
(:func:`to_tune`), not from Optuna.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from ray.tune.search import SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from audiostyle.errors import AudiostyleError
from audiostyle.store import FAILED
from audiostyle.methods.space import (
    Choice, DefineByRun, Float, Given, Int, Space, from_params, is_conditional, optuna_params, resolve, to_optuna,
)
from audiostyle.sweep._keys import ARTIFACTS, FINAL, METRICS, RAY_TRIAL_ID, STATUS, tracked

log = logging.getLogger(__name__)

SEARCHERS = ("tpe", "nsga2", "random")
MAX_SCREENED = 50
"""Proposals in a row a trial's ask may screen out before it launches the last one anyway."""
SCREENED = "screened"
"""The user attribute of an Optuna trial that was never launched: why (:mod:`audiostyle.sweep._screen`)."""
MAX_POPULATION = 50
"""NSGA-II's population is at most Optuna's default (the default otherwise: a quarter of the trials)."""


def population_size(samples: int, population: int | None = None) -> int:
    """NSGA-II's population: ``population`` when given, else a quarter of ``samples`` (2 to 50), so that a
    sweep runs about four generations instead of one random first generation."""
    size = population if population is not None else min(MAX_POPULATION, samples // 4)
    if population is not None and population < 2:
        raise AudiostyleError(f"population={population}: NSGA-II needs a population of at least 2.")
    return max(2, int(size))


def trial_state(result: Mapping[str, Any] | None, error: bool, values: list[Any]) -> TrialState:
    """What Optuna should learn of an ended trial: FAIL (Ray error, the method failed, or a non-finite value),
    PRUNED (stopped by the scheduler: no final result), else COMPLETE."""
    result = result or {}
    if error or result.get(STATUS) == FAILED:
        return TrialState.FAIL
    if not result.get(FINAL):
        return TrialState.PRUNED
    if any(v is None or not math.isfinite(float(v)) for v in values):
        return TrialState.FAIL
    return TrialState.COMPLETE


def _params(result: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """A trial's searched values from its result (``config`` dict or flattened ``config/<name>`` keys)."""
    config = result.get("config") if isinstance(result.get("config"), Mapping) else {}
    return {n: config[n] if n in config else result[f"config/{n}"] for n in names if n in config or f"config/{n}" in result}


class RestorableOptunaSearch(OptunaSearch):
    """``OptunaSearch`` with its own concurrency limit and tolerance of trials it did not suggest.

    With ``store_root``, each trial's artifacts go into its study trial before Optuna is told
    (:func:`audiostyle.sweep._study.record_trial`). ``parked``: ids of live trials that hold no concurrency slot
    (paused at a rung by :class:`~audiostyle.sweep._schedule.SyncHalving`, which keeps the set up to date).
    ``fields``: the sweep's space; when it is conditional, Optuna searches it define-by-run under its own parameter
    names and every suggestion is handed on (and screened) as config fields
    (:func:`~audiostyle.methods.space.from_params`).
    """

    def __init__(self, *args: Any, store_root: str | None = None,
                 screen: Callable[[Mapping[str, Any]], str | None] | None = None,
                 parked: set[str] | None = None, fields: Space | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fields = fields
        self._store_root = store_root
        self._screen = screen
        self._max_live: int | None = None
        self._live: set[str] = set()
        self._parked: set[str] = set() if parked is None else parked
        self._unrun: list[int] | None = None  # the study's RUNNING trials no Ray trial holds (found at the first ask)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Limit suggestions to ``max_concurrent`` live trials (Tune then adds no ConcurrencyLimiter)."""
        self._max_live = int(max_concurrent)
        return True

    def suggest(self, trial_id: str) -> Any:
        if self._max_live is not None and len(self._live - self._parked) >= self._max_live:
            return None
        if trial_id not in self._ot_trials and self._ot_study is not None:
            unrun = self._take_unrun()
            if unrun is not None:
                self._ot_trials[trial_id] = unrun
                log.info("trial %s takes up Optuna trial %d, asked before the driver stopped", trial_id, unrun.number)
        suggestion = self._config(super().suggest(trial_id))
        for _ in range(MAX_SCREENED):
            reason = self._screen(suggestion) if self._screen is not None and isinstance(suggestion, dict) else None
            if reason is None:
                break
            self._screened_out(trial_id, suggestion, reason)
            suggestion = self._config(super().suggest(trial_id))
        if isinstance(suggestion, dict):
            self._live.add(trial_id)
            self._ot_trials[trial_id].set_user_attr(RAY_TRIAL_ID, trial_id)  # found again after a torn snapshot
        return suggestion

    def _config(self, suggestion: Any) -> Any:
        """A suggestion as config fields (a conditional space's case parameters named by their field)."""
        fields = getattr(self, "_fields", None)  # a searcher pickled before it had fields
        if isinstance(suggestion, dict) and fields is not None and is_conditional(fields):
            return from_params(fields, suggestion)
        return suggestion

    def _screened_out(self, trial_id: str, params: Mapping[str, Any], reason: str) -> None:
        """Tell Optuna a proposal failed without launching it (:mod:`audiostyle.sweep._screen`)."""
        ot_trial = self._ot_trials.pop(trial_id)
        ot_trial.set_user_attr(SCREENED, reason)
        self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        log.warning("not launched (Optuna trial %d, %s): %s", ot_trial.number,
                    ", ".join(f"{k}={v}" for k, v in params.items()), reason)

    def _metrics(self) -> list[str]:
        return self._metric if isinstance(self._metric, list) else [self._metric]

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """An intermediate value for Optuna (single objective), unless non-finite or the trial's final result."""
        value = result.get(self._metrics()[0])
        if trial_id in self._ot_trials and not result.get(FINAL) and value is not None and math.isfinite(value):
            try:
                super().on_trial_result(trial_id, result)
            except UpdateFinishedTrialError:  # a resumed sweep replays a trial its restored study already closed
                pass

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna the trial's :func:`trial_state` (values only when COMPLETE)."""
        self._live.discard(trial_id)
        if trial_id in self._completed_trials:
            return
        if trial_id not in self._ot_trials:
            self._adopt(trial_id, result or {}, error)
            return
        if self._store_root is not None:
            self._record(trial_id, result or {})
        values = [(result or {}).get(m) for m in self._metrics()]
        state = trial_state(result, error, values)
        complete = [float(v) for v in values] if state == TrialState.COMPLETE else None
        # skip_if_finished: told before the driver stopped (the journal has it; the restored snapshot did not)
        self._ot_study.tell(self._ot_trials[trial_id], complete, state=state, skip_if_finished=True)
        self._completed_trials.add(trial_id)

    def _record(self, trial_id: str, result: Mapping[str, Any]) -> None:
        """The trial's Ray id and artifacts into its study trial (a failed upload is logged, the sweep goes on)."""
        from audiostyle.sweep._study import record_trial

        try:
            metrics = {k.removeprefix(f"{METRICS}/"): v for k, v in result.items() if k.startswith(f"{METRICS}/")}
            record_trial(self._store_root, self._ot_trials[trial_id], json.loads(result.get(ARTIFACTS) or "{}"),
                         {**metrics, **(result.get(METRICS) or {})})
        except Exception as exc:  # noqa: BLE001 - the dashboard's copy is a convenience; the store has the files
            log.warning("trial %s: its artifacts did not reach the Optuna study: %s", trial_id, exc)

    def _adopt(self, trial_id: str, result: Mapping[str, Any], error: bool) -> None:
        """Add a trial this searcher never suggested (lost from its snapshot) to the study."""
        fields = getattr(self, "_fields", None) or {}
        names = list(fields) if callable(self._space) else list(self._space)
        config = _params(result, names)
        values = [result.get(m) for m in self._metrics()]
        state = trial_state(result, error, values) if len(config) == len(names) else TrialState.FAIL
        if callable(self._space):
            params, distributions = optuna_params(fields, config)
        else:
            params, distributions = config, {n: self._space[n] for n in config}
        trial = optuna.trial.create_trial(
            params=params,
            distributions=distributions,
            values=[float(v) for v in values] if state == TrialState.COMPLETE else None,
            state=state,
            user_attrs={RAY_TRIAL_ID: trial_id},
        )
        self._ot_study.add_trial(trial)
        self._completed_trials.add(trial_id)
        log.info("searcher adopted trial %s (not in its restored snapshot) into the Optuna study", trial_id)

    def relocate(self, store_root: str) -> None:
        """Use the study and artifact store of ``store_root`` from now on, also after :meth:`restore` (a resumed
        sweep's store may have been copied or moved since Ray pickled this searcher)."""
        self._store_root = store_root

    def restore(self, checkpoint_path: str) -> None:
        target = getattr(self, "_store_root", None)
        parked = getattr(self, "_parked", set())  # the scheduler's set, not the snapshot's copy of it
        super().restore(checkpoint_path)
        self._live, self._parked = set(), parked
        self._unrun = None
        if target is not None and target != self._store_root:
            self._move_study(target)

    def _move_study(self, store_root: str) -> None:
        """Reopen the study from ``store_root``'s journal; the trials this searcher holds follow it."""
        from audiostyle.sweep._study import journal_storage

        storage = journal_storage(store_root)
        study = optuna.load_study(study_name=self._study_name, storage=storage, sampler=self._ot_study.sampler,
                                  pruner=self._ot_study.pruner)
        for trial in self._ot_trials.values():
            trial.study, trial.storage = study, storage
        self._storage, self._ot_study, self._store_root = storage, study, store_root

    def hold(self, ray_trial_ids: Iterable[str]) -> int:
        """Match this searcher's trials to the Ray trials restored with it (a torn snapshot may disagree either way);
        the number of trials that ran and ended after Ray's snapshot (the study has them told, Ray does not know
        them: they count as created, so no new trial replaces them).

        Study trials of restored Ray trials this searcher's snapshot missed are taken back (by the Ray trial id each
        study trial carries), so they are told when they end and never taken up by a new trial. Trials it holds that
        Ray did not restore and that are still running in the study are let go: the next Ray trials take them up.
        """
        ray_ids = set(ray_trial_ids)
        if self._ot_study is None:
            return 0
        ended_since = 0
        for frozen in self._ot_study.get_trials(deepcopy=False):
            ray_id = frozen.user_attrs.get(RAY_TRIAL_ID)
            if ray_id in ray_ids and ray_id not in self._ot_trials and SCREENED not in frozen.user_attrs:
                self._ot_trials[ray_id] = optuna.Trial(self._ot_study, frozen._trial_id)
                log.info("searcher took back trial %s (Optuna trial %d) after the restore", ray_id, frozen.number)
            elif ray_id not in ray_ids and frozen.state == TrialState.RUNNING:
                for trial_id in [t for t, held in self._ot_trials.items() if held._trial_id == frozen._trial_id]:
                    del self._ot_trials[trial_id]
                    log.info("searcher let go of trial %s (Optuna trial %d): Ray did not restore it", trial_id,
                             frozen.number)
            elif ray_id is not None and ray_id not in ray_ids and frozen.state.is_finished():
                ended_since += 1
                log.info("trial %s (Optuna trial %d) ended after Ray's last snapshot: it counts as run", ray_id,
                         frozen.number)
        return ended_since

    def _take_unrun(self) -> optuna.Trial | None:
        """The next RUNNING study trial no Ray trial holds, if any, with every searched value set.

        Optuna writes an asked trial's values one journal entry at a time: a driver stopped in between leaves a
        trial with some of them, whose missing values are drawn now.
        """
        if getattr(self, "_unrun", None) is None:
            held = {trial.number for trial in self._ot_trials.values()}
            self._unrun = [t.number for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                           if t.number not in held]
        if not self._unrun:
            return None
        frozen = self._ot_study.get_trials(deepcopy=False)[self._unrun.pop(0)]
        trial = optuna.Trial(self._ot_study, frozen._trial_id)
        if callable(self._space):
            self._space(trial)  # a define-by-run space suggests each value; those already set come back as they are
            return trial
        for name, distribution in self._space.items():
            if name not in frozen.params:
                trial._suggest(name, distribution)  # Optuna's own ask(fixed_distributions=) does this per value
        return trial


class ResumableSearchGenerator(SearchGenerator):
    """Ray's ``SearchGenerator`` whose count of created trials, after a restore, is the restored trial list's length
    (a torn snapshot may hold an older or newer count), and whose searcher learns the restored trials."""

    def restore_from_dir(self, dirpath: str) -> None:
        super().restore_from_dir(dirpath)
        self._move_experiment()
        ray_trial_ids = restored_trial_ids(dirpath)
        ended_since = self.searcher.hold(ray_trial_ids) if hasattr(self.searcher, "hold") else 0
        if ray_trial_ids:  # Ray creates trials only here: its restored list (and what ended after it) it created
            self._counter = len(ray_trial_ids) + ended_since

    def relocate(self, store_root: str) -> None:
        """The searcher's :meth:`RestorableOptunaSearch.relocate`."""
        if hasattr(self.searcher, "relocate"):
            self.searcher.relocate(store_root)

    def use_storage(self, storage_path: str, storage_filesystem: Any, experiment_dir_name: str) -> None:
        """Create new trials in the experiment folder the run was restored from (``storage_path/experiment_dir_name``).

        The snapshot holds the Experiment the generator creates trials from, with the storage folder the sweep
        started in: Ray moves the restored trials to the folder it restores from, not the trials still to come, so
        after a copied or moved store they would write to the original (or fail when it is gone).
        """
        self._storage_at = (storage_path, storage_filesystem, experiment_dir_name)

    def _move_experiment(self) -> None:
        target = getattr(self, "_storage_at", None)
        if target is None or self._experiment is None:
            return
        from ray.train._internal.storage import get_fs_and_path

        path, filesystem, name = target
        storage = self._experiment.storage  # the very object the experiment's spec hands each new trial
        storage.storage_filesystem, storage.storage_fs_path = get_fs_and_path(path, filesystem)
        storage.experiment_dir_name = name


def restored_trial_ids(dirpath: str) -> list[str]:
    """The Ray trial ids of the newest experiment snapshot in ``dirpath`` (Ray's driver staging folder, where the
    restore downloaded it), as Ray's own restore picks it (the greatest file name); [] when there is none."""
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint

    newest = _find_newest_experiment_checkpoint(dirpath)
    if newest is None:
        return []
    state = json.loads(Path(newest).read_text())
    return [json.loads(trial_json)["trial_id"] for trial_json, _ in state["trial_data"]]


def _sampler(search: str, seed: int, population: int) -> Any:
    if search == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if search == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    return optuna.samplers.RandomSampler(seed=seed)


def make_searcher(plan: Any, screen: Callable[[Mapping[str, Any]], str | None] | None = None,
                  parked: set[str] | None = None) -> Any:
    """The plan's searcher: Ray's random search for PBT, else :class:`RestorableOptunaSearch` with the plan's
    sampler (NSGA-II's population from :func:`population_size`), seeded, its first points the plan's, limited to
    ``plan.max_concurrent`` live trials, its study (named by the sweep id) in the store's Optuna journal
    (:mod:`audiostyle.sweep._study`); ``screen`` keeps proposals that cannot run or cost too much from launching
    (:class:`~audiostyle.sweep._screen.ConfigScreen`); ``parked``: the scheduler's trials that hold no slot
    (:class:`~audiostyle.sweep._schedule.SyncHalving`)."""
    from audiostyle.sweep._study import journal_storage

    if plan.scheduler == "pbt":  # PBT mutates configs itself: random starting points, Tune's own limiter
        from ray.tune.search.basic_variant import BasicVariantGenerator

        return BasicVariantGenerator(points_to_evaluate=plan.points or None, random_state=plan.seed,
                                     max_concurrent=plan.max_concurrent)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    metrics = [tracked(o.metric) for o in plan.objectives]
    modes = [o.mode for o in plan.objectives]
    multi = len(metrics) > 1
    storage = journal_storage(plan.store)
    # a sweep resumed before Ray saved any state finds its study with the first points already in it
    begun = plan.sweep_id in optuna.study.get_all_study_names(storage)
    conditional = is_conditional(plan.space)
    points = [optuna_params(plan.space, p)[0] for p in plan.points] if conditional else plan.points
    searcher = RestorableOptunaSearch(
        space=DefineByRun(plan.space) if conditional else to_optuna(plan.space),
        metric=metrics if multi else metrics[0],
        mode=modes if multi else modes[0],
        points_to_evaluate=None if begun else points or None,
        sampler=_sampler(plan.search, plan.seed, population_size(plan.samples, plan.population)),
        study_name=plan.sweep_id,
        storage=storage,
        store_root=plan.store,
        screen=screen,
        parked=parked,
        fields=plan.space,
    )
    searcher.set_max_concurrency(plan.max_concurrent)
    return ResumableSearchGenerator(searcher)


def to_tune(space: Space) -> dict[str, Any]:
    """Ray Tune sampling domains for a space (PBT's random starting points and its mutations); a conditional field
    samples its case once its parent has a value (``tune.sample_from``)."""
    from ray import tune

    out: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, Given):
            out[name] = tune.sample_from(_CaseSampler(dim))
        elif isinstance(dim, Float):
            out[name] = tune.loguniform(dim.low, dim.high) if dim.log else tune.uniform(dim.low, dim.high)
        elif isinstance(dim, Int):
            # Tune's integer upper bounds are exclusive; audiostyle's are inclusive.
            out[name] = tune.lograndint(dim.low, dim.high + 1) if dim.log else tune.randint(dim.low, dim.high + 1)
        elif isinstance(dim, Choice):
            out[name] = tune.choice(list(dim.options))
        else:
            raise AudiostyleError(f"search dimension {name}={dim!r} is not a Float, Int or Choice.")
    return out


class _CaseSampler:
    """``tune.sample_from``'s function for a :class:`~audiostyle.methods.space.Given` field: a value of the case
    its parent took in the trial's config."""

    def __init__(self, dim: Given) -> None:
        self.dim = dim

    def __call__(self, spec: Any) -> Any:
        case = resolve(self.dim, spec.config)
        return to_tune({"value": case})["value"].sample()
