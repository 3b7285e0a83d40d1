"""``run``: one sweep, top to bottom, as named steps over its :class:`~audiostyle.sweep._plan.Plan`.

1. :func:`_plan_of`: the plan from the caller's settings, or (``resume``) the stored plan read back.
2. :func:`_connect` (:func:`~audiostyle.sweep._ray.connect`): join a running cluster (``RAY_ADDRESS``, or the
   cluster ``ray start`` left on this machine, as under ``ray submit``) or start a local Ray; size the concurrency
   to it; on a cluster, refuse a local store or storage its trial nodes do not share (:mod:`._shared`).
3. :func:`_prepare`: the dataset loaded and ``method.prepare`` run ONCE in the driver, through the feature cache.
4. :func:`_trainable`: the trial function with the prepared data (shared through Ray's object store) and its
   resources.
5. :func:`_new_tuner` (writing the plan as the manifest) or :func:`_restored_tuner`: Optuna proposes configs
   (:mod:`._search`; :func:`_screen` keeps those that cannot run on the data or would cost over 10× the space's
   median per step from launching: :mod:`._screen`), ASHA/its Pareto form/PBT stops or mutates trials (:mod:`._schedule`), the store callback
   writes every ended trial (:mod:`._callback`).
6. ``tuner.fit()``, then the store's rows ranked as ``python -m audiostyle.best`` ranks them (:mod:`._result`);
   a sweep stopped before all its trials ended raises :class:`~audiostyle.sweep._result.SweepInterrupted`.

Notes
-----
- With a searcher, Tune runs trials one after another unless concurrency is limited explicitly: the Optuna
  searcher limits itself to ``max_concurrent`` live trials (see :mod:`._search`).
- A restored sweep keeps its Optuna study; a trial that ended after Tune's last experiment snapshot runs again
  from its last checkpoint and its store row is replaced, not added. A sweep stopped before Ray saved any state
  starts again from its plan (same sweep id, same study).
- SIGTERM stops a sweep as Ctrl-C (SIGINT) does: Ray Tune saves its state and returns, and the sweep is
  interrupted; a second signal stops it at once. Inside ``ray.init`` Ray's own handler is in place: its exit is
  caught in :func:`_connect`, and the sweep, stored nowhere yet, is to be started again rather than resumed.
- The restored Tuner's searcher and store callback are pointed at the store being resumed, which need not be
  where the sweep started (a copied, moved or synced store): see :func:`_relocate`.
- PBT keeps every checkpoint in Ray's storage: a trial that exploits another restores from a path Ray's retention
  does not know it uses, and Ray deleted it under a donor that kept training (a restore then failed with "Path not
  found"); other schedulers keep a trial's last two.
- The default logger callbacks include TensorBoard's, which imports torch in the driver: only the JSON and CSV
  loggers run.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from audiostyle import fsio, methods
from audiostyle.data.dataset import AudioDataset
from audiostyle.errors import AudiostyleError
from audiostyle.store import DEFAULT_ROOT, Store
from audiostyle.sweep._console import quiet_env, worker_env
from audiostyle.sweep._keys import TRAIN_SECONDS
from audiostyle.sweep._plan import Plan, Settings, check_new_name, new_plan, resumed_plan
from audiostyle.sweep._prepare import Prepared, load_data, prepare_data
from audiostyle.sweep._ray import connect, fit_concurrency, storage
from audiostyle.sweep._result import SweepInterrupted, SweepResult
from audiostyle.sweep._shared import check_shared
from audiostyle.sweep._study import fail_unrun
from audiostyle.sweep._wait import RESOURCE_WAIT_WARN_S

log = logging.getLogger(__name__)

_RAY_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",  # the legacy progress table (CLIReporter)
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no TensorBoard logger (it imports torch in the driver)
    # trials checkpoint at every stateful report: Tune then snapshots often, which is what resume wants
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


def run(
    method: str,
    *,
    store: str = DEFAULT_ROOT,
    resume: bool = False,
    name: str | None = None,
    address: str | None = None,
    cache_dir: str | None = None,
    dashboard: bool = True,
    verbose: int = 0,
    wait_warning_s: float = RESOURCE_WAIT_WARN_S,
    **settings: Any,
) -> SweepResult:
    """Run (or resume) a hyperparameter sweep of ``method`` and store every trial.

    Parameters
    ----------
    method : str
        A registered method name (``audiostyle.methods.names()``).
    store : str
        Result store root, local path or ``s3://bucket/prefix``.
    resume : bool
        Continue the latest (or ``name``d) interrupted sweep of ``method`` in ``store``: its manifest is its plan.
        Settings given with it must equal the plan's; any that differ are refused, listed.
    name : str, optional
        Sweep id (default ``<method>-<UTC time>-<pid>``); with ``resume``, the sweep to resume.
    address : str, optional
        Ray address (see :func:`audiostyle.sweep._ray.connect`).
    cache_dir : str, optional
        Feature cache root (default :func:`audiostyle.data.cache.default_cache_dir`).
    dashboard : bool
        Start the dashboard with a new local Ray.
    verbose : int
        0 (the default, as in the sweep scripts): one line per ended trial, Ray's INFO lines off
        (:mod:`._console`); 1: Ray Tune's live table and Ray's INFO lines too.
    wait_warning_s : float
        Warn (once) when a trial has waited this many seconds for resources no node has (:mod:`._wait`).
    **settings
        What to sweep: the fields of :class:`~audiostyle.sweep._plan.Settings` (``space``, ``overrides``, ``data``,
        ``samples``, ``steps``, ``objectives``, ``scheduler``, ...); unset ones take their defaults.

    Returns
    -------
    SweepResult

    Raises
    ------
    SweepInterrupted
        SIGINT or SIGTERM stopped the sweep before all its trials ended (``--resume`` continues it).
    """
    for key, value in _RAY_ENV.items():
        os.environ.setdefault(key, value)
    quiet = quiet_env(verbose)
    # trials run in Ray's per-trial working folders: a relative store path must be made absolute here
    store = store if fsio.is_remote(store) else str(Path(store).expanduser().absolute())
    asked = _settings(settings)
    plan = _plan_of(method, asked, store, resume, name)
    if plan.warm_points and not resume:
        print(f"warm start: the {plan.warm_points} best configs of earlier {method} sweeps in {store} run first "
              "(--no-warm-start: without them)", flush=True)
    _stop_on_sigterm()  # a SIGTERM while Ray starts stops the sweep as Ctrl-C does
    try:
        mode = _connect(address, dashboard, worker_env(quiet))
        fitted = fit_concurrency(plan.samples, plan.cpus_per_trial, plan.gpus_per_trial, mode)
        if plan.max_concurrent is None:
            plan = dataclasses.replace(plan, max_concurrent=fitted)
        check_shared([("--store", plan.store), ("--storage", plan.storage)], mode)
        prepared = _prepare(plan, asked, cache_dir)
        trainable = _trainable(plan, prepared)
        tuner = _restored_tuner(plan, trainable) if resume else None
        tuner = tuner or _new_tuner(plan, trainable, verbose, wait_warning_s, _screen(plan, prepared))
        started = time.perf_counter()
        tuner.fit()
    except KeyboardInterrupt:
        raise SweepInterrupted(plan, stored=resume or _manifest_stored(plan)) from None
    log.info("sweep %s ran in %.1f s", plan.sweep_id, time.perf_counter() - started)
    result = SweepResult.read(plan, prepared.seconds, prepared.hit)
    # Every ended trial has its row (the callback writes it before fit() returns). Ray's counts cannot tell: a
    # stopped run marks the trials it was still running TERMINATED, as if they had finished.
    if len(result.trials) < plan.samples:
        raise SweepInterrupted(plan, result)
    fail_unrun(plan.store, plan.sweep_id)
    return result


def _manifest_stored(plan: Plan) -> bool:
    """Whether the store holds ``plan``'s manifest (written in step 5, once Ray has started)."""
    return any(m.get("sweep_id") == plan.sweep_id for m in Store(plan.store).sweeps(plan.method))


