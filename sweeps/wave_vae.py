#!/usr/bin/env python
"""Sweep the waveform VAEs (``--variant pool`` for the conv–pool network, the report's better one)."""

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
    # the sample rate is a data field: the data is prepared once per sweep, so it is not searched
    overrides={"sr": 3150},
)

if __name__ == "__main__":
    # the method's default space (latent size, widths, kernel, KL weight, learning rate), sr fixed
    sys.exit(main("wave_vae", __doc__.splitlines()[0], BUDGET, variants={"plain": "wave_vae", "pool": "wave_vae_pool"}))
