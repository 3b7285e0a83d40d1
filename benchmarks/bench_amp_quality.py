"""Does bf16 mixed precision train as well as float32? One small run per method and precision on the demo set.

For each trained method (cyclegan, segnet, unet, spec_gan, wave_vae, wave_vae_pool) the shared loop trains a
small config for ``--steps`` steps in float32 and in bf16 with each of ``--seeds`` seeds, one run after the other in
this process. Compared after the same number of steps: the method's headline metric, every other metric it reports
and every loss (each the mean over the run, as the loop reports it).

The runs of one seed are not paired: rounding differences alone (float32 in two memory layouts) separate two
trajectories of the same seed within a few steps (``benchmarks/results/amp_quality.md``), so a bf16 run is another
draw, and the precisions are compared as samples. Parity rule, per quantity ``q`` over ``n`` seeds:
``|mean(q_bf16) − mean(q_f32)| ≤ max(REL_TOL · |mean(q_f32)|, 2 · std(q_f32) · sqrt(2 / n))``, i.e. the means
differ by no more than 10 % or than two standard errors of a difference of two float32 means would. A method whose
bf16 runs pass for every quantity, with every value finite, and train faster in bf16 may default to bf16
(``auto_amp = "bf16"``); otherwise its ``amp="auto"`` stays float32 and the table says which quantity failed or that
bf16 was slower.

Usage::

    python benchmarks/bench_amp_quality.py                  # every method, 100 steps
    python benchmarks/bench_amp_quality.py --methods cyclegan --steps 30
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

REL_TOL = 0.10
"""Relative tolerance of the parity rule (see the module docstring)."""

SMALL = {
    "cyclegan": dict(ngf=8, ndf=8, n_blocks=1, n_down=2, d_layers=2, n_fft=127, hop_length=64, patch_frames=64,
                     sr=22050, val_clips=1, pool_size=4, lr=1e-3),
    "segnet": dict(n_mels=64, patch_frames=64, n_down=2, base_channels=8, latent_channels=8, critic_hidden=32,
                   batch_size=4, val_clips=1, griffin_lim_iters=4),
    "spec_gan": dict(noise_dim=32, g_hidden=64, g_channels=32, g_layers=2, d_hidden=64, d_layers=2, n_mels=32,
                     n_fft=256, hop_length=64, eval_samples=2, griffin_lim_iters=8, clip_s=1.0),
    "wave_vae": dict(latent=16, width=8, layers=3, kernel=5, eval_samples=2, clip_s=0.4, lr=3e-3),
}
"""Small configs (the size of the methods' tests) that train in seconds per step on two CPU cores."""
SMALL["unet"] = SMALL["segnet"]
SMALL["wave_vae_pool"] = SMALL["wave_vae"]


def train(name: str, amp: str, seed: int, steps: int, dataset, data_cache: dict) -> tuple[dict, float]:
    """Final metrics and seconds per step of one run (compilation off: the same kernels as eager training)."""
    from audiostyle import methods

    method = methods.get(name)
    config = method.make_config({**SMALL[name], "steps": steps, "report_every": steps, "checkpoint_every": 0,
                                 "amp": amp, "compile": "off", "seed": seed})
    if name not in data_cache:
        data_cache[name] = method.prepare(dataset, config)
    t = time.perf_counter()
    final = method.train(config, data_cache[name], methods.TrialContext(report=lambda *a, **k: None, seed=seed))
    return final, (time.perf_counter() - t) / steps


def compare(name: str, runs: dict[tuple[str, int], dict], seeds: list[int]) -> tuple[list[str], str]:
    """Table rows (one per quantity) and the verdict for one method; ``runs[(amp, seed)]`` are final metrics."""
    from audiostyle import methods
    from audiostyle.methods.trained import AMP_METRIC

    headline = methods.get(name).headline.metric
    first = runs["none", seeds[0]]
    quantities = [headline] + sorted(k for k in first if k not in (headline, AMP_METRIC))  # losses and metrics
    rows, failed = [], []
    for q in quantities:
        f32, bf16 = (np.array([runs[amp, s][q] for s in seeds]) for amp in ("none", "bf16"))
        if not np.isfinite(f32).all():  # not defined for this method (e.g. a generator's melody)
            continue
        tol = max(REL_TOL * abs(f32.mean()), 2 * f32.std(ddof=1) * math.sqrt(2 / len(seeds)))
        diff = abs(bf16.mean() - f32.mean())
        ok = bool(np.isfinite(bf16).all() and diff <= tol)
        if not ok:
            failed.append(q)
        rows.append(f"| {name} | {q} | {f32.mean():.4g} ± {f32.std(ddof=1):.2g} | {bf16.mean():.4g} ± "
                    f"{bf16.std(ddof=1):.2g} | {diff:.3g} | {tol:.3g} | {'yes' if ok else '**no**'} |")
    verdict = "bf16" if not failed else f"float32 ({', '.join(failed)} outside the tolerance)"
    return rows, verdict


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=list(SMALL), choices=list(SMALL))
    p.add_argument("--steps", type=int, default=100, help="training steps per run")
    p.add_argument("--seeds", type=int, default=3, help="runs per precision (seeds 0, 1, …)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: small kernels on a shared 2-core machine wait less on each other)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "amp_quality.md")
    args = p.parse_args(argv)
    import machine
    import torch

    torch.set_num_threads(args.threads)

    from audiostyle.data import synth

    dataset = synth.demo_dataset()
    lines = ["# bf16 vs float32 training quality (demo set)", "",
             f"Machine: {machine.describe()}.", "",
             f"`python benchmarks/bench_amp_quality.py {' '.join(argv if argv is not None else sys.argv[1:])}`: "
             f"{args.steps} steps per run, {args.seeds} seeds per precision, compilation off. Tolerance: "
             f"max({REL_TOL:.0%} of float32's mean, two standard errors of a difference of float32 means).", "",
             "| method | quantity | float32 mean ± std | bf16 mean ± std | abs(difference) | tolerance | within |",
             "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    verdicts, speed = {}, {}
    for name in args.methods:
        cache: dict = {}
        runs, secs = {}, {}
        seeds = list(range(args.seeds))
        for seed in seeds:
            for amp in ("none", "bf16"):
                runs[amp, seed], secs[amp, seed] = train(name, amp, seed, args.steps, dataset, cache)
        rows, verdicts[name] = compare(name, runs, seeds)
        # the first run also warms up: the faster of each precision's runs
        speed[name] = min(secs["bf16", s] for s in seeds) / min(secs["none", s] for s in seeds)
        if verdicts[name] == "bf16" and speed[name] >= 1.0:
            verdicts[name] = f"float32 (bf16 trains as well but {speed[name]:.2f}× slower)"
        lines += rows
        print("\n".join(rows), flush=True)
    lines += ["", "| method | bf16 / float32 time per step (incl. the final evaluation) | verdict for amp=auto |",
              "|---|---|---|"]
    lines += [f"| {n} | {speed[n]:.2f} | {verdicts[n]} |" for n in args.methods]
    lines.append(f"\nLoad at the end: {machine.load_now()}.")
    print("\n".join(lines[-len(args.methods) - 4:]))
    args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
