"""The metric names and their better directions, defined once (re-exported by :mod:`audiostyle.metrics`)."""

from __future__ import annotations

from typing import Literal

Direction = Literal["max", "min"]

HEADLINE = "transfer_score"
"""The headline column (higher is better, in [0, 1]); see the package docstring for its formula."""

METRIC_DIRECTIONS: dict[str, Direction] = {
    HEADLINE: "max",
    "melody": "max",
    "pitch_acc": "max",
    "chroma_sim": "max",
    "onset_f1": "max",
    "timbre_dist": "min",
    "target_prob": "max",
    "timbre_shift": "max",
    "lsd_db": "min",
    "lsd_rel": "min",
    "fad": "min",
    "silence_kept": "min",
}
"""Every ranked metric and the direction in which it gets better."""

DIAGNOSTICS: tuple[str, ...] = ("paired_frac",)
"""Columns every trial reports that are not ranked: ``paired_frac`` is the fraction of outputs with a true target."""

COMMON_METRICS: tuple[str, ...] = (*METRIC_DIRECTIONS, *DIAGNOSTICS)
"""The columns every trial of every method reports (names without the store's ``metric.`` prefix)."""

MELODY_METRICS: tuple[str, ...] = ("melody", "pitch_acc", "chroma_sim", "onset_f1")
"""The columns that compare an output with its content clip (NaN for generators, which have none)."""

PARETO: tuple[tuple[str, Direction], tuple[str, Direction]] = (("melody", "max"), ("timbre_dist", "min"))
"""The two objectives of a content-vs-style Pareto sweep: melody kept, timbre moved."""
