#!/usr/bin/env python
"""Learning curves of ``segnet`` and ``unet`` at their ``cpu`` preset on ``--data bench``, piano ↔ violin.

Each method trains at ``presets()["cpu"]`` (overrides on top, e.g. fewer steps on a loaded machine) and every report
is printed as it comes: step, wall seconds since training began, the losses, ``recon_mse``/``recon_mae`` (per pixel on
the [0, 1] normalised log-mel) and the transfer metrics on the **test** melodies (``split="test"``: nothing is chosen
on them here), the mean of both directions, beside copy-content's on the same clips.

Usage::

    python benchmarks/bench_segnet_learning.py segnet                     # the preset as it is
    python benchmarks/bench_segnet_learning.py unet --set steps=300       # fewer steps

Prints markdown rows for ``benchmarks/results/segnet_learning.md``.
"""

from __future__ import annotations

import argparse
import json
import time

from audiostyle import methods, metrics
from audiostyle.data import load_dataset
from audiostyle.methods.base import TrialContext
from audiostyle.methods.segnet import SIDES
from audiostyle.methods.domain_pair import mean_over_directions
from machine import describe

COLUMNS = ("loss_recon", "wasserstein", "recon_mse", "recon_mae", "lsd_rel", "pitch_acc", "target_prob", "melody",
           metrics.HEADLINE, f"{metrics.HEADLINE}_x2y")


def copy_content(config, data) -> dict[str, float]:
    """The common metrics of returning each scored clip unchanged, both directions averaged (the method's layout)."""
    per_direction = {}
    for side in SIDES:
        other = "y" if side == "x" else "x"
        clips = data.val_audio[side]
        per_direction[f"{side}2{other}"] = metrics.evaluate(clips, clips, config.sr, data.reference,
                                                            config.domain(other), true_targets=data.val_targets[side])
    return mean_over_directions(per_direction)


def _row(label: str, values: dict[str, float]) -> str:
    return f"| {label} | " + " | ".join(f"{values.get(k, float('nan')):.3f}" for k in COLUMNS) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=("segnet", "unet"))
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=JSON", help="overrides on top of the preset")
    args = parser.parse_args(argv)
    method = methods.get(args.method)
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    config = method.make_config({**method.presets()["cpu"], "domain_x": "piano", "domain_y": "violin",
                                 "split": "test", "amp": "none", "compile": "off", **overrides})
    print(f"{args.method}, preset cpu + {overrides}; start: {describe()}", flush=True)
    dataset = load_dataset("bench")
    t = time.perf_counter()
    data = method.prepare(dataset, config)
    print(f"prepare {time.perf_counter() - t:.0f} s", flush=True)
    print(_row("copy content | –", copy_content(config, data)), flush=True)
    print("| step | wall s | " + " | ".join(COLUMNS) + " |", flush=True)
    t0 = time.perf_counter()
    ctx = TrialContext(report=lambda step, m, state=None: print(_row(f"{step} | {time.perf_counter() - t0:.0f}", m),
                                                                flush=True))
    method.train(config, data, ctx)
    print(f"end: {describe()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
