# audiostyle: set-up into .venv from the lock, the main job, the tests, the benchmarks.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
# The installer, from the package registry like everything else.
UV_SPEC ?= uv==0.13.9
# torch's version is written once, in constraints.txt; its build (CPU, CUDA) is the only thing a machine chooses:
# e.g. `make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu130"` (cluster/README.md).
TORCH_VERSION := $(shell sed -n 's/^torch==//p' constraints.txt)
TORCH_SPEC ?= torch==$(TORCH_VERSION)
# Installs write bytecode even where PYTHONDONTWRITEBYTECODE is set: without it every Ray process compiles its
# imports at start, and under load Ray's agents missed their start-up deadline ("node timed out during startup").
# Both locks: CPython 3.11 on Linux (the cluster images' Python), every wheel's sha256, torch left to TORCH_SPEC.
# Debian packages the project runs (the benchmark's renderer and its three soundfonts): installed by `make setup` when it runs as
# root and one is missing; otherwise listed with the command that installs them.
DEBIAN_PACKAGES := fluidsynth musescore-general-soundfont-small timgm6mb-soundfont opl3-soundfont chromium chromium-driver
LOCK_FLAGS := --quiet --generate-hashes --python-version 3.11 --python-platform linux --no-emit-package torch \
              -c constraints.txt

.PHONY: setup system-packages lock lock-upgrade sweep test test-fast bench clean

$(UV):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(UV_SPEC)

$(VENV)/.installed: requirements.lock constraints.txt pyproject.toml | $(UV)
	$(PY) -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$(TORCH_VERSION)')" 2>/dev/null \
	  || $(PY) -m pip install -q --disable-pip-version-check --compile $(TORCH_SPEC)
	$(UV) pip install --python $(PY) --require-hashes --compile-bytecode -r requirements.lock
	$(UV) pip install --python $(PY) --no-deps --no-build-isolation -e .
	touch $@

setup: system-packages $(VENV)/.installed

system-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "missing Debian packages: $$missing (sudo apt-get install $$missing); the tests that need them will fail"; fi

# Regenerate both locks after editing pyproject.toml: versions already locked are kept where they still fit.
# requirements.lock: the project and its test extra (what `make setup` installs);
# cluster/requirements.lock: the project's own dependencies at the same versions (what the cluster nodes install).
lock: | $(UV)
	$(UV) pip compile pyproject.toml --extra test $(LOCK_FLAGS) $(UPGRADE) -o requirements.lock
	$(UV) pip compile pyproject.toml $(LOCK_FLAGS) -c requirements.lock -o cluster/requirements.lock

# Newest versions pyproject.toml allows; then `make test` and commit the locks with the change.
lock-upgrade:
	$(MAKE) lock UPGRADE=--upgrade

# The main job: a smoke sweep of the shallow CNN on the embedded demo set, store in ./results, best config printed.
sweep: setup
	$(PY) sweeps/shallow_cnn.py --smoke --store results

# Two test workers (TEST_WORKERS=1 for one process): most of a test's wall time waits on Ray, S3 and
# subprocesses, so the 2-core machine runs two at once; tests that share the benchmark renders share a worker.
# A crashed worker ends the run with its test failed: pytest-xdist 3.8's loadgroup hangs when it replaces one.
# Tests marked `alone` assert on relative running times; they run afterwards, in one process.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --max-worker-restart=0 -m "not alone" --durations=25
	$(PY) -m pytest -q -m alone

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) results .pytest_cache
