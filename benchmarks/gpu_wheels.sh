#!/usr/bin/env bash
# Fetch, here, the wheels benchmarks/gpu_check.sh installs on a GPU machine that has no network: the project's
# pure-Python needs that such a machine lacks (its image has torch, numpy, scipy, pandas, pyarrow, matplotlib,
# numba, scikit-learn), at the versions of requirements.lock, for its Python (3.12, manylinux x86-64), into .whl/
# (git-ignored). Ray's wheel is larger than what travels with the checkout (64 MiB), so the Ray sweep check is
# skipped there unless the machine has Ray. Usage: bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${1:-3.12}
PACKAGES=(librosa mir-eval audioread lazy-loader pooch platformdirs soxr soundfile decorator mido optuna alembic
          sqlalchemy mako colorlog)
pins=()
for name in "${PACKAGES[@]}"; do
  pin=$(grep -iE "^${name}==" requirements.lock | cut -d' ' -f1 || true)
  [ -n "$pin" ] || { echo "error: $name is not in requirements.lock: update PACKAGES" >&2; exit 2; }
  pins+=("$pin")
done
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "${pins[@]}"
du -sh .whl
