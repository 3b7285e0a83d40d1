#!/usr/bin/env python
"""Sweep the SegNet encoder–decoders with a latent critic (``--variant unet`` for the skip-connection variant)."""

import sys
from pathlib import Path

try:
    import audiostyle  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiostyle.sweep import Budget, Choice, Float, main

# What differs from the method's default space: the report's proposed fix for "tinny" output is a larger latent,
# so the latent sizes step by octaves, the encoder's width is searched too, and the critic weight reaches lower.
SPACE = {
    "latent_channels": Choice((16, 32, 64, 128, 256)),
    "base_channels": Choice((16, 32, 64)),
    "critic_weight": Float(0.01, 10.0, log=True),
}

BUDGET = Budget(
    samples=24,
    steps=10_000,
    smoke_samples=2,
    smoke_steps=4,
)

if __name__ == "__main__":
    sys.exit(main("segnet", __doc__.splitlines()[0], BUDGET, space=SPACE, variants={"segnet": "segnet", "unet": "unet"}))
