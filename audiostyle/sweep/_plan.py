"""The sweep's plan: everything a sweep is, decided once before Ray starts, written as its manifest.

:class:`Settings` holds what the caller asked for (None: not asked, so the default applies). :func:`new_plan`
turns settings into a :class:`Plan`; the manifest in the store is the plan (:meth:`Plan.to_manifest`), and
``--resume`` is the plan read back (:func:`resumed_plan`). Ray restores a sweep exactly as it was (trials,
searcher, scheduler, resources), so a setting given with ``--resume`` must equal the plan's: any that does not
is refused, listed with the value the sweep ran with. What only the driver uses (Ray address, dashboard,
feature cache, verbosity) is not part of the plan and applies to a resumed sweep as to a new one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from audiostyle import fsio, methods
from audiostyle.data.dataset import AudioDataset
from audiostyle.data.layouts import check_source_url
from audiostyle.errors import AudiostyleError, check_choice, check_positive
from audiostyle.metrics import Objective, parse_objectives
from audiostyle.methods import Method
from audiostyle.methods.space import Space, check_space, describe, from_description, restrict, seed_points
from audiostyle.store import Store
from audiostyle.sweep._ray import default_storage, experiment_path
from audiostyle.sweep._schedule import DEFAULT_SCHEDULER, SCHEDULERS, report_cadence
from audiostyle.sweep._search import SEARCHERS, population_size


@dataclass
class Settings:
    """What a caller asks of a sweep (:func:`audiostyle.sweep.run`'s keyword arguments); every field None (or
    empty) means "not asked": its default applies.

    ``space``: ``{config_field: Float|Int|Choice}``, default the method's ``default_space()``; fields in
    ``overrides`` are not searched. ``overrides``: config values fixed for every trial. ``data``: ``"demo"``
    (default), a dataset path or ``s3://`` URL, or an ``AudioDataset``. ``samples``: trials (16). ``steps``: step
    budget per trial (the config's ``steps``; must agree with ``overrides``). ``grace_steps``: the first rung of
    halving or ASHA / PBT's perturbation interval (a quarter of the budget). ``max_concurrent``: trials at once (what the cluster
    holds). ``cpus_per_trial`` (1), ``gpus_per_trial`` (0 to 1; 0.25 lets four trials share a GPU, each capped at a
    quarter of its memory). ``search``: ``"tpe"``, ``"nsga2"`` or ``"random"`` (TPE; NSGA-II with several
    objectives). ``population``: NSGA-II's (a
    quarter of the trials, 2 to 50). ``points``: configs to try first, before the method's ``best_known()``.
    ``objectives``: e.g. ``[("melody", "max"), ("timbre_dist", "min")]`` or ``"metric[:mode]"`` strings for a
    Pareto sweep (default the headline). ``scheduler``: ``"halving"`` (synchronous successive halving,
    the default with one objective), ``"asha"`` (the default with several: Pareto ASHA), ``"pbt"`` (mutates the
    continuous fields only) or ``"none"``. ``seed`` (0). ``storage``: Ray's
    checkpoints and experiment state, local or ``s3://`` (``<store>/_ray``; on a multi-node cluster use ``s3://``
    or a shared path). ``smoke``: the small in-memory demo set with ``data="demo"``. ``max_failures``: Ray's
    retries of a trial lost to the platform (2); failures of the method itself are recorded, never retried.
    ``trial_budget_s``: seconds a trial may spend in its method (``trial.train_s``; None: no limit); one past it is
    stopped and recorded as stopped (pruned for Optuna) with its last metrics; the scheduler's rungs are then in seconds
    (:func:`audiostyle.sweep._schedule.rung_clock`). ``warm_start`` (True): the best configs of the
    method's earlier sweeps in the store run first (:func:`warm_points`), after ``points``, before ``best_known()``.
    """

    space: Space | None = None
    overrides: Mapping[str, Any] | None = None
    data: str | AudioDataset | None = None
    samples: int | None = None
    steps: int | None = None
    grace_steps: int | None = None
    max_concurrent: int | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    search: str | None = None
    population: int | None = None
    points: Iterable[Mapping[str, Any]] = ()
    objectives: Iterable[Any] | None = None
    scheduler: str | None = None
    seed: int | None = None
    storage: str | None = None
    smoke: bool | None = None
    max_failures: int | None = None
    trial_budget_s: float | None = None
    warm_start: bool | None = None


@dataclass
class Plan:
    """One sweep, decided: what it searches, how, on what budget, where it writes.

    Attributes
    ----------
    method, sweep_id, store : str
    space : Space
        The searched dimensions (the fields ``overrides`` fixes removed).
    overrides : dict
        Config values every trial shares, ``steps`` among them.
    objectives : list of Objective
        What the searcher optimises; the first ranks the trials. ``headline`` is the method's.
    search, scheduler : str
        Optuna sampler (``tpe``, ``nsga2``, ``random``) and early stopping (``halving``, ``asha``, ``pbt``, ``none``).
    samples, seed, population : int
        Trials, the seed of the sampler and the trials, NSGA-II's population (None: sized to ``samples``).
    budget_steps, grace_steps : int
        Steps per trial; the first rung of halving or ASHA and PBT's perturbation interval.
    cpus_per_trial, gpus_per_trial : float
    max_concurrent : int or None
        Trials at once (None until Ray is connected: what the cluster holds).
    max_failures : int
        Ray's retries of a trial lost to the platform.
    trial_budget_s : float or None
        Running seconds after which a trial is stopped (None: none).
    warm_points : int
        How many of ``points`` are the best configs of earlier sweeps in the store (a warm start).
    smoke : bool
    data, storage : str
        The dataset's source and Ray's storage (checkpoints, experiment state).
    points : list of dict
        The searcher's first configs (given points, then the method's best known), complete over ``space``.
    started_at : str
        ISO time the sweep started.
    """

    method: str
    sweep_id: str
    store: str
    space: Space
    overrides: dict[str, Any]
    objectives: list[Objective]
    headline: Objective
    search: str
    scheduler: str
    samples: int
    seed: int
    budget_steps: int
    grace_steps: int
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int | None
    max_failures: int
    smoke: bool
    data: str
    storage: str
    population: int | None = None
    points: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = ""
    trial_budget_s: float | None = None
    warm_points: int = 0

    @property
    def experiment_path(self) -> str:
        """Ray's experiment folder of the sweep (``Tuner.restore`` reads it)."""
        return experiment_path(self.storage, self.sweep_id)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest the store keeps: identity and space at the top, the rest under ``args``.

        It names no path of the store itself: ``storage`` and ``experiment_path`` are relative to the store root
        when Ray's storage lies inside the store (the default ``_ray``), so a store copied, moved or synced
        elsewhere resumes from where it now is.
        """
        args = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _TOP}
        storage = in_store(self.storage, self.store)
        return {
            "method": self.method,
            "sweep_id": self.sweep_id,
            "objectives": [dataclasses.asdict(o) for o in self.objectives],
            "headline": dataclasses.asdict(self.headline),
            "space": describe(self.space),
            "storage": storage,
            "experiment_path": experiment_path(storage, self.sweep_id),
            "started_at": self.started_at,
            "args": args,
        }

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], store: str) -> "Plan":
        """The plan a manifest (:meth:`to_manifest`) holds, for the store at ``store`` that holds the manifest."""
        args = dict(manifest["args"])
        return cls(
            method=manifest["method"],
            sweep_id=manifest["sweep_id"],
            store=store,
            space=from_description(manifest["space"]),
            objectives=[Objective(o["metric"], o["mode"]) for o in manifest["objectives"]],
            headline=Objective(**manifest["headline"]),
            storage=from_store(manifest["storage"], store),
            started_at=manifest["started_at"],
            **{k: v for k, v in args.items() if k in _ARGS},
        )


_TOP = ("method", "sweep_id", "store", "space", "objectives", "headline", "storage", "started_at")


def in_store(path: str, store: str) -> str:
    """``path`` relative to the store root when it lies inside the store (``<store>/_ray`` → ``_ray``), else as is."""
    root = store.rstrip("/") + "/"
    return path[len(root):] if path.startswith(root) else path


def from_store(path: str, store: str) -> str:
    """The inverse of :func:`in_store`: a relative ``path`` joined to the store root, a URL or absolute path as is."""
    return path if fsio.is_anchored(path) else f"{store.rstrip('/')}/{path}"
_ARGS = tuple(f.name for f in dataclasses.fields(Plan) if f.name not in _TOP)


def new_sweep_id(method: str) -> str:
    """``<method>-<UTC time>-<pid>``."""
    return f"{method}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{os.getpid() % 10000:04d}"


def fixed_values(settings: Settings, method: Method) -> dict[str, Any]:
    """The config values the caller fixed: ``overrides`` over the preset they name (so a preset's fields are not
    searched), with ``steps`` when given (they must agree)."""
    overrides = method.expand_preset(settings.overrides)
    if settings.steps is not None:
        if overrides.get("steps", settings.steps) != settings.steps:
            raise AudiostyleError(
                f"steps={settings.steps} and overrides steps={overrides['steps']} disagree: give the budget once."
            )
        overrides["steps"] = int(settings.steps)
    return overrides


def _data_label(data: str | AudioDataset | None) -> str:
    if isinstance(data, AudioDataset):
        return data.source or "in-memory"
    return data or "demo"


def check_gpu_share(gpus_per_trial: float) -> None:
    """Refuse a GPU share a trial cannot use: negative, or more than one GPU (a trial trains on one device)."""
    if gpus_per_trial < 0:
        raise AudiostyleError(f"gpus_per_trial={gpus_per_trial}: a GPU share cannot be negative; use 0 (CPU) to 1.")
    if gpus_per_trial > 1:
        raise AudiostyleError(
            f"gpus_per_trial={gpus_per_trial}: a trial trains on one GPU (no method splits its training over "
            "several devices), so the others would sit idle. Use --gpus-per-trial 1 (or a share such as 0.25) "
            "and let more trials run side by side."
        )


def check_counts(samples: int, settings: Settings) -> None:
    """Refuse counts no sweep can run with: no trials, no concurrency, no CPU share, negative retries."""
    if samples < 1:
        raise AudiostyleError(f"samples={samples}: a sweep needs at least one trial; pass --samples 1 or more.")
    if settings.max_concurrent is not None and settings.max_concurrent < 1:
        raise AudiostyleError(f"max_concurrent={settings.max_concurrent}: no trial could ever start; pass "
                              "--max-concurrent 1 or more, or leave it out (what the cluster holds).")
    if settings.cpus_per_trial is not None and not settings.cpus_per_trial > 0:
        raise AudiostyleError(f"cpus_per_trial={settings.cpus_per_trial}: a trial needs a share of a CPU; pass "
                              "--cpus-per-trial 0.5, 1 or more.")
    if settings.max_failures is not None and settings.max_failures < 0:
        raise AudiostyleError(f"max_failures={settings.max_failures}: retries cannot be negative (Ray would retry "
                              "for ever); pass --max-failures 0 or more.")


def check_new_name(store: Store, sweep_id: str) -> None:
    """Refuse a sweep id the store already holds: a new sweep under it would merge into the old one."""
    if any(m.get("sweep_id") == sweep_id for m in store.sweeps()):
        raise AudiostyleError(
            f"--name {sweep_id}: store {store.root!r} already holds a sweep of that name. Continue it with "
            f"--resume --name {sweep_id}, or give the new sweep another --name."
        )


def new_plan(method: str, settings: Settings, store: str, name: str | None = None) -> Plan:
    """A new sweep's plan: the settings checked, defaults filled in (see :func:`audiostyle.sweep.run`)."""
    m = methods.get(method)
    overrides = fixed_values(settings, m)
    base = m.make_config(overrides)
    budget = int(getattr(base, "steps", 0) or 0)
    objectives = parse_objectives(settings.objectives, m.headline)
    search = settings.search or ("nsga2" if len(objectives) > 1 else "tpe")
    scheduler = settings.scheduler or (DEFAULT_SCHEDULER if len(objectives) == 1 else "asha")
    check_choice("search", search, SEARCHERS)
    check_choice("scheduler", scheduler, SCHEDULERS)
    if scheduler == "halving" and len(objectives) > 1:
        raise AudiostyleError("scheduler='halving' ranks trials on one objective and --pareto gives "
                              f"{len(objectives)}: use scheduler='asha' (Pareto ASHA) with --pareto.")
    overrides.update(report_cadence(base, budget, overrides, scheduler))
    samples = 16 if settings.samples is None else int(settings.samples)
    if scheduler != "none" and budget < 1:
        raise AudiostyleError(f"{method}: its config has no 'steps' budget, so {scheduler} cannot schedule: use scheduler='none'.")
    check_counts(samples, settings)
    if isinstance(settings.data, str):
        check_source_url(settings.data)
    if overrides.get("amp") == "fp16" and not settings.gpus_per_trial:
        raise AudiostyleError("amp='fp16' is CUDA's half precision and trials here run on the CPU: pass "
                              "--gpus-per-trial with it, or --set amp=bf16 (CPUs with AVX512-BF16/AMX) or amp=auto.")
    check_gpu_share(settings.gpus_per_trial or 0.0)
    if settings.trial_budget_s is not None:
        check_positive("trial_budget_s", settings.trial_budget_s, fix="Give the seconds a trial may run, e.g. 600.")
    if search == "nsga2":
        population_size(samples, settings.population)  # refused here, before the manifest is written
    space = restrict(check_space(dict(settings.space if settings.space is not None else m.default_space())), overrides)
    if not space:
        raise AudiostyleError(f"{method}: nothing left to search (every field of the space is fixed by overrides).")
    warm = warm_points(Store(store), m, space, dataclasses.asdict(base)) if settings.warm_start is not False else []
    return Plan(
        method=method, sweep_id=name or new_sweep_id(method), store=store, space=space, overrides=overrides,
        objectives=objectives, headline=m.headline, search=search, scheduler=scheduler, samples=samples,
        seed=settings.seed or 0, budget_steps=budget, grace_steps=max(1, int(settings.grace_steps or budget // 4 or 1)),
        cpus_per_trial=1.0 if settings.cpus_per_trial is None else settings.cpus_per_trial,
        gpus_per_trial=settings.gpus_per_trial or 0.0, max_concurrent=settings.max_concurrent,
        max_failures=2 if settings.max_failures is None else settings.max_failures, smoke=bool(settings.smoke),
        data=_data_label(settings.data), storage=settings.storage or default_storage(store),
        population=settings.population, started_at=dt.datetime.now(dt.timezone.utc).isoformat(),
        points=seed_points([*settings.points, *warm, *m.best_known()], space, dataclasses.asdict(base)),
        trial_budget_s=settings.trial_budget_s, warm_points=len(warm),
    )


WARM_START_CONFIGS = 3
"""The best configs of earlier sweeps a new sweep of the same method tries first (:func:`warm_points`)."""


def warm_points(store: Store, method: Method, space: Space, defaults: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The best :data:`WARM_START_CONFIGS` distinct configs over ``space`` of ``method``'s earlier sweeps in ``store``
    (any data), ranked as ``audiostyle.best`` ranks them; ``[]`` for a store without such trials."""
    from audiostyle import analysis

    out: list[dict[str, Any]] = []
    for _, row in analysis.rank(store.trials(method.name), method.headline).iterrows():
        for point in seed_points([analysis.config_of(row, method.name)], space, defaults):
            if point not in out:
                out.append(point)
        if len(out) == WARM_START_CONFIGS:
            break
    return out


def find_manifest(store: Store, method: str, name: str | None) -> dict[str, Any]:
    """The latest (or ``name``d) manifest of ``method`` in ``store``."""
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


FLAGS = {
    "samples": "--samples", "steps": "--steps", "overrides": "--set/--config", "space": "the script's space",
    "grace_steps": "grace_steps", "max_concurrent": "--max-concurrent", "cpus_per_trial": "--cpus-per-trial",
    "gpus_per_trial": "--gpus-per-trial", "search": "--search", "population": "--population",
    "points": "--config (first points)", "objectives": "--pareto", "scheduler": "--scheduler", "seed": "--seed",
    "storage": "--storage", "smoke": "--smoke", "max_failures": "--max-failures", "data": "--data",
    "trial_budget_s": "--trial-budget",
}
"""How each setting is given on a sweep script's command line (for the messages of :func:`conflicts`)."""


_MISSING = object()


def conflicts(plan: Plan, settings: Settings) -> dict[str, tuple[Any, Any]]:
    """``{setting: (asked, planned)}`` for each setting given that differs from the plan."""
    asked: dict[str, tuple[Any, Any]] = {}
    planned = {**plan.overrides, "steps": plan.budget_steps}
    for name, value in dict(settings.overrides or {}).items():
        if planned.get(name, _MISSING) != value:
            asked[f"overrides.{name}"] = (value, planned.get(name, "unset"))
    if settings.steps is not None and settings.steps != plan.budget_steps:
        asked["steps"] = (settings.steps, plan.budget_steps)
    if settings.space is not None and describe(restrict(dict(settings.space), plan.overrides)) != describe(plan.space):
        asked["space"] = (sorted(settings.space), sorted(plan.space))
    if settings.objectives and parse_objectives(settings.objectives, plan.headline) != plan.objectives:
        asked["objectives"] = ([o.metric for o in parse_objectives(settings.objectives, plan.headline)],
                               [o.metric for o in plan.objectives])
    if list(settings.points):
        asked["points"] = (list(settings.points), "the restored searcher's")
    if isinstance(settings.data, str) and settings.data != plan.data:
        asked["data"] = (settings.data, plan.data)
    for name in ("samples", "grace_steps", "max_concurrent", "cpus_per_trial", "gpus_per_trial", "search",
                 "population", "scheduler", "seed", "storage", "smoke", "max_failures", "trial_budget_s"):
        value = getattr(settings, name)
        if value is not None and value != getattr(plan, name):
            asked[name] = (value, getattr(plan, name))
    return asked


def resumed_plan(store: Store, method: str, settings: Settings, name: str | None = None) -> Plan:
    """The plan of the latest (or ``name``d) sweep of ``method`` in ``store``, read back from its manifest.

    Raises :class:`AudiostyleError` listing every setting given that differs from the plan (Ray restores the
    sweep as it ran: its trials, searcher, scheduler and resources).
    """
    plan = Plan.from_manifest(find_manifest(store, method, name), store.root)
    asked = conflicts(plan, settings)
    if asked:
        listed = "; ".join(
            f"{FLAGS.get(k.split('.')[0], k)}{' ' + k.split('.', 1)[1] if '.' in k else ''}: asked {a!r}, "
            f"the sweep ran with {p!r}" for k, (a, p) in asked.items()
        )
        raise AudiostyleError(
            f"--resume {plan.sweep_id}: Ray continues a sweep exactly as it started, so these settings cannot "
            f"change: {listed}. Resume without them, or start a new sweep (e.g. with --config from "
            "`python -m audiostyle.best --export`)."
        )
    return plan
