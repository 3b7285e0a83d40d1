"""``python -m audiostyle.best``: pick the best trial of a method from the store, show it, export it, render with it.

Examples::

    python -m audiostyle.best --method cyclegan                       # best by the method's headline metric
    python -m audiostyle.best --method unet --top 5 --format json     # ranked table as JSON
    python -m audiostyle.best --method cyclegan --metric fad --mode min --store s3://bucket/results
    python -m audiostyle.best --method cyclegan --export best.yaml     # config for make_config / --set
    python -m audiostyle.best --method cyclegan --render in.wav --out out.wav
    python -m audiostyle.best --method shallow_cnn --render in.wav --style style.wav --out out.wav
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import yaml

from audiostyle import analysis, methods
from audiostyle.cli_help import HelpFormatter
from audiostyle.errors import AudiostyleError
from audiostyle.metrics import Objective
from audiostyle.metrics import objective as objective_of
from audiostyle.store import (
    ARTIFACT_AUDIO, ARTIFACT_CHECKPOINT, ARTIFACT_DIR, ARTIFACT_SPECTROGRAM, CONFIG_PREFIX, DEFAULT_ROOT, METRIC_PREFIX,
    METRICS_VERSION, USABLE_STATUSES, Store, metric_column, storable_value,
)

FORMATS = ("table", "json", "yaml")


@dataclass
class Selection:
    """The ranked trials of one method and what they were ranked by."""

    method: str
    objective: Objective
    ranked: pd.DataFrame
    """Usable trials, best first."""
    pareto: dict[str, pd.DataFrame]
    """Pareto front per multi-objective sweep (``{sweep_id: front}``), empty otherwise."""
    pareto_objectives: dict[str, list[Objective]]
    left_out: dict[str, int | None] = dataclasses.field(default_factory=dict)
    """Sweeps left out of the ranking because their trials were scored with an older metrics version than the
    newest in the store (``{sweep_id: version}``, ``None`` for rows written before the version was recorded)."""

    @property
    def best(self) -> pd.Series:
        return self.ranked.iloc[0]


def select(
    store: Store,
    method: str,
    *,
    sweep: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
) -> Selection:
    """Rank a method's usable trials in ``store``.

    Parameters
    ----------
    store : Store
    method : str
        A registered method name.
    sweep : str, optional
        Restrict to one sweep id.
    metric, mode : str, optional
        Rank by this metric (without ``metric.``) in this direction (``"max"``/``"min"``) instead of the
        method's headline; ``mode`` defaults to the common metric's direction, else ``max``.

    Raises
    ------
    AudiostyleError
        Unknown method (lists the known ones), empty/missing store, no trial of the method or sweep,
        unknown metric (lists the store's), bad mode, no finished trial.
    """
    if method not in methods.names():
        raise AudiostyleError(f"unknown method {method!r}: choose one of {', '.join(methods.names())}.")
    everything = store.trials()
    if everything.empty:
        raise AudiostyleError(
            f"the store {store.root!r} holds no trials (missing or empty). Run a sweep first, e.g. "
            f"`python sweeps/{method}.py --smoke --store {store.root}`, or pass --store with the right location."
        )
    trials = everything[everything["method"] == method]
    if trials.empty:
        found = ", ".join(sorted(everything["method"].unique()))
        raise AudiostyleError(f"the store {store.root!r} has no trials of {method!r}; it has trials of: {found}.")
    if sweep is not None:
        sweeps = sorted(trials["sweep_id"].unique())
        trials = trials[trials["sweep_id"] == sweep]
        if trials.empty:
            raise AudiostyleError(f"{method} has no sweep {sweep!r} in {store.root!r}; its sweeps: {', '.join(sweeps)}.")
    trials, left_out = analysis.comparable(trials)
    usable = trials[trials["status"].isin(USABLE_STATUSES)]
    if usable.empty:
        raise AudiostyleError(_no_finished(method, store, trials, "no finished trial"))
    objective = _objective(method, trials, metric, mode)
    ranked = analysis.rank(trials, objective)
    if ranked.empty:
        raise AudiostyleError(_no_finished(method, store, trials, f"no finished trial with a value of {objective.metric}"))
    manifests = [m for m in store.sweeps(method) if sweep is None or m.get("sweep_id") == sweep]
    multi = {s: objs for s, objs in analysis.sweep_objectives(manifests).items() if len(objs) >= 2}
    pareto = {s: analysis.pareto_front(trials[trials["sweep_id"] == s], objs) for s, objs in multi.items()}
    return Selection(method, objective, ranked, {s: f for s, f in pareto.items() if len(f)}, multi, left_out)


def _no_finished(method: str, store: Store, trials: pd.DataFrame, what: str) -> str:
    counts = trials["status"].value_counts().to_dict()
    errors = trials["error"].dropna().unique()[:3]
    return (
        f"{what} of {method} in {store.root!r} (statuses: {counts}"
        + (f"; errors: {'; '.join(errors)}" if len(errors) else "")
        + "). Fix the failures and run the sweep again."
    )


def _objective(method: str, trials: pd.DataFrame, metric: str | None, mode: str | None) -> Objective:
    """What to rank by: ``metric`` in ``mode`` (default the metric's own direction), else the method's headline.

    ``mode`` alone keeps the headline, whose direction is fixed: a contradicting ``mode`` is refused (ranking the
    headline the other way round would show the worst trial as the best).
    """
    if mode is not None and mode not in ("max", "min"):
        raise AudiostyleError(f"--mode={mode!r} is not supported: choose max or min.")
    if metric is None:
        objective = methods.get(method).headline
        if mode is not None and mode != objective.mode:
            raise AudiostyleError(
                f"--mode {mode} contradicts {method}'s headline metric {objective.metric}, which is better when "
                f"{'higher' if objective.mode == 'max' else 'lower'} ({objective.mode}): drop --mode, or rank by "
                f"another metric with --metric NAME --mode {mode}."
            )
    else:
        metric = metric.removeprefix(METRIC_PREFIX)
        objective = Objective(metric, mode or objective_of(metric).mode)
    known = analysis.metric_names(trials)
    if objective.metric not in known:
        raise AudiostyleError(
            f"metric {objective.metric!r} is not in the store for {method}: choose one of {', '.join(known) or 'none'}."
        )
    return objective


# -- output -------------------------------------------------------------------------------------------
def _clean(value: Any) -> Any:
    """JSON/YAML-safe values: containers walked, scalars as :func:`audiostyle.store.storable_value`, NaN/NaT → None,
    timestamps → ISO strings."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is pd.NaT:
        return None
    value = storable_value(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.isoformat() if isinstance(value, dt.datetime) else value


def describe(row: pd.Series, method: str) -> dict[str, Any]:
    """A trial as a plain dict: ids, status, config, metrics, timings and artifact locations."""
    return _clean(
        {
            "method": method,
            "sweep_id": row["sweep_id"],
            "trial_id": row["trial_id"],
            "status": row["status"],
            "steps": row.get("steps"),
            "wall_s": row.get("wall_s"),
            "device": row.get("device"),
            "seed": row.get("seed"),
            METRICS_VERSION: None if pd.isna(row.get(METRICS_VERSION)) else int(row[METRICS_VERSION]),
            "config": analysis.config_of(row, method),
            "metrics": analysis.metrics_of(row),
            "artifacts": {
                "dir": row.get(ARTIFACT_DIR),
                "audio": row.get(ARTIFACT_AUDIO),
                "spectrogram": row.get(ARTIFACT_SPECTROGRAM),
                "checkpoint": row.get(ARTIFACT_CHECKPOINT),
            },
        }
    )


def _table(frame: pd.DataFrame, objective: Objective, extra: Sequence[str] = ()) -> str:
    """A compact ranked table: rank, trial, sweep, objective metric(s), the swept config columns."""
    metric_cols = list(dict.fromkeys([metric_column(objective.metric), *(metric_column(m) for m in extra)]))
    config_cols = [c for c in frame.columns if c.startswith(CONFIG_PREFIX) and frame[c].nunique(dropna=True) > 1]
    view = frame[["trial_id", "sweep_id", "status", *metric_cols, *config_cols]].copy()
    view.columns = [c.removeprefix(METRIC_PREFIX).removeprefix(CONFIG_PREFIX) for c in view.columns]
    view.index = range(1, len(view) + 1)
    return view.to_string(float_format=lambda v: f"{v:.4g}")


def render_report(selection: Selection, top: int, fmt: str) -> str:
    """The text ``best`` prints for a selection in one of :data:`FORMATS`."""
    best = describe(selection.best, selection.method)
    ranked = selection.ranked.head(top)
    if fmt in ("json", "yaml"):
        payload: dict[str, Any] = {
            "objective": {"metric": selection.objective.metric, "mode": selection.objective.mode},
            "best": best,
        }
        if top > 1:
            payload["top"] = [describe(r, selection.method) for _, r in ranked.iterrows()]
        if selection.left_out:
            payload["left_out"] = selection.left_out
        if selection.pareto:
            payload["pareto"] = {
                s: {
                    "objectives": [{"metric": o.metric, "mode": o.mode} for o in selection.pareto_objectives[s]],
                    "trials": [describe(r, selection.method) for _, r in front.iterrows()],
                }
                for s, front in selection.pareto.items()
            }
        if fmt == "json":
            return json.dumps(payload, indent=2)
        return yaml.safe_dump(payload, sort_keys=False)
    lines = [
        f"Best {selection.method} trial by {selection.objective.metric} ({selection.objective.mode}): "
        f"{best['trial_id']} of sweep {best['sweep_id']} ({best['status']}, {best['steps']} steps, {best['device']})",
        "",
        "config:",
        *(f"  {k}: {v}" for k, v in best["config"].items()),
        "metrics:",
        *(f"  {k}: {v:.6g}" for k, v in best["metrics"].items()),
        "artifacts:",
        *(f"  {k}: {v}" for k, v in best["artifacts"].items() if v),
    ]
    if selection.left_out:
        older = ", ".join(f"{s} ({'unrecorded' if v is None else f'v{v}'})" for s, v in sorted(selection.left_out.items()))
        lines += ["", f"Left out sweeps scored with an older metrics version, not comparable with "
                      f"v{best[METRICS_VERSION]}: {older}; rank one with --sweep ID."]
    if top > 1:
        lines += ["", f"Top {len(ranked)} of {len(selection.ranked)} usable trials:", _table(ranked, selection.objective)]
    for sweep_id, front in selection.pareto.items():
        objs = selection.pareto_objectives[sweep_id]
        names = ", ".join(f"{o.metric} ({o.mode})" for o in objs)
        lines += ["", f"Pareto front of sweep {sweep_id} over {names}: {len(front)} trial(s)",
                  _table(front, objs[0], [o.metric for o in objs[1:]])]
    return "\n".join(lines)


EXPORT_SUFFIXES = (".yaml", ".yml", ".json")
"""The config files ``--export`` writes: YAML, or JSON for ``.json``."""


def export_config(row: pd.Series, method: str, path: str | Path) -> Path:
    """Write the trial's config as a flat ``{field: value}`` mapping (YAML unless the suffix is ``.json``).

    ``methods.get(method).make_config(yaml.safe_load(open(path)))`` rebuilds the config.
    """
    path = Path(path)
    config = _clean(analysis.config_of(row, method))
    methods.get(method).make_config(config)  # what we write must load
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".json":
            path.write_text(json.dumps(config, indent=2) + "\n")
        else:
            header = f"# {method} config of trial {row['trial_id']} (sweep {row['sweep_id']})\n"
            path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    except OSError as exc:
        raise AudiostyleError(f"cannot write --export {path}: {exc.strerror or exc}. Choose a writable path.") from exc
    return path


def render_audio(
    store: Store,
    row: pd.Series,
    method: str,
    in_path: str,
    out_path: str,
    *,
    style_path: str | None = None,
    device: str = "cpu",
    sr: int | None = None,
    direction: str | None = None,
) -> np.ndarray:
    """Apply the trial to new audio: load its checkpoint (if any) and call the method's ``render``.

    Optimisation methods (the shallow CNN) re-optimise from the config and need ``style_path``; domain-pair
    methods (cyclegan, segnet, unet) translate ``direction`` (``"x2y"``, the default, or ``"y2x"``). The method
    resamples to its own rate inside; the output is written as a float wav at ``sr``, default the input's rate.
    Returns the audio (float32, ``(samples,)``, as long as the input at ``sr``).
    """
    import soundfile as sf

    from audiostyle import audio as audio_io
    from audiostyle.methods.domain_pair import DIRECTIONS, DomainPairMethod

    impl = methods.get(method)
    pair = isinstance(impl, DomainPairMethod)
    if direction is not None and not pair:
        raise AudiostyleError(f"--direction is for the domain-pair methods (cyclegan, segnet, unet), not {method}.")
    if impl.needs_style and not style_path:
        raise AudiostyleError(f"{method} renders by transferring the timbre of a style clip: pass --style STYLE.wav "
                              "(a clip of the target instrument).")
    config = impl.make_config(analysis.config_of(row, method))
    content, sr = audio_io.load_with_rate(in_path, sr)
    style = audio_io.load(style_path, sr=sr) if style_path else None
    uri = row.get(ARTIFACT_CHECKPOINT)
    state = store.load_checkpoint(uri) if isinstance(uri, str) and uri else None
    if state is None and style is None:
        raise AudiostyleError(
            f"trial {row['trial_id']} of {method} has no checkpoint to render with: pass --style STYLE.wav "
            "for an optimisation method, or pick a trial with a checkpoint (--sweep, --metric)."
        )
    if pair:
        out = impl.transfer(config, state, content, sr, direction or DIRECTIONS[0], device=device)
    else:
        out = impl.render(config, state, content, sr, style=style, device=device)
    out = np.asarray(out, dtype=np.float32)
    try:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(out_path, out, sr, subtype="FLOAT")
    except (OSError, RuntimeError) as exc:
        raise AudiostyleError(f"cannot write --out {out_path}: {exc}. Choose a writable .wav path.") from exc
    return out


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (what ``render`` may draw from)."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- CLI ----------------------------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    """The flags of ``python -m audiostyle.best``."""
    from audiostyle.methods.domain_pair import DIRECTIONS

    p = argparse.ArgumentParser(
        prog="python -m audiostyle.best",
        description="Pick the best trial of a method from the result store; show, export or render with it.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--method", required=True, help=f"method name ({', '.join(methods.names())})")
    p.add_argument("--store", default=DEFAULT_ROOT, help="store root: a local path or s3://bucket/prefix")
    p.add_argument("--sweep", help="only trials of this sweep id")
    p.add_argument("--metric", help="rank by this metric instead of the method's headline (e.g. fad, melody, lsd_db)")
    p.add_argument("--mode", choices=("max", "min"), help="direction of --metric (default: the metric's own); "
                   "alone, it must agree with the headline's")
    p.add_argument("--top", type=int, default=1, help="show the K best trials as a ranked table")
    p.add_argument("--format", choices=FORMATS, default="table", help="output format")
    p.add_argument("--export", metavar="FILE", help="write the best config to FILE (.yaml or .json)")
    p.add_argument("--render", metavar="IN.wav", help="apply the best trial to this audio file")
    p.add_argument("--out", metavar="OUT.wav", help="where --render writes its output")
    p.add_argument("--style", metavar="STYLE.wav", help="style reference for --render (shallow_cnn)")
    p.add_argument("--sr", type=int, metavar="HZ", help="sample rate --render writes (default: the input's)")
    p.add_argument("--direction", choices=DIRECTIONS, help="what --render translates with a domain-pair method "
                   "(cyclegan, segnet, unet): domain_x to domain_y or back (default x2y)")
    p.add_argument("--device", default="cpu", help="device for --render (cpu, cuda, cuda:0)")
    p.add_argument("--seed", type=int, default=0, help="seed of --render's random choices (e.g. Griffin-Lim's phase)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m audiostyle.best`` and ``audiostyle-best``; returns the exit status."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.top < 1:
            raise AudiostyleError(f"--top={args.top} must be at least 1.")
        if bool(args.render) != bool(args.out):
            raise AudiostyleError("--render IN.wav and --out OUT.wav go together: give both.")
        if args.sr is not None and args.sr < 1:
            raise AudiostyleError(f"--sr {args.sr}: a sample rate is a positive number of Hz; pass e.g. --sr 22050, "
                                  "or leave it out (the input's rate).")
        if args.export and Path(args.export).suffix.lower() not in EXPORT_SUFFIXES:
            raise AudiostyleError(f"--export {args.export}: write the config as {' or '.join(EXPORT_SUFFIXES)} "
                                  f"(e.g. --export {Path(args.export).with_suffix('.yaml')}).")
        store = Store(args.store)
        selection = select(store, args.method, sweep=args.sweep, metric=args.metric, mode=args.mode)
        print(render_report(selection, args.top, args.format))
        if args.export:
            path = export_config(selection.best, args.method, args.export)
            print(f"config written to {path}", file=sys.stderr)
        if args.render:
            seed_everything(args.seed)
            out = render_audio(store, selection.best, args.method, args.render, args.out, style_path=args.style,
                               device=args.device, sr=args.sr, direction=args.direction)
            print(f"rendered {len(out)} samples to {args.out}", file=sys.stderr)
    except AudiostyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
