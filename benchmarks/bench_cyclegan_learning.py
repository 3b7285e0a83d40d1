#!/usr/bin/env python
"""cyclegan's ``cpu`` preset on ``--data bench``, piano → violin: the learning curve, test-melody metrics against
copy-content, and the level of a pause, with and without the silence gate (issue 28).

One run of :meth:`CycleGAN.presets` ``["cpu"]`` (plus ``--set key=value`` overrides). Every report (val melodies)
gives a row of the curve: losses (means since the previous report), LSD, timbre distance, pitch accuracy, target
probability, wall and CPU time. Then the last checkpoint translates the piano test melodies (the first 6 by name)
and is scored against their true violin renderings, beside copy-content; and a signal made of test clip 0, 2 s of a
-91 dBFS noise floor and test clip 1 is translated whole: the output's level in the frames whose input is below
-60 dBFS. Both with the gate (the trained config) and without it (``silence_db=None``, the same weights).

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_cyclegan_learning.py [--set steps=800] [--json run.json]

Writes ``benchmarks/results/cyclegan_learning.md`` (``--json``: the raw numbers too).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from audiostyle import metrics
from audiostyle.data import load_dataset
from audiostyle.methods.base import TrialContext
from audiostyle.methods.cyclegan import CycleGAN, analyse, frame_level_db
from machine import describe

RESULTS = Path(__file__).resolve().parent / "results" / "cyclegan_learning.md"
CURVE = ("cycle_fwd", "cycle_bwd", "idt_x", "idt_y", "g_adv_xy", "d_y", "lsd_rel", "timbre_dist", "pitch_acc",
         "target_prob")
TEST = ("lsd_db", "lsd_rel", "timbre_dist", "pitch_acc", "target_prob", "melody", metrics.HEADLINE)
QUIET_DB = -60.0
TEST_CLIPS = 6


def _levels(method: CycleGAN, modules, config, y: np.ndarray) -> dict[str, float]:
    """Input and output frame levels (dBFS) of ``y`` translated x2y, summarised over the input's quiet frames."""
    with torch.no_grad():
        out = method.translate(modules, config, y, "x2y")
    lin, lout = (frame_level_db(torch.from_numpy(analyse(s, config)[0])[None, None], config)[0, 0, 0].numpy()
                 for s in (y, out))
    quiet = lin < QUIET_DB
    return {"quiet_frames": int(quiet.sum()), "in_db_mean": float(lin[quiet].mean()),
            "out_db_mean": float(lout[quiet].mean()), "out_db_max": float(lout[quiet].max()),
            "excess_db_median": float(np.median(lout[quiet] - lin[quiet])),
            "excess_db_p95": float(np.percentile(lout[quiet] - lin[quiet], 95)),
            "loud_in_db_mean": float(lin[~quiet].mean()), "loud_out_db_mean": float(lout[~quiet].mean())}


def run(overrides: dict) -> dict:
    method = CycleGAN()
    ds = load_dataset("bench", domains=("piano", "violin"))
    config = method.make_config({**method.presets()["cpu"], "domain_x": "piano", "domain_y": "violin", **overrides})
    data = method.prepare(ds, config)
    curve: list[dict] = []
    t0, c0 = time.time(), time.process_time()

    def report(step, row, state=None):
        curve.append({"step": step, "wall_s": time.time() - t0, "cpu_s": time.process_time() - c0, **row})
        print(json.dumps({k: round(curve[-1][k], 4) for k in ("step", "wall_s", *CURVE)}), flush=True)

    ctx = TrialContext(report=report)
    method.train(config, data, ctx)
    out = {"config": dataclasses.asdict(config), "curve": curve, "machine": describe()}
    for name, gate in (("gated", config.silence_db), ("ungated", None)):
        cfg = dataclasses.replace(config, split="test", val_clips=TEST_CLIPS, silence_db=gate)
        test = method.prepare(ds, cfg)
        modules = method.restore_modules(cfg, ctx.last_state)
        clips = test.val["x"]
        contents, targets = [c.audio for c in clips], [c.target for c in clips]
        with torch.no_grad():
            outputs = [method.translate(modules, cfg, c.audio, "x2y") for c in clips]
        out[f"test_{name}"] = metrics.evaluate(outputs, contents, cfg.sr, test.reference, "violin",
                                               true_targets=targets)
        if "test_copy_content" not in out:
            out["test_copy_content"] = metrics.evaluate(contents, contents, cfg.sr, test.reference, "violin",
                                                        true_targets=targets)
            out["test_names"] = [c.name for c in clips]
        floor = np.random.default_rng(0).standard_normal(2 * cfg.sr) * 10 ** (-91 / 20)
        out[f"pause_{name}"] = _levels(method, modules, cfg, np.concatenate([contents[0], floor, contents[1]])
                                       .astype(np.float32))
        print(name, json.dumps(out[f"test_{name}"]), json.dumps(out[f"pause_{name}"]), flush=True)
    return out


