"""Figures over the store for the notebooks in ``analysis/`` (matplotlib; every figure can be saved as PNG).

Each ``fig_*`` function returns a :class:`matplotlib.figure.Figure`; :func:`save` writes it as a PNG.
Data logic (ranking, fronts, importance) lives in :mod:`audiostyle.analysis`.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from audiostyle import analysis
from audiostyle.methods.examples import Example, figure, parse_wav_name
from audiostyle.metrics import COMMON_METRICS, COMMON_OBJECTIVES, HEADLINE, PARETO_OBJECTIVES, Objective
from audiostyle.methods.space import Choice, Space
from audiostyle.store import (
    ARTIFACT_AUDIO, ARTIFACT_CLIPS, ARTIFACT_DIR, METRIC_PREFIX, USABLE_STATUSES, Store, config_column, metric_column,
)


def _pyplot():
    """pyplot, imported on first use (inline in Jupyter; matplotlib falls back to Agg without a display)."""
    import matplotlib.pyplot as plt

    return plt


def save(fig, figures: str | Path, name: str) -> Path:
    """Write ``fig`` as ``<figures>/<name>.png`` (folders created); returns the path."""
    path = Path(figures) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return path


# -- audio artifacts ------------------------------------------------------------------------------------
def artifact_wavs(store: Store, row: Mapping) -> dict[str, str]:
    """The trial's wav artifacts as ``{file name: URI}`` (content, style, output… whatever it wrote)."""
    folder = row.get(ARTIFACT_DIR)
    if not isinstance(folder, str) or not folder:
        audio = row.get(ARTIFACT_AUDIO)
        return {Path(audio).name: audio} if isinstance(audio, str) and audio else {}
    fs, path = store.fs, folder.removeprefix("s3://")
    try:
        found = sorted(p for p in fs.find(path) if p.endswith(".wav"))
    except FileNotFoundError:
        return {}
    return {p[len(path) :].lstrip("/"): store.uri(p) for p in found}


def read_wav(store: Store, uri: str) -> tuple[np.ndarray, int]:
    """Decode a wav artifact: mono float32 ``(samples,)`` and its sample rate in Hz."""
    import soundfile as sf

    with store.fs.open(uri.removeprefix("s3://") if store.is_remote else uri, "rb") as fh:
        y, sr = sf.read(io.BytesIO(fh.read()), dtype="float32", always_2d=True)
    return y.mean(axis=1), int(sr)


def trial_examples(store: Store, row: Mapping) -> tuple[list[Example], int]:
    """A trial's examples read back from its wavs (``<stem>_<role>.wav``, :mod:`audiostyle.methods.examples`) with the
    clip names of its ``artifact.clips``, and their sample rate (0 without any)."""
    clips = json.loads(row[ARTIFACT_CLIPS]) if isinstance(row.get(ARTIFACT_CLIPS), str) else {}
    found: dict[str, Example] = {}
    sr = 0
    for name, uri in artifact_wavs(store, row).items():
        parsed = parse_wav_name(name)
        if parsed is None:
            continue
        stem, role = parsed
        y, sr = read_wav(store, uri)
        found.setdefault(stem, Example(stem, {}, dict(clips.get(stem, {})))).audio[role] = y
    return [found[stem] for stem in sorted(found)], sr


def fig_spectrograms(store: Store, row: Mapping, title: str = ""):
    """The trial's figure (:func:`audiostyle.methods.examples.figure`): a row per example, a panel per role."""
    found, sr = trial_examples(store, row)
    if found:
        return figure(found, sr, title)
    fig, ax = _pyplot().subplots(figsize=(4.5, 3.2))
    ax.text(0.5, 0.5, "no audio artifacts", ha="center", va="center")
    ax.set_axis_off()
    fig.suptitle(title)
    return fig


