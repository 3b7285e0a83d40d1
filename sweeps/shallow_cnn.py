#!/usr/bin/env python
"""Sweep the random-weight shallow CNN (optimisation-based transfer): filters × widths × alpha and the rest.

The README's main job: ``python sweeps/shallow_cnn.py --smoke --store results``.
"""

import sys
from pathlib import Path

try:
    import audiostyle  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiostyle.sweep import Budget, main

BUDGET = Budget(
    samples=48,
    steps=300,
    # On the demo set piano → violin transfers well; the alphabetical default (flute → guitar) barely does.
    demo_overrides={"content_domain": "piano", "style_domain": "violin"},
    smoke_samples=4,
    smoke_steps=12,
)

if __name__ == "__main__":
    # the method's default space: report 003's hand grid (filters × widths; docs/reports.md) plus the optimiser, features, alpha
    sys.exit(main("shallow_cnn", __doc__.splitlines()[0], BUDGET))
