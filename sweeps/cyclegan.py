#!/usr/bin/env python
"""Sweep CycleGAN on spectrograms: the method's default space (loss weights, lr, β₁, generator and discriminator size, pool, patch width)."""

import sys
from pathlib import Path

try:
    import audiostyle  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiostyle.sweep import Budget, main

BUDGET = Budget(
    samples=24,
    steps=15_000,
    smoke_samples=2,
    smoke_steps=4,
)

if __name__ == "__main__":
    sys.exit(main("cyclegan", __doc__.splitlines()[0], BUDGET))
