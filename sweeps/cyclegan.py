#!/usr/bin/env python
"""Sweep CycleGAN on spectrograms: the four loss weights, learning rate, residual blocks, pool size."""

import sys
from pathlib import Path

try:
    import audiostyle  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiostyle.space import Choice, Float, Int
from audiostyle.sweep import Budget, main

SPACE = {
    "lambda_adv": Float(0.1, 10.0, log=True),
    "lambda_fwd": Float(1.0, 30.0, log=True),
    "lambda_bwd": Float(1.0, 30.0, log=True),
    "lambda_id": Float(0.0, 10.0),
    "lr": Float(2e-5, 2e-3, log=True),
    "n_blocks": Choice((6, 9)),
    "pool_size": Int(0, 50),
}

BUDGET = Budget(
    samples=24,
    steps=15_000,
    smoke_samples=2,
    smoke_steps=4,
    smoke_overrides={"report_every": 2, "checkpoint_every": 2, "n_blocks": 1, "ngf": 8, "ndf": 8,
                     "patch_frames": 32, "val_clips": 1},
)

if __name__ == "__main__":
    sys.exit(main("cyclegan", __doc__.splitlines()[0], BUDGET, space=SPACE))
