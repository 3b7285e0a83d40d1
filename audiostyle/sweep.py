"""Ray Tune glue: a hyperparameter sweep of one method, Optuna as the searcher, results in the Parquet store.

::

    from audiostyle import sweep
    result = sweep.run("shallow_cnn", samples=16, store="results")
    print(result.summary())

How a sweep runs (DESIGN.md, "How data flows")
----------------------------------------------
1. :func:`connect` joins a running cluster (``RAY_ADDRESS``, or the cluster ``ray start`` left on this
   machine, as under ``ray submit``/``ray job submit``) or starts a local Ray, its dashboard on 127.0.0.1.
2. The driver loads the dataset and runs ``method.prepare(dataset, base_config)`` ONCE, through the
   feature cache (a second sweep on the same data and code reads the prepared data back), and hands it
   to the trials through Ray's object store (``tune.with_parameters``).
3. A ``Tuner`` runs :func:`audiostyle.sweep_trial.run_trial`: Optuna proposes configs (TPE; NSGA-II for
   multi-objective/Pareto sweeps; seeded with the method's ``best_known()`` configs), ASHA (or PBT, or
   nothing) stops poor trials early, ``max_concurrent`` trials run at once with actors reused,
   each with ``cpus_per_trial`` CPUs and ``gpus_per_trial`` of a GPU.
4. :class:`audiostyle.sweep_callback.StoreCallback` writes every ended trial to the store.
5. ``resume=True`` restores the interrupted sweep from Ray's storage (searcher state, trials, callback
   state) and runs only what is unfinished.

Traps this module designs around
--------------------------------
- Ray Tune's schedulers rank on ONE metric. A multi-objective sweep (``objectives=[melody max,
  timbre_dist min]``) gives Optuna both objectives (NSGA-II, a Pareto front) but ASHA schedules on the
  method's declared scalar headline (``transfer_score`` / ``fad``): a trial is stopped early for a poor
  headline even if it sits on the Pareto front of the two objectives. Pass ``scheduler="none"`` for an
  unpruned front. Optuna gets no intermediate values in multi-objective mode.
- With a searcher, Tune runs trials one after another unless concurrency is limited explicitly: the
  Optuna searcher here limits itself to ``max_concurrent`` live trials (default: what the cluster's
  CPUs/GPUs hold), replacing Tune's ``ConcurrencyLimiter``, which loses trials after a restore (see
  :mod:`audiostyle.sweep_search`). Tests check that trials overlap in time.
- A restored sweep (``resume=True``) keeps its Optuna study; a trial that ended after Tune's last
  experiment snapshot runs again from its last checkpoint and its store row is replaced, not added.
- Methods report some metrics only every few steps; the scheduler and searcher read
  ``tracked.<metric>`` (latest value carried forward), so every result has them.
- The legacy progress table (``CLIReporter``) needs ``RAY_AIR_NEW_OUTPUT=0`` and the default logger
  callbacks include TensorBoard's, which imports torch in the driver: :func:`run` sets the first (unless
  set) and replaces the second with the JSON and CSV loggers only.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import inspect
import json
import logging
import math
import os
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from audiostyle import methods, metrics
from audiostyle.data.dataset import AudioDataset
from audiostyle.data.load import default_cache_dir
from audiostyle.errors import AudiostyleError, check_choice
from audiostyle.methods.base import Method, Objective
from audiostyle.space import Space
from audiostyle.store import Store
from audiostyle.sweep_space import (
    ClipToSpace,
    describe,
    from_description,
    parse_overrides,
    pbt_mutations,
    restrict,
    seed_points,
    to_optuna,
    to_tune,
)
from audiostyle.sweep_trial import TRACKED

log = logging.getLogger(__name__)

SEARCHERS = ("tpe", "nsga2", "random")
SCHEDULERS = ("asha", "pbt", "none")
PREPARED_FORMAT = 1
"""Version of the cached ``prepare`` output layout; bump to invalidate every cached entry."""


# -- objectives ------------------------------------------------------------------------------------
def parse_objectives(objectives: Iterable[Any] | None, method: Method) -> list[Objective]:
    """Objectives as :class:`Objective` from ``Objective``, ``(metric, mode)``, ``{"metric", "mode"}`` or ``"metric:mode"``.

    None gives the method's headline alone.
    """
    if not objectives:
        return [method.headline]
    out: list[Objective] = []
    for item in objectives:
        if isinstance(item, Objective):
            obj = item
        elif isinstance(item, Mapping):
            obj = Objective(item["metric"], item.get("mode", "max"))
        elif isinstance(item, str):
            metric, _, mode = item.partition(":")
            obj = Objective(metric, mode or "max")
        else:
            obj = Objective(*item)
        check_choice(f"mode of objective {obj.metric!r}", obj.mode, ("max", "min"))
        out.append(obj)
    return out


PARETO = (Objective(*metrics.PARETO[0]), Objective(*metrics.PARETO[1]))
"""The default multi-objective pair: content preservation against style match."""


# -- data --------------------------------------------------------------------------------------------
def load_data(
    data: str | AudioDataset,
    *,
    smoke: bool = False,
    seed: int = 0,
    cache_dir: str | None = None,
    domains: Sequence[str] | None = None,
) -> AudioDataset:
    """The sweep's dataset: an :class:`AudioDataset` as given, the demo set, or any source path/URL.

    ``"demo"`` with ``smoke`` is the small in-memory demo set (8 melodies × 3 s, a few seconds to make);
    otherwise ``audiostyle.data.load_dataset(data, domains=domains, ...)`` (which caches decoded audio under
    ``cache_dir``); ``domains`` (None: all) keeps a sweep over two IRMAS instruments from decoding all eleven.
    """
    if isinstance(data, AudioDataset):
        return data
    if data == "demo" and smoke:
        from audiostyle.data.synth import demo_dataset

        return demo_dataset(seed=seed)
    from audiostyle.data import load_dataset

    return load_dataset(data, domains=domains, seed=seed, cache_dir=cache_dir or default_cache_dir())


def dataset_fingerprint(dataset: AudioDataset) -> str:
    """The dataset's own fingerprint, or a hash of its clips (names, splits, audio) when it has none."""
    if dataset.fingerprint:
        return dataset.fingerprint
    digest = hashlib.sha256(f"{dataset.sr}|{dataset.source}".encode())
    for clip in dataset.clips:
        digest.update(f"{clip.domain}|{clip.name}|{clip.split}|{clip.pair_key}|".encode())
        digest.update(np.ascontiguousarray(clip.audio, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _code_version(method: Method) -> str:
    """Hash of the source files a method's ``prepare`` depends on (its module, audio, metrics)."""
    from audiostyle import audio, metrics

    digest = hashlib.sha256()
    for module in (sys.modules[type(method).__module__], audio, metrics):
        digest.update(Path(inspect.getsourcefile(module)).read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class Prepared:
    """The prepared data of a sweep and how it was obtained (``seconds``, cache ``hit``)."""

    data: Any
    seconds: float
    hit: bool


def prepare_data(method: Method, dataset: AudioDataset, base_config: Any, cache_dir: str | None = None) -> Prepared:
    """``method.prepare(dataset, base_config)`` through the feature cache.

    The cache key holds the method, the dataset's fingerprint, the base config and a hash of the code
    ``prepare`` runs, so a changed file, config or code prepares again. The entry is the pickled result
    (as a byte array in the cache's ``.npz``): the cache root is trusted like the code itself.
    """
    from audiostyle.data.cache import FeatureCache

    started = time.perf_counter()
    cache = FeatureCache(cache_dir or default_cache_dir())
    key = {
        "kind": "prepared",
        "format": PREPARED_FORMAT,
        "method": f"{type(method).__module__}:{type(method).__qualname__}",
        "dataset": dataset_fingerprint(dataset),
        "config": dataclasses.asdict(base_config),
        "code": _code_version(method),
    }
    arrays = cache.get_or_compute(
        key, lambda: {"pickle": np.frombuffer(pickle.dumps(method.prepare(dataset, base_config)), dtype=np.uint8)}
    )
    data = pickle.loads(arrays["pickle"].tobytes())
    return Prepared(data, time.perf_counter() - started, cache.hits > 0)


# -- Ray -------------------------------------------------------------------------------------------
def connect(address: str | None = None, *, num_cpus: int | None = None, dashboard: bool = True) -> str:
    """Join a Ray cluster or start a local one; returns ``"existing"``, ``"cluster"`` or ``"local"``.

    Parameters
    ----------
    address : str, optional
        ``None``: ``RAY_ADDRESS`` when set, else the cluster ``ray start`` runs on this machine (as under
        ``ray submit``), else a new local Ray. ``"auto"``: a running cluster or an error. ``"local"``:
        always a new local Ray. Anything else: that cluster's address.
    num_cpus : int, optional
        CPUs of a new local Ray (default: the machine's).
    dashboard : bool
        Start the dashboard of a new local Ray (on 127.0.0.1).
    """
    import ray
    from ray._private.services import canonicalize_bootstrap_address

    if ray.is_initialized():
        return "existing"
    found = None if address == "local" else canonicalize_bootstrap_address(address)
    if found is not None or address not in (None, "local"):
        ray.init(address=found or address, logging_level=logging.WARNING)
        log.info("connected to the Ray cluster at %s", found or address)
        return "cluster"
    ray.init(
        address="local",
        num_cpus=num_cpus or os.cpu_count(),
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        logging_level=logging.WARNING,
    )
    log.info("started a local Ray with %s CPUs (dashboard %s)", num_cpus or os.cpu_count(), "on" if dashboard else "off")
    return "local"


def _storage(storage: str | None, store: str) -> tuple[str, Any]:
    """Ray's ``storage_path`` and ``storage_filesystem``; default ``<store>/_ray``.

    A local path is made absolute (no filesystem). An ``s3://`` location becomes ``bucket/prefix`` on
    s3fs (wrapped for pyarrow), the same client the store uses: endpoint from ``AWS_ENDPOINT_URL``,
    credentials from the usual AWS settings. (pyarrow's own S3 client failed multipart uploads against
    moto's server here.)
    """
    path = storage or f"{store.rstrip('/')}/_ray"
    if not path.startswith("s3://"):
        return str(Path(path).expanduser().absolute()), None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    from audiostyle import fsio

    fs, inner = fsio.filesystem(path)
    return inner, PyFileSystem(FSSpecHandler(fs))


def _searcher(
    search: str, space: Space, objectives: list[Objective], points: list[dict], seed: int, max_concurrent: int
) -> Any:
    """Optuna (TPE, NSGA-II or random sampler, seeded) limited to ``max_concurrent`` live trials."""
    import optuna

    from audiostyle.sweep_search import RestorableOptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }[search]()
    metrics = [TRACKED + o.metric for o in objectives]
    modes = [o.mode for o in objectives]
    multi = len(objectives) > 1
    searcher = RestorableOptunaSearch(
        space=to_optuna(space),
        metric=metrics if multi else metrics[0],
        mode=modes if multi else modes[0],
        points_to_evaluate=points or None,
        sampler=sampler,
    )
    searcher.set_max_concurrency(max_concurrent)
    return searcher


def _scheduler(scheduler: str, headline: Objective, budget: int, grace: int, space: Space, seed: int) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    metric = TRACKED + headline.metric
    if scheduler == "asha":
        # max_t one past the budget: ASHA would otherwise stop every trial at its last report, before
        # the trial's final result (status, final metrics, artifacts) arrives.
        return ASHAScheduler(
            time_attr="step", metric=metric, mode=headline.mode, max_t=budget + 1, grace_period=grace, reduction_factor=3
        )
    if scheduler == "pbt":
        import random

        random.seed(seed)  # PBT draws its exploit/explore choices from Python's global generator
        return PopulationBasedTraining(
            time_attr="step",
            metric=metric,
            mode=headline.mode,
            perturbation_interval=grace,
            hyperparam_mutations=pbt_mutations(space),
            custom_explore_fn=ClipToSpace(dict(space)),
        )
    return FIFOScheduler()


def _reporter(objectives: list[Objective], headline: Objective, space: Space) -> Any:
    from ray.tune import CLIReporter

    shown = {TRACKED + o.metric: o.metric for o in [headline, *objectives]}
    shown["step"] = "step"
    return CLIReporter(
        metric_columns=shown,
        parameter_columns=list(space)[:6],
        max_report_frequency=15,
        max_progress_rows=12,
    )


# -- result ----------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    """What a sweep produced.

    Attributes
    ----------
    sweep_id, method, store : str
    objectives : list of Objective
        The first is the ranking objective (the headline unless objectives were given).
    trials : pandas.DataFrame
        The sweep's rows in the store (one per trial).
    best : dict or None
        The best finished-or-stopped trial by the first objective.
    pareto : pandas.DataFrame
        Non-dominated trials over the objectives (multi-objective sweeps; else the best row).
    experiment_path : str
        Ray's experiment folder (``Tuner.restore`` / ``--resume`` use it).
    prep_seconds : float
        Driver time to prepare the data (load + prepare, or a cache hit).
    """

    sweep_id: str
    method: str
    store: str
    objectives: list[Objective]
    trials: pd.DataFrame
    best: dict[str, Any] | None
    pareto: pd.DataFrame
    experiment_path: str
    prep_seconds: float = math.nan
    cache_hit: bool = False

    def summary(self, top: int = 5) -> str:
        """A markdown table of the best ``top`` trials, then the best config."""
        obj = self.objectives[0]
        lines = [f"sweep {self.sweep_id} ({self.method}): {len(self.trials)} trials in {self.store}"]
        if not len(self.trials):
            return lines[0]
        counts = self.trials["status"].value_counts().to_dict()
        lines.append("status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        ranked = rank(self.trials, obj).head(top)
        config_cols = [c for c in ranked.columns if c.startswith("config.")]
        varying = [c for c in config_cols if self.trials[c].astype(str).nunique() > 1][:6]
        metric_cols = [f"metric.{o.metric}" for o in self.objectives if f"metric.{o.metric}" in ranked]
        cols = ["trial_id", "status", "steps", *metric_cols, *varying]
        lines.append("")
        lines.append("| " + " | ".join(c.removeprefix("config.").removeprefix("metric.") for c in cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for _, row in ranked.iterrows():
            lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
        if self.best is not None:
            config = {k.removeprefix("config."): _json_value(v) for k, v in self.best.items() if k.startswith("config.")}
            lines.append("")
            lines.append(f"best by {obj.metric} ({obj.mode}): trial {self.best['trial_id']} = {_fmt(self.best.get('metric.' + obj.metric))}")
            lines.append("best config: " + json.dumps(config, sort_keys=True, default=str))
            if isinstance(self.best.get("artifact.audio"), str):
                lines.append(f"audio sample: {self.best['artifact.audio']}")
        if len(self.objectives) > 1:
            lines.append(f"Pareto front over {', '.join(o.metric for o in self.objectives)}: {len(self.pareto)} trials")
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _json_value(value: Any) -> Any:
    """A store value as JSON would have it (missing/NaN → None)."""
    value = _plain(value)
    return None if isinstance(value, float) and math.isnan(value) else value


def _fmt(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def rank(trials: pd.DataFrame, objective: Objective) -> pd.DataFrame:
    """Finished and stopped trials with a value for ``objective``, best first."""
    column = f"metric.{objective.metric}"
    if column not in trials:
        return trials.iloc[0:0]
    ok = trials[trials["status"].isin(["finished", "stopped"]) & trials[column].notna()]
    return ok.sort_values(column, ascending=objective.mode == "min", kind="stable")


def pareto_front(trials: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The non-dominated finished/stopped trials over ``objectives``."""
    columns = [f"metric.{o.metric}" for o in objectives]
    if any(c not in trials for c in columns):
        return trials.iloc[0:0]
    ok = trials[trials["status"].isin(["finished", "stopped"])].dropna(subset=columns)
    signs = np.array([1.0 if o.mode == "max" else -1.0 for o in objectives])
    values = ok[columns].to_numpy(dtype=float) * signs  # larger is better in every column
    keep = [
        not np.any(np.all(values >= v, axis=1) & np.any(values > v, axis=1)) for v in values
    ]
    return ok[np.array(keep, dtype=bool)] if len(ok) else ok


# -- run ---------------------------------------------------------------------------------------------
def _new_sweep_id(method: str) -> str:
    return f"{method}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{os.getpid() % 10000:04d}"


def _find_manifest(store: Store, method: str, name: str | None) -> dict[str, Any]:
    manifests = store.sweeps(method)
    if name:
        manifests = [m for m in manifests if m.get("sweep_id") == name]
    if not manifests:
        which = f"sweep {name!r}" if name else f"any {method} sweep"
        raise AudiostyleError(
            f"--resume: found no manifest of {which} in store {store.root!r}. "
            "Pass the --store (and --name) the interrupted sweep used."
        )
    return max(manifests, key=lambda m: str(m.get("started_at", "")))


def run(
    method: str,
    *,
    space: Space | None = None,
    overrides: Mapping[str, Any] | None = None,
    data: str | AudioDataset = "demo",
    store: str = "results",
    samples: int = 16,
    steps: int | None = None,
    grace_steps: int | None = None,
    max_concurrent: int | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    search: str | None = None,
    points: Iterable[Mapping[str, Any]] = (),
    objectives: Iterable[Any] | None = None,
    scheduler: str = "asha",
    seed: int = 0,
    resume: bool = False,
    name: str | None = None,
    storage: str | None = None,
    address: str | None = None,
    smoke: bool = False,
    max_failures: int = 2,
    cache_dir: str | None = None,
    dashboard: bool = True,
    verbose: int = 1,
) -> SweepResult:
    """Run (or resume) a hyperparameter sweep of ``method`` and store every trial.

    Parameters
    ----------
    method : str
        A registered method name (``audiostyle.methods.names()``).
    space : dict, optional
        ``{config_field: Float|Int|Choice}``; default ``method.default_space()``. Fields in
        ``overrides`` are not searched.
    overrides : dict, optional
        Fixed config values for every trial.
    data : str or AudioDataset
        ``"demo"``, a dataset path or ``s3://`` URL, or a dataset object.
    store : str
        Result store root, local path or ``s3://bucket/prefix``.
    samples : int
        Number of trials.
    steps : int, optional
        Step budget per trial (sets the config's ``steps``); default the method's.
    grace_steps : int, optional
        ASHA's grace period / PBT's perturbation interval in steps; default a quarter of the budget.
    max_concurrent : int, optional
        Trials at once; default as many as the cluster's CPUs (or GPUs) hold.
    cpus_per_trial, gpus_per_trial : float
        Resources per trial; ``gpus_per_trial=0.25`` lets four trials share a GPU.
    search : {"tpe", "nsga2", "random"}, optional
        Optuna sampler; default TPE, or NSGA-II with several objectives. PBT uses random search.
    points : list of dict
        Configs to try first (e.g. a previous sweep's best), before the method's ``best_known()``.
    objectives : list, optional
        ``[("melody", "max"), ("timbre_dist", "min")]`` (or ``"metric:mode"`` strings) for a
        Pareto sweep; default the method's headline.
    scheduler : {"asha", "pbt", "none"}
        Early stopping on the method's headline (see the module notes on multi-objective sweeps).
    seed : int
        Seeds the sampler and every trial.
    resume : bool
        Continue the latest (or ``name``d) interrupted sweep of ``method`` in ``store``: its manifest
        gives the space and arguments; only unfinished trials run.
    name : str, optional
        Sweep id (default ``<method>-<UTC time>-<pid>``).
    storage : str, optional
        Ray's storage (checkpoints, experiment state), local or ``s3://``; default ``<store>/_ray``.
        On a multi-node cluster use ``s3://`` or a shared path (and an ``s3://`` store).
    address : str, optional
        Ray address (see :func:`connect`).
    smoke : bool
        Tiny data (the in-memory demo set when ``data="demo"``); the sweep scripts also shrink the budget.
    max_failures : int
        Ray retries of a trial lost to the platform (node loss, killed worker), from its last
        checkpoint. Failures of the method itself are recorded, never retried.
    cache_dir : str, optional
        Feature cache root (default :func:`default_cache_dir`).
    dashboard : bool
        Start the dashboard with a new local Ray.
    verbose : int
        Ray Tune's verbosity (1 = the live table).

    Returns
    -------
    SweepResult
    """
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from audiostyle.monitor import trial_name_creator
    from audiostyle.sweep_callback import StoreCallback, status_of
    from audiostyle.sweep_trial import TrialSpec, run_trial

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # trials checkpoint at every stateful report: Tune then snapshots often, which is what resume wants
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # trials run in Ray's per-trial working folders: a relative store path must be made absolute here
    store = store if "://" in str(store) else str(Path(store).expanduser().absolute())
    the_store = Store(store)
    m = methods.get(method)
    manifest: dict[str, Any] | None = None
    if resume:
        manifest = _find_manifest(the_store, method, name)
        args = manifest["args"]
        space = from_description(manifest["space"])
        overrides, samples, seed = args["overrides"], args["samples"], args["seed"]
        search, scheduler, objectives = args["search"], args["scheduler"], manifest["objectives"]
        cpus_per_trial, gpus_per_trial = args["cpus_per_trial"], args["gpus_per_trial"]
        max_concurrent, grace_steps, smoke = args["max_concurrent"], args["grace_steps"], args["smoke"]
        name, steps = manifest["sweep_id"], None  # the manifest's overrides already hold its steps
        storage = manifest["storage"]
        data = data if isinstance(data, AudioDataset) else args["data"]
        log.info("resuming sweep %s of %s from %s", name, method, storage)
    overrides = dict(overrides or {})
    if steps is not None:
        overrides["steps"] = int(steps)
    base = m.make_config(overrides)
    budget = int(getattr(base, "steps", 0) or 0)
    objs = parse_objectives(objectives, m)
    search = search or ("nsga2" if len(objs) > 1 else "tpe")
    check_choice("search", search, SEARCHERS)
    check_choice("scheduler", scheduler, SCHEDULERS)
    if scheduler != "none" and budget < 1:
        raise AudiostyleError(f"{method}: its config has no 'steps' budget, so {scheduler} cannot schedule: use scheduler='none'.")
    if samples < 1:
        raise AudiostyleError(f"samples={samples}: a sweep needs at least one trial.")
    searched = restrict(dict(space if space is not None else m.default_space()), overrides)
    if not searched:
        raise AudiostyleError(f"{method}: nothing left to search (every field of the space is fixed by overrides).")
    grace = max(1, int(grace_steps or budget // 4 or 1))
    sweep_id = name or _new_sweep_id(method)
    storage_path, storage_fs = _storage(storage, store)

    # 1. Ray
    mode = connect(address, dashboard=dashboard)
    import ray

    resources = ray.cluster_resources()
    if gpus_per_trial and not resources.get("GPU"):
        if mode == "cluster":  # an autoscaling cluster adds GPU workers when trials ask for them
            log.warning("no GPU in the Ray cluster yet: trials wait until the autoscaler adds GPU nodes")
        else:
            raise AudiostyleError(
                f"gpus_per_trial={gpus_per_trial} but this Ray ({mode}) has no GPU: pass --gpus-per-trial 0, "
                "or submit to a GPU cluster (ray submit cluster/gpu.yaml sweeps/<method>.py -- ...)."
            )
    if max_concurrent is None:  # what the cluster holds now (all samples while an autoscaler grows it)
        by_cpu = int(resources.get("CPU", 0) // cpus_per_trial) if cpus_per_trial and resources.get("CPU") else samples
        by_gpu = int(resources.get("GPU", 0) // gpus_per_trial) if gpus_per_trial and resources.get("GPU") else samples
        max_concurrent = max(1, min(by_cpu, by_gpu, samples))

    # 2. data, once, in the driver
    dataset = load_data(data, smoke=smoke, seed=seed, cache_dir=cache_dir, domains=m.data_domains(base))
    prepared = prepare_data(m, dataset, base, cache_dir)
    log.info("data prepared in %.2f s (%s)", prepared.seconds, "cache hit" if prepared.hit else "computed")

    # 3. the tuner
    headline = m.headline
    tracked = tuple(dict.fromkeys([headline.metric, *(o.metric for o in objs)]))
    spec = TrialSpec(method=m, sweep_id=sweep_id, store_root=the_store.root, overrides=overrides, tracked=tracked, seed=seed)
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, data=prepared.data, spec=spec),
        {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
    )
    experiment_path = f"{storage_path.rstrip('/')}/{sweep_id}"
    if storage_fs is not None:
        experiment_path = f"s3://{experiment_path}"
    if manifest is None:
        the_store.write_sweep(
            {
                "method": method,
                "sweep_id": sweep_id,
                "objectives": [dataclasses.asdict(o) for o in objs],
                "headline": dataclasses.asdict(headline),
                "space": describe(searched),
                "storage": storage or f"{store.rstrip('/')}/_ray",
                "experiment_path": experiment_path,
                "started_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "args": {
                    "overrides": overrides,
                    "samples": samples,
                    "seed": seed,
                    "search": search,
                    "scheduler": scheduler,
                    "cpus_per_trial": cpus_per_trial,
                    "gpus_per_trial": gpus_per_trial,
                    "max_concurrent": max_concurrent,
                    "grace_steps": grace,
                    "budget_steps": budget,
                    "smoke": smoke,
                    "data": data if isinstance(data, str) else dataset.source or "in-memory",
                },
            }
        )
    if resume:
        from ray.tune import Tuner

        if not Tuner.can_restore(experiment_path if storage_fs is None else experiment_path.removeprefix("s3://"), storage_filesystem=storage_fs):
            raise AudiostyleError(
                f"--resume: no Ray experiment state at {experiment_path}: the sweep stopped before Ray saved it. "
                "Start it again without --resume."
            )
        tuner = Tuner.restore(
            experiment_path if storage_fs is None else experiment_path.removeprefix("s3://"),
            trainable,
            resume_unfinished=True,
            # A method's own failure (NaN, bad config) is a recorded result, never a Ray error; a trial Ray
            # marked errored was lost to the platform (its worker died with the driver, say): continue it
            # from its last checkpoint.
            resume_errored=True,
            restart_errored=False,
            storage_filesystem=storage_fs,
        )
    else:
        points = seed_points([*points, *m.best_known()], searched, dataclasses.asdict(base))
        callbacks = [
            StoreCallback(the_store.root, m, sweep_id, objs[0], overrides, seed),
            JsonLoggerCallback(),
            CSVLoggerCallback(),
            *_monitor(sweep_id, method, headline, status_of),
        ]
        if scheduler == "pbt":  # PBT mutates configs itself: random starting points, Tune's own limiter
            from ray.tune.search.basic_variant import BasicVariantGenerator

            search_alg = BasicVariantGenerator(
                points_to_evaluate=points or None, random_state=seed, max_concurrent=max_concurrent
            )
            param_space = to_tune(searched)
        else:  # the searcher limits concurrency itself (see audiostyle.sweep_search)
            search_alg, param_space = _searcher(search, searched, objs, points, seed, max_concurrent), None
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                search_alg=search_alg,
                scheduler=_scheduler(scheduler, headline, budget, grace, searched, seed),
                num_samples=samples,
                reuse_actors=True,
                trial_name_creator=trial_name_creator(method),
                trial_dirname_creator=trial_name_creator(method),
            ),
            run_config=tune.RunConfig(
                name=sweep_id,
                storage_path=storage_path,
                storage_filesystem=storage_fs,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                # PBT clones other trials' checkpoints: keep more of them
                checkpoint_config=tune.CheckpointConfig(num_to_keep=4 if scheduler == "pbt" else 2),
                callbacks=callbacks,
                progress_reporter=_reporter(objs, headline, searched),
                verbose=verbose,
            ),
        )
    started = time.perf_counter()
    tuner.fit()
    log.info("sweep %s ran in %.1f s", sweep_id, time.perf_counter() - started)

    trials = the_store.trials(method, sweep_id)
    ranked = rank(trials, objs[0])
    best = ranked.iloc[0].to_dict() if len(ranked) else None
    front = pareto_front(trials, objs) if len(objs) > 1 else ranked.head(1)
    return SweepResult(
        sweep_id=sweep_id,
        method=method,
        store=the_store.root,
        objectives=objs,
        trials=trials,
        best=best,
        pareto=front,
        experiment_path=experiment_path,
        prep_seconds=prepared.seconds,
        cache_hit=prepared.hit,
    )


def _monitor(sweep_id: str, method: str, headline: Objective, status_of: Any) -> list[Any]:
    """The dashboard metrics callback of :mod:`audiostyle.monitor` (trials running/ended, best, steps/s)."""
    from audiostyle.monitor import MonitorCallback

    return [
        MonitorCallback(
            sweep_id, method, TRACKED + headline.metric, headline.mode, step_key="step",
            status_of=lambda trial: status_of(trial.last_result),
        )
    ]


# -- command line --------------------------------------------------------------------------------------
@dataclass
class Budget:
    """A sweep script's budgets: trials, steps and fixed config values, for a full run and for ``--smoke``.

    ``overrides`` are fixed in every run of the script (e.g. data fields a sweep must not vary, since
    the data is prepared once); ``demo_overrides`` come on top with ``--data demo`` (e.g. the demo set's
    domain pair that transfers best); ``smoke_overrides`` on top with ``--smoke``; then the unsearched fields
    of ``--config FILE`` (its searched fields become the searcher's first point), then ``--set``.
    """

    samples: int = 16
    steps: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    demo_overrides: dict[str, Any] = field(default_factory=dict)
    smoke_samples: int = 4
    smoke_steps: int | None = None
    smoke_overrides: dict[str, Any] = field(default_factory=dict)
    max_concurrent: int | None = None


def load_config_file(path: str) -> dict[str, Any]:
    """Flat ``{field: value}`` config from a YAML or JSON file (what ``audiostyle.best --export`` writes)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f)  # JSON is YAML too
    except OSError as exc:
        raise AudiostyleError(f"cannot read config file {path!r}: {exc.strerror}. Give an existing YAML/JSON file.") from exc
    except yaml.YAMLError as exc:
        raise AudiostyleError(f"config file {path!r} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise AudiostyleError(f"config file {path!r} must hold a mapping of config fields to values, got {type(values).__name__}.")
    return values


def split_config(values: Mapping[str, Any], space: Space) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(fixed, start)``: a config file's values outside the searched ``space`` are fixed; those inside are
    the searcher's first point, so a sweep starts from (and searches around) that config."""
    fixed = {k: v for k, v in values.items() if k not in space}
    start = {k: v for k, v in values.items() if k in space}
    return fixed, start


def build_parser(method: str, description: str, budget: Budget, variants: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The argument parser every ``sweeps/<method>.py`` shares.

    Parameters
    ----------
    method : str
        The script's method.
    description : str
        What the script sweeps (shown by ``--help``).
    budget : Budget
    variants : mapping, optional
        ``--variant`` label → registered method name, the first being the default
        (e.g. ``{"plain": "wave_vae", "pool": "wave_vae_pool"}``).
    """
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Runs locally, or on a cluster: ray submit cluster/gpu.yaml sweeps/<script>.py -- --flags",
    )
    if variants:
        labels = list(variants)
        parser.add_argument("--variant", choices=labels, default=labels[0], help="method variant to sweep: "
                            + ", ".join(f"{k} = {v}" for k, v in variants.items()))
    parser.add_argument("--data", default="demo", help="dataset: 'demo', a folder, or s3://bucket/prefix")
    parser.add_argument("--store", default="results", help="result store: folder or s3://bucket/prefix")
    parser.add_argument("--samples", type=int, default=None, help=f"number of trials (default {budget.samples}; smoke {budget.smoke_samples})")
    parser.add_argument("--steps", type=int, default=None, help="step budget per trial (default: the method's, or the smoke budget)")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPU share per trial (0.25: four trials per GPU)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial")
    parser.add_argument("--max-concurrent", type=int, default=budget.max_concurrent, help="trials at once (default: what the cluster holds)")
    parser.add_argument("--search", choices=SEARCHERS, default=None, help="Optuna sampler (default tpe; nsga2 with --pareto)")
    parser.add_argument("--scheduler", choices=SCHEDULERS, default="asha", help="early stopping on the headline metric")
    parser.add_argument("--pareto", action="store_true", help="multi-objective: melody (max) vs timbre_dist (min), NSGA-II")
    parser.add_argument("--config", default=None, metavar="FILE", help="a YAML/JSON config (e.g. from `audiostyle.best --export`): its searched fields are the first trial, the rest are fixed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="fix a config value (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler and the trials")
    parser.add_argument("--name", default=None, help="sweep id (default: method and UTC time); with --resume, the sweep to resume")
    parser.add_argument("--resume", action="store_true", help="continue the latest (or --name) interrupted sweep in --store")
    parser.add_argument("--storage", default=None, help="Ray storage for checkpoints/experiment state (default <store>/_ray)")
    parser.add_argument("--address", default=None, help="Ray address: default a running cluster if any, else local; 'local' forces a new one")
    parser.add_argument("--smoke", action="store_true", help="tiny sweep on the small demo set (about a minute here)")
    parser.add_argument("--max-failures", type=int, default=2, help="retries of a trial lost to a node failure")
    parser.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard with a local Ray")
    parser.add_argument("--top", type=int, default=5, help="rows in the final summary")
    return parser


def main(
    method: str,
    description: str,
    budget: Budget,
    *,
    space: Space | None = None,
    variants: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    """Parse a sweep script's flags, run the sweep, print its summary; the exit status.

    ``space`` (default: the method's own) applies to every variant.
    """
    args = build_parser(method, description, budget, variants).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    chosen = (variants or {}).get(getattr(args, "variant", None), method)
    try:
        searched = space if space is not None else methods.get(chosen).default_space()
        file_fixed, file_start = split_config(load_config_file(args.config) if args.config else {}, searched)
        overrides = {
            **budget.overrides,
            **(budget.demo_overrides if args.data == "demo" else {}),
            **(budget.smoke_overrides if args.smoke else {}),
            **file_fixed,
            **parse_overrides(args.overrides),
        }
        start = {k: v for k, v in file_start.items() if k not in overrides}
        result = run(
            chosen,
            space=space,
            overrides=overrides,
            data=args.data,
            store=args.store,
            samples=args.samples or (budget.smoke_samples if args.smoke else budget.samples),
            steps=args.steps or (budget.smoke_steps if args.smoke else budget.steps),
            max_concurrent=args.max_concurrent,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            search=args.search,
            objectives=PARETO if args.pareto else None,
            scheduler=args.scheduler,
            seed=args.seed,
            resume=args.resume,
            name=args.name,
            storage=args.storage,
            address=args.address,
            smoke=args.smoke,
            max_failures=args.max_failures,
            dashboard=not args.no_dashboard,
            points=[start] if start else (),
        )
    except AudiostyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(result.summary(top=args.top))
    return 0
