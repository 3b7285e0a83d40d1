"""Do the generators learn? ``spec_gan``, ``wave_vae`` and ``wave_vae_pool`` at their ``"cpu"`` preset on one domain.

For each method: prepare the domain (``--data``, default ``bench``; ``--domain``, default violin), train the preset
with the shared loop, and print its learning curve (every report: losses, ``fad``, ``recon_rel``, wall and CPU
seconds), then the comparison table at the same sample rate and example length:

- ``fad``: the method's headline, samples' frame MFCCs against the domain's train clips (band-limited to ``sr``);
- ``fad_test``: the same Fréchet distance against the domain's **test** clips (held out from training and from the
  sweep's choices), pooled frames of every test clip;
- rows: the trained preset, the same networks untrained (seed 0), white noise at the data's RMS, and real held-out
  clips (the first ``eval_samples`` validation examples, joined as the samples are).

Prints markdown (the machine line first). Example::

    nice -n 5 python benchmarks/bench_generators.py spec_gan wave_vae --threads 2
    nice -n 5 python benchmarks/bench_generators.py spec_gan wave_vae --steps 300 1500 --report-every 100 250
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from audiostyle import audio as A  # noqa: E402
from audiostyle import methods, metrics  # noqa: E402
from audiostyle.data import load_dataset  # noqa: E402
from audiostyle.methods.base import TrialContext  # noqa: E402
from audiostyle.methods.generative import joined  # noqa: E402
from audiostyle.methods.trained import evaluation  # noqa: E402

CURVE_KEYS = ("fad", "timbre_dist", "recon_rel", "loss_mse", "loss_kl", "loss_g", "loss_d", "diversity")


def _frames(clips: list[np.ndarray], sr: int, reference: metrics.Reference) -> np.ndarray:
    return np.concatenate([reference.frames(metrics.clip_features(y, sr)) for y in clips])


def fad_to(samples: list[np.ndarray], sr: int, reference: metrics.Reference, mean: np.ndarray, cov: np.ndarray) -> float:
    """Fréchet distance of ``samples``' pooled standardised frames to the Gaussian ``(mean, cov)``."""
    f = _frames(joined(samples, sr), sr, reference)
    return metrics.frechet_distance(f.mean(axis=0), np.cov(f, rowvar=False), mean, cov)


def run(name: str, dataset, domain: str, steps: int | None = None, report_every: int | None = None) -> str:
    method = methods.get(name)
    preset = method.presets()["cpu"]
    cut = {"steps": steps, "report_every": report_every, "checkpoint_every": 0} if steps else {}
    config = method.make_config({**preset, "domain": domain, **cut})
    data = method.prepare(dataset, config)
    clips = getattr(data, "clips", data)
    sr, n = clips.sr, config.eval_samples
    test = [A.resample(c.audio, c.sr, sr) for c in dataset.select(domain, "test")]
    tf = _frames(test, sr, clips.reference)
    test_gauss = (tf.mean(axis=0), np.cov(tf, rowvar=False))

    lines = [f"### {name}, preset `cpu`" + (f", its first {steps} steps" if steps else ""), "",
             f"Config: `{preset}`; {len(clips.train)} training "
             f"examples of {clips.length} samples at {sr} Hz; {len(test)} test clips.", ""]
    start, cpu0 = time.time(), time.process_time()
    curve = ["| step | wall s | CPU s | " + " | ".join(CURVE_KEYS) + " |", "|" + "---:|" * (3 + len(CURVE_KEYS))]

    def report(step, m, state=None):
        cells = [f"{m[k]:.4g}" if k in m else "" for k in CURVE_KEYS]
        curve.append(f"| {step} | {time.time() - start:.0f} | {time.process_time() - cpu0:.0f} | " + " | ".join(cells) + " |")
        print(curve[-1], flush=True)

    ctx = TrialContext(report=report, seed=0)
    final = method.train(config, data, ctx)
    wall, cpu = time.time() - start, time.process_time() - cpu0
    lines += [f"Training: {wall:.0f} s wall, {cpu:.0f} s CPU (both threads), {config.steps} steps.", "", *curve, ""]

    trained = method.restore_modules(config, ctx.last_state, data=data)
    torch.manual_seed(0)
    parts = method.build(config, method.adapt(data, config), torch.device("cpu"))
    parts.config = config
    with evaluation(parts, torch.device("cpu")):
        untrained = method.evaluate(parts, config, method.adapt(data, config), torch.device("cpu"))
    rng = np.random.default_rng(0)
    rms = float(np.sqrt(np.mean(np.square(clips.train))))
    rows = {
        "trained (preset cpu)": (list(method.generate(trained, config, n)), final),
        "untrained generator": (list(method.generate(parts.modules, config, n)), untrained),
        "white noise at the data's RMS": (list(rng.normal(0, rms, (n, clips.length)).astype(np.float32)), None),
        "real held-out clips (val)": (list(clips.val[:n]), None),
    }
    lines += ["| samples | fad (to train clips) | fad_test (to test clips) | timbre_dist | recon_rel |",
              "|---|---:|---:|---:|---:|"]
    for label, (samples, row) in rows.items():
        m = metrics.evaluate(joined(samples, sr), None, sr, clips.reference, domain)
        recon = f"{row['recon_rel']:.3f}" if row and "recon_rel" in row else ""
        lines.append(f"| {label} | {m['fad']:.2f} | {fad_to(samples, sr, clips.reference, *test_gauss):.2f} | "
                     f"{m['timbre_dist']:.3g} | {recon} |")
    if "recon_rel" in final:
        lines.append("| silence (reconstruction) | | | | 1.000 |")
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("methods", nargs="*", default=["spec_gan", "wave_vae", "wave_vae_pool"])
    ap.add_argument("--data", default="bench")
    ap.add_argument("--domain", default="violin")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, nargs="*", default=[],
                    help="train only this many of each preset's steps (one per method, in order); default: all")
    ap.add_argument("--report-every", type=int, nargs="*", default=[], help="with --steps: report interval per method")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.data)
    print(f"Machine: {describe()}\n", flush=True)
    for i, name in enumerate(args.methods):
        steps = args.steps[i] if i < len(args.steps) else None
        every = args.report_every[i] if i < len(args.report_every) else None
        print(run(name, dataset, args.domain, steps, every or steps), flush=True)
    print(f"Machine at the end: {describe()}")


if __name__ == "__main__":
    main()
