"""Pure functions over the store's frames: ranking, Pareto fronts, configs, Optuna importance.

Shared by ``audiostyle.best`` and the notebooks in ``analysis/``; no plotting here (see
:mod:`audiostyle.plots`). Every function takes the frames :class:`audiostyle.store.Store` returns.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from audiostyle import methods
from audiostyle.errors import AudiostyleError
from audiostyle.metrics import COMMON_OBJECTIVES, Objective
from audiostyle.methods.space import Choice, Dimension, Int, Space, flat, from_description, to_optuna
from audiostyle.store import CONFIG_PREFIX, METRIC_PREFIX, METRICS_VERSION, USABLE_STATUSES, config_column, metric_column


def metric_names(trials: pd.DataFrame) -> list[str]:
    """The metric names (without ``metric.``) that have at least one value in ``trials``."""
    return sorted(c.removeprefix(METRIC_PREFIX) for c in trials.columns
                  if c.startswith(METRIC_PREFIX) and trials[c].notna().any())


def headline(method: str, trials: pd.DataFrame | None = None) -> Objective:
    """The method's headline objective; for a method not installed here, the one its trials recorded."""
    try:
        return methods.get(method).headline
    except AudiostyleError:
        if trials is not None and "objective.metric" in trials:
            rows = trials[(trials["method"] == method) & trials["objective.metric"].notna()]
            if len(rows):
                return Objective(rows["objective.metric"].iloc[0], rows["objective.mode"].iloc[0])
        raise


def rank(trials: pd.DataFrame, objective: Objective) -> pd.DataFrame:
    """Usable trials (finished or stopped, metric present and finite), best first.

    Ties are broken by trial id so the order is deterministic.
    """
    column = metric_column(objective.metric)
    if column not in trials:
        return trials.iloc[0:0]
    usable = trials[trials["status"].isin(USABLE_STATUSES) & np.isfinite(trials[column].astype(float))]
    return usable.sort_values(
        [column, "trial_id"], ascending=[objective.mode == "min", True], kind="stable", ignore_index=True
    )