# -- comparisons ------------------------------------------------------------------------------------------
def fig_compare_methods(trials: pd.DataFrame, objectives: Sequence[Objective] = COMMON_OBJECTIVES):
    """One panel per common metric: every usable trial as a dot per method, the method's best as a star."""
    plt = _pyplot()
    usable = trials[trials["status"].isin(USABLE_STATUSES)]
    shown = [o for o in objectives
             if metric_column(o.metric) in usable and usable[metric_column(o.metric)].notna().any()]
    names = sorted(usable["method"].unique())
    cols = min(3, max(len(shown), 1))
    rows = max(math.ceil(len(shown) / cols), 1)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, objective in zip(axes.flat, shown):
        column = metric_column(objective.metric)
        for x, method in enumerate(names):
            values = usable.loc[usable["method"] == method, column].dropna().to_numpy(float)
            if values.size:
                jitter = np.linspace(-0.15, 0.15, values.size) if values.size > 1 else np.zeros(1)
                ax.scatter(x + jitter, values, s=14, alpha=0.6)
                ax.scatter([x], [values.max() if objective.mode == "max" else values.min()], marker="*", s=140, c="k")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(f"{objective.metric} ({'higher' if objective.mode == 'max' else 'lower'} is better)")
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def fig_pareto(
    trials: pd.DataFrame,
    x: Objective = PARETO_OBJECTIVES[0],
    y: Objective = PARETO_OBJECTIVES[1],
):
    """Every usable trial on ``x`` against ``y`` by method, with the Pareto front over all methods."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    cols = [metric_column(x.metric), metric_column(y.metric)]
    usable = trials[trials["status"].isin(USABLE_STATUSES)].dropna(subset=[c for c in cols if c in trials])
    for method, group in usable.groupby("method") if all(c in usable for c in cols) else []:
        ax.scatter(group[cols[0]], group[cols[1]], label=method, alpha=0.7)
    front = analysis.pareto_front(trials, [x, y])
    if len(front):
        front = front.sort_values(cols[0])
        ax.plot(front[cols[0]], front[cols[1]], "k--", drawstyle="steps-post", label="Pareto front")
        for _, r in front.iterrows():
            ax.annotate(f"{r['method']}:{r['trial_id']}", (r[cols[0]], r[cols[1]]), fontsize=7)
    ax.set(xlabel=f"{x.metric} ({x.mode})", ylabel=f"{y.metric} ({y.mode})", title="content preservation vs style match")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig_learning_curves(history: pd.DataFrame, metric: str | None = None):
    """One panel per method: ``metric`` (default: the method's headline) against step, a line per trial."""
    plt = _pyplot()
    names = sorted(history["method"].unique()) if len(history) else []
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.5 * max(len(names), 1), 3.3), squeeze=False)
    for ax, method in zip(axes[0], names):
        name = metric or analysis.headline(method).metric
        column = metric_column(name)
        rows = history[history["method"] == method]
        if column in rows:
            for trial_id, curve in rows.dropna(subset=[column]).groupby("trial_id"):
                ax.plot(curve["step"], curve[column], marker="o", ms=3, label=trial_id)
        ax.set(title=method, xlabel="step", ylabel=name)
        if ax.lines and len(ax.lines) <= 8:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


HEADLINE_PARTS = (HEADLINE, "melody", "pitch_acc", "chroma_sim", "target_prob", "lsd_rel")
"""The headline and the parts it is made of (all in [0, 1]): one panel of :func:`fig_trial_history`."""
DISTANCES = ("timbre_dist", "fad")
"""Unbounded distances, drawn on a panel of their own."""