def _connect(address: str | None, dashboard: bool, runtime_env: dict[str, Any]) -> str:
    """Step 2: :func:`connect`, a SIGTERM meanwhile stopping the sweep as Ctrl-C does. ``ray.init`` puts Ray's own
    handler in place first, which exits with status 15 and nothing said; it is replaced once Ray has started."""
    try:
        mode = connect(address, dashboard=dashboard, runtime_env=runtime_env)
    except SystemExit as stop:
        if stop.code != signal.SIGTERM:
            raise
        raise KeyboardInterrupt from None
    _stop_on_sigterm()
    return mode


def _stop_on_sigterm() -> None:
    """SIGTERM does what SIGINT does at that moment: inside ``tuner.fit()`` Ray Tune's handler saves the sweep's
    state and ends the run, elsewhere (and for a second signal) Python's raises KeyboardInterrupt. Installed after
    Ray's own handler (which would abort the driver and lose the state)."""
    if threading.current_thread() is not threading.main_thread():
        return

    def on_sigterm(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if not callable(handler):
            raise KeyboardInterrupt
        handler(signal.SIGINT, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def _settings(settings: dict[str, Any]) -> Settings:
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise AudiostyleError(f"sweep.run: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
    return Settings(**settings)


def _plan_of(method: str, settings: Settings, store: str, resume: bool, name: str | None) -> Plan:
    """Step 1: a new plan, or the interrupted sweep's plan read back from its manifest."""
    if not resume:
        plan = new_plan(method, settings, store, name)
        check_new_name(Store(store), plan.sweep_id)
        return plan
    plan = resumed_plan(Store(store), methods.get(method).name, settings, name)
    log.info("resuming sweep %s of %s from %s", plan.sweep_id, method, plan.storage)
    return plan


def _dataset(plan: Plan, settings: Settings, cache_dir: str | None) -> AudioDataset:
    """Step 3a: the dataset (the given object, else the plan's source). Its train/val/test splits are drawn with
    :func:`load_data`'s fixed seed, not the sweep's: sweeps of one dataset with different ``--seed`` fit, choose and
    test on the same melodies, so their scores compare and no sweep chooses on another's test melodies."""
    m = methods.get(plan.method)
    data = settings.data if settings.data is not None and not isinstance(settings.data, str) else plan.data
    return load_data(data, smoke=plan.smoke, cache_dir=cache_dir, domains=m.data_domains(m.make_config(plan.overrides)))


def _prepare(plan: Plan, settings: Settings, cache_dir: str | None) -> Prepared:
    """Step 3: the dataset prepared once, through the cache."""
    m = methods.get(plan.method)
    base = m.make_config(plan.overrides)
    prepared = prepare_data(m, _dataset(plan, settings, cache_dir), base, cache_dir)
    log.info("data prepared in %.2f s (%s)", prepared.seconds, "cache hit" if prepared.hit else "computed")
    return prepared


def _trainable(plan: Plan, prepared: Prepared) -> Any:
    """Step 4: :func:`~audiostyle.sweep._trial.run_trial` with the shared data, the trial spec and resources."""
    from ray import tune

    from audiostyle.sweep._trial import TrialSpec, run_trial

    objectives = [plan.headline.metric, *(o.metric for o in plan.objectives)]
    spec = TrialSpec(method=methods.get(plan.method), sweep_id=plan.sweep_id, store_root=plan.store,
                     overrides=plan.overrides, tracked=tuple(dict.fromkeys(objectives)), seed=plan.seed,
                     gpus_per_trial=plan.gpus_per_trial)
    return tune.with_resources(tune.with_parameters(run_trial, data=prepared.data, spec=spec),
                               {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial})


def _screen(plan: Plan, prepared: Prepared) -> Any:
    """Step 4b: the screen of proposals that cannot run on the prepared data or cost far more than is usual."""
    from audiostyle.sweep._screen import ConfigScreen

    m = methods.get(plan.method)
    return ConfigScreen.build(m, plan.overrides, plan.space, m.trial_shape(prepared.data), plan.points, plan.seed)


def _new_tuner(plan: Plan, trainable: Any, verbose: int, wait_warning_s: float, screen: Any = None) -> Any:
    """Step 5 of a new sweep: the manifest written, then the Tuner with searcher, scheduler and callbacks."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from audiostyle.sweep._callback import StoreCallback, status_of
    from audiostyle.sweep._console import ProgressCallback
    from audiostyle.sweep._monitor import monitor_callback, progress_reporter, trial_name_creator
    from audiostyle.sweep._schedule import make_scheduler, reuses_actors
    from audiostyle.sweep._search import make_searcher, to_tune
    from audiostyle.sweep._wait import ResourceWaitCallback

    Store(plan.store).write_sweep(plan.to_manifest())
    storage_path, storage_fs = storage(plan.storage)
    name_trial = trial_name_creator(plan.method)
    callbacks = [
        StoreCallback(plan.store, methods.get(plan.method), plan.sweep_id, plan.objectives[0], plan.overrides, plan.seed),
        JsonLoggerCallback(),
        CSVLoggerCallback(),
        monitor_callback(plan.sweep_id, plan.method, plan.headline, plan.budget_steps),
        ProgressCallback(plan.headline, plan.samples, functools.partial(status_of, budget_steps=plan.budget_steps)),
        ResourceWaitCallback(plan.cpus_per_trial, plan.gpus_per_trial, wait_warning_s),
    ]
    scheduler = make_scheduler(plan)
    return tune.Tuner(
        trainable,
        param_space=to_tune(plan.space) if plan.scheduler == "pbt" else None,
        tune_config=tune.TuneConfig(
            search_alg=make_searcher(plan, screen, getattr(scheduler, "parked", None)), scheduler=scheduler,
            num_samples=plan.samples,
            reuse_actors=reuses_actors(plan.scheduler), trial_name_creator=name_trial, trial_dirname_creator=name_trial,
        ),
        run_config=tune.RunConfig(
            name=plan.sweep_id,
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            failure_config=tune.FailureConfig(max_failures=plan.max_failures),
            stop={TRAIN_SECONDS: plan.trial_budget_s} if plan.trial_budget_s else None,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None if plan.scheduler == "pbt" else 2),
            callbacks=callbacks,
            progress_reporter=progress_reporter(plan.objectives, plan.headline, list(plan.space)),
            verbose=verbose,
        ),
    )


def _restored_tuner(plan: Plan, trainable: Any) -> Any:
    """Step 5 of a resumed sweep: the Tuner as Ray saved it (trials, searcher, scheduler, callbacks), pointed at
    the plan's store; None when Ray saved no state (the sweep then starts again from its plan)."""
    from ray.tune import Tuner

    storage_path, storage_fs = storage(plan.storage)
    path = f"{storage_path.rstrip('/')}/{plan.sweep_id}"
    if not (Tuner.can_restore(path, storage_filesystem=storage_fs) and _snapshot_saved(path, storage_fs)):
        log.warning("--resume %s: Ray saved no state at %s before the sweep stopped: starting it again from its plan",
                    plan.sweep_id, plan.experiment_path)
        return None
    # A method's own failure (NaN, bad config) is a recorded result, never a Ray error; a trial Ray marked
    # errored was lost to the platform (its worker died with the driver, say): continue it from its checkpoint.
    tuner = Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True, restart_errored=False,
                          storage_filesystem=storage_fs)
    _relocate(tuner, plan.store)
    return tuner


def _snapshot_saved(path: str, storage_fs: Any) -> bool:
    """Whether Ray's experiment folder ``path`` holds a snapshot of at least one trial (the newest
    ``experiment_state-*.json``, found and read as Ray's own restore does).

    Ray writes its Tuner (``tuner.pkl``, what ``Tuner.can_restore`` looks for) before its first snapshot: a driver
    killed in between leaves a Tuner whose restore knows no trials and stops after one. A driver stopped by SIGTERM
    while Ray starts snapshots no trials at all, and Ray's restore of that fails ("Failed to restore the run state")
    and runs one trial: both start again from the plan.
    """
    from ray.train._internal.storage import get_fs_and_path
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint
    from ray.tune.utils.serialization import _loads_with_cloudpickle  # how Ray reads its snapshot

    fs, fs_path = get_fs_and_path(path, storage_filesystem=storage_fs)
    newest = _find_newest_experiment_checkpoint(fs_path, fs=fs)
    if newest is None:
        return False
    with fs.open_input_stream(newest) as stream:
        return bool(_loads_with_cloudpickle(stream.readall()).get("trial_data"))


def _relocate(tuner: Any, store: str) -> None:
    """Point the restored Tuner's searcher and callbacks at ``store``: Ray pickled them with the store the sweep
    started in, which a copied or moved store must never write to again (``relocate`` of
    :class:`~audiostyle.sweep._search.RestorableOptunaSearch` and :class:`~audiostyle.sweep._callback.StoreCallback`);
    the trials still to be created go to the restored folder too
    (:meth:`~audiostyle.sweep._search.ResumableSearchGenerator.use_storage`)."""
    internal = getattr(tuner, "_local_tuner", None)  # the restored TuneConfig and RunConfig (no public accessor)
    if internal is None:  # a Ray client (ray://) restores on the cluster, out of reach
        log.warning("--resume through a Ray client: the restored sweep writes to the store it started in")
        return
    run = internal._run_config  # Ray set its storage to the folder the run was restored from
    for part in [internal._tune_config.search_alg, *(run.callbacks or [])]:
        if hasattr(part, "relocate"):
            part.relocate(store)
        if hasattr(part, "use_storage"):
            part.use_storage(run.storage_path, run.storage_filesystem, run.name)
