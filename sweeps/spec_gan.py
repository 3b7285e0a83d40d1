#!/usr/bin/env python
"""Sweep the mel-spectrogram GAN (generation; headline: Fréchet distance to the real clips)."""

import sys
from pathlib import Path

try:
    import audiostyle  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiostyle.sweep import Budget, main

BUDGET = Budget(
    samples=24,
    smoke_samples=2,
    smoke_steps=4,
    # sr/clip length are data fields: the data is prepared once per sweep, so they are not searched
    overrides={"sr": 3150},
)

if __name__ == "__main__":
    # the method's default space (learning rates, noise size, widths, loss), sr fixed
    sys.exit(main("spec_gan", __doc__.splitlines()[0], BUDGET))
