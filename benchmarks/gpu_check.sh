#!/usr/bin/env bash
# The first GPU run as one command, on a machine with one GPU and no network (benchmarks/gpu_check.py says what it
# checks). Prepare here first: `bash benchmarks/gpu_wheels.sh` puts the wheels that machine lacks in .whl/, which
# travels beside the checkout. Results: gpu_check.json and gpu_check.md in OUT_DIR ($1, else $OUT, else
# ./gpu_check_out). Extra arguments go to gpu_check.py (e.g. --device cpu --quick, the CPU path a test runs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-gpu_check_out}}
shift || true
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null && ! "$PY" -c "import librosa, optuna, mir_eval" 2>/dev/null; then
  site=$(mktemp -d /tmp/audiostyle-site.XXXX)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl || exit 1
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PY" benchmarks/gpu_check.py --out "$OUT_DIR" "$@"
