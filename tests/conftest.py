"""Shared pytest fixtures live in tests/fixtures/, one module per concern."""

import os

# Small numpy/torch ops are 10-30x slower with 2 BLAS threads on a loaded 2-core machine; tests use one.
# Set before numpy is imported anywhere (Ray workers inherit it too).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# `make test`'s workers start together: on a fresh install they would compile librosa's numba kernels at once and
# leave a cache that crashes later loads (SIGSEGV). Each worker takes the kernel lock the trial processes take, and
# under it computes the metrics' features, pitch track and onsets of one tone (kernels compiled on first use).
import numpy as np  # noqa: E402  (after the thread settings above)

from audiostyle.metrics._features import features  # noqa: E402
from audiostyle.metrics._melody import onset_times, pitch_track  # noqa: E402
from audiostyle.sweep._trial import compile_librosa_kernels  # noqa: E402


def _metric_kernels() -> None:
    t = np.arange(22050) / 22050
    tone = features((np.sin(2 * np.pi * 440 * t) * (t % 0.25 < 0.1)).astype(np.float32), 22050)
    pitch_track(tone)
    onset_times(tone)


compile_librosa_kernels(_metric_kernels)

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.s3",
    "tests.fixtures.stores",
    "tests.fixtures.threads",
]