def pareto_front(trials: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The non-dominated usable trials over ``objectives`` (no other trial is at least as good on every
    objective and better on one), sorted by the first objective, best first."""
    columns = [metric_column(o.metric) for o in objectives]
    if any(c not in trials for c in columns):
        return trials.iloc[0:0]
    usable = trials[trials["status"].isin(USABLE_STATUSES)].dropna(subset=columns)
    usable = usable[np.isfinite(usable[columns].astype(float)).all(axis=1)].reset_index(drop=True)
    # Minimise everything: negate the "max" objectives.
    costs = np.column_stack([usable[c].to_numpy(float) * (-1 if o.mode == "max" else 1) for c, o in zip(columns, objectives)])
    keep = [
        i for i in range(len(costs))
        if not np.any(np.all(costs <= costs[i], axis=1) & np.any(costs < costs[i], axis=1))
    ]
    front = usable.iloc[keep]
    return front.sort_values(columns[0], ascending=objectives[0].mode == "min", ignore_index=True)


def comparable(trials: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int | None]]:
    """The trials scored with the newest metrics version among the usable ``trials`` (all of them when none is
    usable), and the sweeps whose usable trials were left out (their version, ``None`` when unrecorded): a score of
    one version says nothing against another's, and a failed trial of a newer version hides no finished older one."""
    version = trials[METRICS_VERSION] if METRICS_VERSION in trials else pd.Series(np.nan, index=trials.index)
    version = version.astype(float).fillna(-1)
    usable = trials["status"].isin(USABLE_STATUSES)
    newest = version == (version[usable].max() if usable.any() else version.max())
    older = trials[~newest & usable].assign(_v=version[~newest & usable])
    return trials[newest], {s: None if v < 0 else int(v) for s, v in older.groupby("sweep_id")["_v"].max().items()}


def best_per_method(trials: pd.DataFrame) -> pd.DataFrame:
    """The best usable trial of each method by its headline metric (one row per method), among the trials scored
    with the method's newest metrics version (:func:`comparable`)."""
    rows = []
    for method in sorted(trials["method"].unique()) if len(trials) else []:
        ranked = rank(comparable(trials[trials["method"] == method])[0], headline(method, trials))
        if len(ranked):
            rows.append(ranked.iloc[0])
    return pd.DataFrame(rows).reset_index(drop=True)


def plain_value(value: Any) -> Any:
    """A store value as Python has it: numpy unwrapped, NaN as None, JSON strings of lists/dicts parsed."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def config_of(row: Mapping[str, Any] | pd.Series, method: str | None = None) -> dict[str, Any]:
    """The trial's config as ``{field: value}``, typed for the method's ``make_config``.

    Store-side conversions are undone: JSON strings back to lists/dicts, floats that hold ints back to
    ints for ``int`` fields, ``"True"``/``"False"`` back to bools for ``bool`` fields. Fields the method
    no longer has are dropped when ``method`` is given and installed.
    """
    config = {k[len(CONFIG_PREFIX) :]: plain_value(v) for k, v in dict(row).items() if k.startswith(CONFIG_PREFIX)}
    if method is None:
        return config
    try:
        fields = {f.name: f for f in dataclasses.fields(methods.get(method).Config)}
    except AudiostyleError:
        return config
    typed = {}
    for name, value in config.items():
        if name not in fields:
            continue
        kind = str(fields[name].type)
        if value is not None and kind in ("int", "<class 'int'>") and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif kind in ("bool", "<class 'bool'>") and isinstance(value, str) and value in ("True", "False"):
            value = value == "True"
        elif kind.startswith("tuple") and isinstance(value, list):
            value = tuple(value)
        typed[name] = value
    return typed


def metrics_of(row: Mapping[str, Any] | pd.Series) -> dict[str, float]:
    """The trial's final metrics as ``{name: value}`` (NaN metrics left out)."""
    return {
        k[len(METRIC_PREFIX) :]: float(v)
        for k, v in dict(row).items()
        if k.startswith(METRIC_PREFIX) and v is not None and not (isinstance(v, float) and math.isnan(v))
    }


def comparison_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Best trial per method on the common metrics: one row per method, columns = common metric names."""
    best = best_per_method(trials)
    if best.empty:
        return pd.DataFrame(columns=["method", "trial_id", *(o.metric for o in COMMON_OBJECTIVES)])
    table = best[["method", "sweep_id", "trial_id"]].copy()
    for objective in COMMON_OBJECTIVES:
        column = metric_column(objective.metric)
        table[objective.metric] = best[column] if column in best else np.nan
    return table


# -- search spaces and Optuna -----------------------------------------------------------------------
def space_of(manifests: Sequence[Mapping[str, Any]], method: str) -> Space:
    """The union of the spaces a method's sweeps searched (later sweeps win), else its default space; one range
    per field (a conditional field's envelope over its cases, :func:`~audiostyle.methods.space.flat`)."""
    space: Space = {}
    for manifest in sorted(manifests, key=lambda m: str(m.get("started_at", ""))):
        if manifest.get("method") == method and manifest.get("space"):
            space.update(from_description(manifest["space"]))
    return flat(space or methods.get(method).default_space())


def require_trials(trials: pd.DataFrame, root: str) -> pd.DataFrame:
    """``trials`` unchanged, or :class:`AudiostyleError` when the store holds none."""
    if trials.empty:
        raise AudiostyleError(
            f"the store {root!r} holds no trials (missing or empty): run a sweep first "
            f"(e.g. `python sweeps/shallow_cnn.py --smoke --store {root}`) or point the notebook at the right store."
        )
    return trials


def _param_value(dimension: Dimension, distribution: Any, value: Any) -> Any:
    """The store's value as the distribution's internal type, or None when it lies outside it."""
    value = plain_value(value)
    if value is None:
        return None
    if isinstance(dimension, Choice):
        for choice in distribution.choices:
            if choice == value or str(choice) == str(value) or (isinstance(value, list) and json.dumps(value) == choice):
                return choice
        return None
    value = int(value) if isinstance(dimension, Int) else float(value)
    return value if distribution._contains(distribution.to_internal_repr(value)) else None


def study_from_trials(trials: pd.DataFrame, space: Space, objective: Objective) -> Any:
    """An in-memory Optuna study holding the usable trials, for Optuna's analysis tools.

    Parameters
    ----------
    trials : DataFrame
        Rows of one method (``config.*``, ``metric.*``, ``status``).
    space : Space
        The sweep's space; a dimension some trial holds a value outside of (a field fixed by an override)
        is left out.
    objective : Objective
        The value of each Optuna trial and the study's direction.
    """
    import optuna

    study = optuna.create_study(direction="maximize" if objective.mode == "max" else "minimize")
    distributions = to_optuna(space)
    dims = {name: (dim, distributions[name]) for name, dim in space.items() if config_column(name) in trials}
    ranked = rank(trials, objective)
    values = {
        name: [_param_value(dim, dist, v) for v in ranked[config_column(name)]] for name, (dim, dist) in dims.items()
    }
    # A field some trial holds outside the space (fixed by an override) is not a searched parameter here.
    values = {name: vals for name, vals in values.items() if all(v is not None for v in vals)}
    frozen = [
        optuna.trial.create_trial(
            params={name: values[name][i] for name in values},
            distributions={name: dims[name][1] for name in values},
            value=float(score),
        )
        for i, score in enumerate(ranked[metric_column(objective.metric)])
    ]
    study.add_trials(frozen)
    return study


def param_importances(
    trials: pd.DataFrame, space: Space, objective: Objective, *, evaluator: str = "fanova", seed: int = 0
) -> dict[str, float]:
    """Optuna's hyperparameter importances (summing to 1) of the usable trials.

    Parameters
    ----------
    evaluator : str
        ``"fanova"`` (default), ``"ped_anova"`` or ``"mean_decrease_impurity"``.

    Raises
    ------
    AudiostyleError
        Fewer than two usable trials, no dimension that varies across them, or an objective that does not
        vary (importance is undefined when every trial scores the same).
    """
    import optuna.importance as imp

    study = study_from_trials(trials, space, objective)
    varying = [n for n in space if len({str(t.params.get(n)) for t in study.trials}) > 1]
    if len(study.trials) < 2 or not varying:
        raise AudiostyleError(
            f"importance needs at least two usable trials that differ in a swept parameter; found "
            f"{len(study.trials)} trial(s) varying {varying or 'nothing'}. Run a longer sweep."
        )
    if len({t.value for t in study.trials}) < 2:
        raise AudiostyleError(
            f"importance is undefined: all {len(study.trials)} usable trials score {objective.metric} = "
            f"{study.trials[0].value:.4g}. Run a longer sweep (more steps or samples) so the trials differ."
        )
    evaluators = {
        "fanova": lambda: imp.FanovaImportanceEvaluator(seed=seed),
        "ped_anova": lambda: imp.PedAnovaImportanceEvaluator(),
        "mean_decrease_impurity": lambda: imp.MeanDecreaseImpurityImportanceEvaluator(seed=seed),
    }
    if evaluator not in evaluators:
        raise AudiostyleError(f"evaluator={evaluator!r} is not supported: choose one of {', '.join(evaluators)}.")
    try:
        return dict(imp.get_param_importances(study, evaluator=evaluators[evaluator](), params=varying))
    except RuntimeError as exc:  # fANOVA's forest found no variance to attribute
        raise AudiostyleError(f"{evaluator} cannot attribute importance on these {len(study.trials)} trials: {exc} "
                              "Run a longer sweep, or try evaluator='ped_anova'.") from exc


def sweep_objectives(manifests: Iterable[Mapping[str, Any]]) -> dict[str, list[Objective]]:
    """``{sweep_id: [Objective, …]}`` of the manifests that declare objectives."""
    return {
        m["sweep_id"]: [Objective(o["metric"], o["mode"]) for o in m.get("objectives") or []]
        for m in manifests
        if m.get("objectives")
    }
