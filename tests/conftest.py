"""Shared pytest fixtures live in tests/fixtures/, one module per concern."""

import os

# Small numpy/torch ops are 10-30x slower with 2 BLAS threads on a loaded 2-core machine; tests use one.
# Set before numpy is imported anywhere (Ray workers inherit it too).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# `make test`'s workers start together: on a fresh install they would compile librosa's numba kernels at once and
# leave a cache that crashes later loads (SIGSEGV). Each worker compiles them under the lock the trial processes take.
from audiostyle.sweep._kernels import compile_librosa_kernels  # noqa: E402  (after the thread settings above)

compile_librosa_kernels()

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.s3",
    "tests.fixtures.stores",
    "tests.fixtures.threads",
]