def fig_trial_history(history: Sequence[Mapping[str, float]] | pd.DataFrame, title: str = ""):
    """One trial's learning curves against step: its losses and other diagnostics (log scale where all are
    positive), the headline with its parts, and the distances (timbre, FAD).

    ``history``: one mapping per report with ``step`` and metric names as keys (the store's history rows, whose
    ``metric.`` prefix is dropped, work too). Series that never change (e.g. ``amp_bf16``) are left out.
    """
    from matplotlib.figure import Figure

    frame = pd.DataFrame(list(history) if not isinstance(history, pd.DataFrame) else history)
    frame = frame.rename(columns=lambda c: c.removeprefix(METRIC_PREFIX))
    frame = frame.sort_values("step") if "step" in frame else frame.assign(step=[])
    numeric = [c for c in frame.columns if c != "step" and pd.api.types.is_numeric_dtype(frame[c])]
    varying = [c for c in numeric if frame[c].dropna().nunique() > 1]
    panels = [
        ("losses and diagnostics", [c for c in varying if c not in COMMON_METRICS]),
        ("headline and its parts", [c for c in HEADLINE_PARTS if c in varying]),
        ("distances", [c for c in DISTANCES if c in varying]),
    ]
    panels = [(name, columns) for name, columns in panels if columns] or [("no curves yet", [])]
    fig = Figure(figsize=(4.6 * len(panels), 3.4), layout="constrained")
    for ax, (name, columns) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for column in columns:
            curve = frame[["step", column]].dropna()
            ax.plot(curve["step"], curve[column], marker="o", ms=2.5, lw=1.2, label=column)
        values = frame[columns].to_numpy(float) if columns else np.empty(0)
        if name.startswith("losses") and values.size and np.nanmin(values) > 0:
            ax.set_yscale("log")
        ax.set(title=name, xlabel="step")
        if columns:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def _scaled(values: pd.Series, dim) -> np.ndarray:
    """Values of one axis mapped to [0, 1] (log axes on a log scale; choices by their index)."""
    if isinstance(dim, Choice):
        index = {str(o): i for i, o in enumerate(dim.options)}
        return np.array([index.get(str(v), np.nan) for v in values], float) / max(len(dim.options) - 1, 1)
    v = values.astype(float).to_numpy()
    low, high = min(dim.low, np.nanmin(v)), max(dim.high, np.nanmax(v))  # values fixed outside the range stay in view
    if dim.log and low > 0:
        v, low, high = np.log(v), math.log(low), math.log(high)
    return (v - low) / (high - low) if high > low else np.full_like(v, 0.5)


def fig_parallel_coordinates(trials: pd.DataFrame, space: Space, objective: Objective, title: str = ""):
    """Parallel coordinates over the swept fields that vary and the objective, one line per usable trial,
    coloured by the objective (bright = better)."""
    plt = _pyplot()
    ranked = analysis.rank(trials, objective)
    fields = [f for f in space if config_column(f) in ranked and ranked[config_column(f)].astype(str).nunique() > 1]
    axes_values = [_scaled(ranked[config_column(f)], space[f]) for f in fields]
    score = ranked[metric_column(objective.metric)].to_numpy(float) if len(ranked) else np.zeros(0)
    if len(score):
        span = score.max() - score.min()
        quality = (score - score.min()) / span if span > 0 else np.ones_like(score)
        axes_values.append(quality if objective.mode == "max" else 1 - quality)
    labels = [*fields, objective.metric]
    fig, ax = plt.subplots(figsize=(1.6 * max(len(labels), 2) + 2, 4))
    cmap = plt.get_cmap("viridis")
    data = np.array(axes_values).T if axes_values else np.zeros((0, 0))
    for i, line in enumerate(data):
        ax.plot(range(len(labels)), line, color=cmap(line[-1]), alpha=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("position in range (0 = low, 1 = high)")
    ax.set_title(title or f"{len(ranked)} trials, coloured by {objective.metric}")
    for x in range(len(labels)):
        ax.axvline(x, color="grey", lw=0.5)
    fig.tight_layout()
    return fig


def fig_importance(importances: Mapping[str, Mapping[str, float]]):
    """Horizontal bars of Optuna's importances, one panel per method (``{method: {param: importance}}``)."""
    plt = _pyplot()
    names = list(importances)
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.5 * max(len(names), 1), 3.2), squeeze=False)
    for ax, method in zip(axes[0], names):
        items = sorted(importances[method].items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in items], [v for _, v in items])
        ax.set(title=method, xlabel="importance", xlim=(0, 1))
    if not names:
        axes[0, 0].text(0.5, 0.5, "not enough trials for importances", ha="center", va="center")
        axes[0, 0].set_axis_off()
    fig.tight_layout()
    return fig