def markdown(res: dict) -> str:
    cfg = res["config"]
    preset = CycleGAN.presets()["cpu"]
    lines = ["# cyclegan's `cpu` preset learning piano → violin on `--data bench` (issue 28)", "",
             f"Machine: {res['machine']}.", "",
             f"Config: the `cpu` preset `{preset}`"
             + (f", with `{ {k: cfg[k] for k in res.get('overrides', {})} }`" if res.get("overrides") else "")
             + f"; everything else the defaults (lr {cfg['lr']}, λ {cfg['lambda_adv']}/{cfg['lambda_fwd']}/"
             f"{cfg['lambda_bwd']}/{cfg['lambda_id']}, batch {cfg['batch_size']}, pool {cfg['pool_size']}, "
             f"silence_db {cfg['silence_db']}, amp {cfg['amp']}). `python benchmarks/bench_cyclegan_learning.py`.", "",
             "## Learning curve (val melodies; losses are means since the previous report)", "",
             "| step | wall s | CPU s | " + " | ".join(CURVE) + " |", "|" + "---:|" * (3 + len(CURVE))]
    for r in res["curve"]:
        lines.append(f"| {r['step']} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | "
                     + " | ".join(f"{r[k]:.3f}" for k in CURVE) + " |")
    lines += ["", f"## Test melodies ({len(res['test_names'])} piano clips → violin, true targets)", "",
              "| row | " + " | ".join(TEST) + " |", "|---|" + "---:|" * len(TEST)]
    for name in ("copy_content", "gated", "ungated"):
        label = {"copy_content": "copy content", "gated": "cyclegan `cpu` preset",
                 "ungated": "same weights, no silence gate"}[name]
        lines.append(f"| {label} | " + " | ".join(f"{res['test_' + name][k]:.3f}" for k in TEST) + " |")
    lines += ["", "## A pause (test clip 0, 2 s at a -91 dBFS noise floor, test clip 1) translated whole", "",
              "Frame levels (RMS dBFS; digital silence -200) over the frames whose input is below -60 dBFS (the "
              "pause, release tails, rests and the clips' zero padding), and over the others:", "",
              "| generator | quiet frames | input (mean) | output (mean) | output max | excess median | "
              "excess 95th pct | other frames in / out (mean) |", "|---|" + "---:|" * 7]
    for name in ("gated", "ungated"):
        p = res[f"pause_{name}"]
        lines.append(f"| {name} | {p['quiet_frames']} | {p['in_db_mean']:.1f} | {p['out_db_mean']:.1f} | "
                     f"{p['out_db_max']:.1f} | {p['excess_db_median']:.1f} | {p['excess_db_p95']:.1f} | "
                     f"{p['loud_in_db_mean']:.1f} / {p['loud_out_db_mean']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override on top of the cpu preset (JSON value)")
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument("--from-json", help="write the table from a previous --json instead of running")
    args = parser.parse_args(argv)
    if args.from_json:
        res = {"machine": describe(), **json.loads(Path(args.from_json).read_text())}
    else:
        overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
        res = {**run(overrides), "overrides": overrides}
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
    RESULTS.write_text(markdown(res))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
