#!/usr/bin/env python
"""Can the domain still be read from SegNet's critic-aligned code? A linear probe, at the ``cpu`` preset.

``segnet`` trains at ``presets()["cpu"]`` (overrides on top) on ``--data bench``, piano ↔ violin, with its own
``train_step`` in a plain loop. Every ``--every`` steps, logistic regressions are fitted on the shared encoder's codes
of 256 random training patches per domain (3/4 of them; scored on the rest, chance 0.5):

- ``probe_clip``: on the whole flattened code ``(latent_channels · h · w,)`` of a patch;
- ``probe_position``: on one code position ``(latent_channels,)`` (what a decoder's local convolutions read);
- ``code_rms``: the codes' root mean square (a Lipschitz critic's W shrinks with the codes' scale).

At the end the transfers are scored on the **test** melodies (mean of both directions, ``_x2y`` piano → violin).
A critic that made the codes domain-free would bring both probes to 0.5.

Usage::

    python benchmarks/bench_segnet_probe.py                     # the preset as it is
    python benchmarks/bench_segnet_probe.py --set unpool=false critic_weight=100 critic_steps=5 critic_lr=0.001

Prints markdown rows for ``benchmarks/results/segnet_learning.md``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from audiostyle import methods
from audiostyle.data import load_dataset
from audiostyle.methods.precision import Amp
from audiostyle.methods.segnet import SIDES, _crops
from machine import describe

PATCHES = 256
"""Probe patches per domain."""
SHOWN = ("recon_mae", "lsd_rel", "pitch_acc", "timbre_shift", "target_prob", "transfer_score", "transfer_score_x2y")


def _probe(features: dict[str, np.ndarray], rng: np.random.Generator) -> float:
    """Held-out accuracy of a logistic regression telling side ``x``'s rows ``(n, d)`` from side ``y``'s."""
    X = np.concatenate([features[s] for s in SIDES])
    y = np.concatenate([np.full(len(features[s]), i) for i, s in enumerate(SIDES)])
    order = rng.permutation(len(y))[:20_000]
    cut = len(order) * 3 // 4
    fit = LogisticRegression(max_iter=2000).fit(X[order[:cut]], y[order[:cut]])
    return float(fit.score(X[order[cut:]], y[order[cut:]]))


def probes(ae: torch.nn.Module, patches: dict[str, torch.Tensor],
           rng: np.random.Generator) -> tuple[float, float, float]:
    """``(probe_clip, probe_position, code_rms)`` of the encoders' codes of ``patches`` (``(n, 1, F, T)`` per side),
    in eval mode, as a transfer sees them (in training mode batch norm would normalise each side on its own)."""
    ae.eval()
    with torch.no_grad():
        codes = {s: ae.enc[s](patches[s])[0] for s in SIDES}
    ae.train()
    whole = {s: codes[s].flatten(1).numpy() for s in SIDES}
    local = {s: codes[s].permute(0, 2, 3, 1).reshape(-1, codes[s].shape[1]).numpy() for s in SIDES}
    rms = float(torch.cat([codes[s].flatten() for s in SIDES]).square().mean().sqrt())
    return _probe(whole, rng), _probe(local, rng), rms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=JSON", help="overrides on top of the preset")
    parser.add_argument("--every", type=int, default=300, help="steps between probes (300)")
    args = parser.parse_args(argv)
    method = methods.get("segnet")
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    config = method.make_config({**method.presets()["cpu"], "domain_x": "piano", "domain_y": "violin",
                                 "split": "test", "amp": "none", "compile": "off", **overrides})
    print(f"segnet, preset cpu + {overrides}; start: {describe()}", flush=True)
    data = method.prepare(load_dataset("bench"), config)
    torch.manual_seed(config.seed)
    batch_rng, probe_rng = np.random.default_rng(config.seed), np.random.default_rng(1)
    device = torch.device("cpu")
    parts = method.build(config, data, device)
    amp = Amp("none", device, config.grad_clip)
    ae = parts.modules["autoencoders"]
    patches = {s: torch.tensor(_crops(data.train[s], PATCHES, config.patch_frames, probe_rng)) for s in SIDES}
    print("| step | wall s | loss_recon | wasserstein | probe_clip | probe_position | code_rms |\n"
          "|---:|---:|---:|---:|---:|---:|---:|")
    t0 = time.perf_counter()
    for step in range(1, config.steps + 1):
        batch = {s: torch.tensor(v) for s, v in method.sample(config, data, batch_rng).items() if s in SIDES}
        losses = method.train_step(parts, batch | {"config": config}, step, amp)
        if step % args.every == 0 or step == config.steps:
            clip, position, rms = probes(ae, patches, probe_rng)
            print(f"| {step} | {time.perf_counter() - t0:.0f} | {float(losses['loss_recon']):.0f} | "
                  f"{float(losses['wasserstein']):.3f} | {clip:.3f} | {position:.3f} | {rms:.3f} |", flush=True)
    ae.eval()
    scores = method.evaluate(parts, config, data, device)
    print("test melodies: " + ", ".join(f"{k} {scores[k]:.3f}" for k in SHOWN if k in scores), flush=True)
    print(f"end: {describe()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
