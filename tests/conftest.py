"""Shared pytest fixtures live in tests/fixtures/, one module per concern."""

import os

# Small numpy/torch ops are 10-30x slower with 2 BLAS threads on a loaded 2-core machine; tests use one.
# Set before numpy is imported anywhere (Ray workers inherit it too).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.s3",
    "tests.fixtures.stores",
    "tests.fixtures.threads",
]
