"""Trial processes that start together on a fresh install share librosa's compiled-kernel cache safely."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys

from tests.cluster_harness import REPO

SCRIPT = """
import numpy as np
from audiostyle.sweep._kernels import compile_librosa_kernels
compile_librosa_kernels()
import librosa
clicks = np.zeros(22050, dtype=np.float32)
clicks[2000::5000] = 1.0
onsets = librosa.onset.onset_detect(y=clicks, sr=22050, units="time", backtrack=True)
assert onsets.size >= 3, onsets
"""


def test_concurrent_first_compiles_leave_a_cache_every_later_process_loads(tmp_path):
    """Four processes compile on an empty numba cache at once, then four more load it: all detect the onsets (cache
    and lock private to the test)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    for wave in ("compile", "load"):
        procs = [subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, f"{wave}: exit {p.returncode}\n{err[-2000:]}"
    assert any((tmp_path / "numba").rglob("*.nbc")), "the kernels were cached"


HOLD = """
import fcntl, sys, time
lock = open(sys.argv[1], "a")
fcntl.flock(lock, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


WAIT = """
import sys, time
from audiostyle.sweep import _kernels
_kernels.KERNEL_LOCK_WAIT_S = 1.0
for _ in range(2):
    start = time.monotonic()
    _kernels.compile_librosa_kernels()
    print(f"{time.monotonic() - start:.3f}", flush=True)
"""


@contextlib.contextmanager
def lock_held_for_good(folder):
    """Another process holds the kernel-cache lock in ``folder`` (a private TMPDIR) until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder / "audiostyle-numba-cache.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def run_wait(env):
    """One trial process compiling the kernels twice (a reused actor) with a 1 s lock wait."""
    done = subprocess.run([sys.executable, "-c", WAIT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_a_lock_holder_that_never_lets_go_delays_a_trial_once_and_does_not_hang_it(tmp_path):
    """Another process holds the kernel-cache lock for good (a frozen process on a hung node that shares /tmp): a
    trial process waits KERNEL_LOCK_WAIT_S, warns and imports without it; its next trial (a reused actor) does not
    wait again. Once the lock is free, a new process takes it without a warning. The lock lives in a private TMPDIR,
    so the other test worker's processes never hold it."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    with lock_held_for_good(tmp_path):
        waiter = run_wait(env)
    first, second = map(float, waiter.stdout.split())
    assert first >= 1.0 and second < 0.5, waiter.stdout
    assert waiter.stderr.count("has been held for 1 s") == 1, waiter.stderr[-2000:]
    free = run_wait(env)
    assert "has been held" not in free.stderr


def test_once_a_lock_holder_has_filled_the_cache_later_processes_load_it_without_the_lock(tmp_path):
    """A process fills an empty numba cache under the lock and leaves a stamp of it. With the lock then held for good
    by another process, a new process loads the kernels without waiting for it. Once the cache folder is deleted the
    stamp no longer matches, so the next process waits for the lock again; having compiled without it, that one
    leaves no stamp, so the one after waits too."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    filled = run_wait(env)
    assert "has been held" not in filled.stderr
    assert len(list(tmp_path.glob("audiostyle-numba-cache-*.json"))) == 1, "the lock holder left a stamp"
    with lock_held_for_good(tmp_path):
        loaded = run_wait(env)
        assert "has been held" not in loaded.stderr, "a complete, stamped cache loads without the lock"
        shutil.rmtree(tmp_path / "numba")
        for _ in range(2):
            again = run_wait(env)
            assert again.stderr.count("has been held for 1 s") == 1, again.stderr[-2000:]
