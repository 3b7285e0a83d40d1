"""librosa's compiled-kernel cache, filled one process at a time: what every trial and test process does first.

The metrics call librosa functions that numba compiles on first use and caches on disk. Processes that start together
(the trials of a sweep on one node, a test run's workers) must not compile the same kernel at once:
:func:`compile_librosa_kernels` says why and how.
"""

from __future__ import annotations

import fcntl
import functools
import importlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

LIBROSA_KERNEL_MODULES = ("librosa.util.utils", "librosa.beat", "librosa.core.audio", "librosa.core.pitch")
"""librosa's modules whose numba gufuncs compile when imported and are cached beside them (the metrics use them)."""
KERNEL_LOCK_WAIT_S = 120.0
"""Longest wait for another process's kernel compilation (a first compile of all of them takes about 20 s here)."""


@functools.cache
def compile_librosa_kernels() -> None:
    """Compile the librosa kernels the metrics use one process at a time on this machine (an exclusive file lock).

    numba writes each gufunc's cache as two files. Two trial processes compiling at once on a fresh install can
    leave the two files from different processes, and every later load of that kernel then crashes its process
    (SIGSEGV in ``librosa.onset.onset_detect``, seen on a fresh clone's first ``make sweep``, and in ``make test``'s
    two workers). Under the lock the first process compiles and writes both files, and the others load them
    complete: it imports :data:`LIBROSA_KERNEL_MODULES` (kernels compiled at import) and scores one tone (pYIN's
    decoding and onset picking compile on their first call); about 20 s once per machine, 0.3 s once the cache exists.

    A holder that never lets go (a process frozen on a node that hangs, where nodes share ``/tmp``) must not hang
    every later trial with it: after :data:`KERNEL_LOCK_WAIT_S` the trial goes on without the lock, with a warning.
    A process that has done this already (a reused trial actor) returns at once.
    """
    with open(Path(tempfile.gettempdir()) / "audiostyle-numba-cache.lock", "a") as lock:
        deadline = time.monotonic() + KERNEL_LOCK_WAIT_S
        while not _try_lock(lock):  # released when the file closes
            if time.monotonic() > deadline:
                log.warning("librosa's kernel-cache lock %s has been held for %.0f s (by a hung process?): going on "
                            "without it", lock.name, KERNEL_LOCK_WAIT_S)
                break
            time.sleep(0.2)
        for name in LIBROSA_KERNEL_MODULES:
            importlib.import_module(name)
        _score_one_tone()


def _score_one_tone() -> None:
    """The metrics' features, pitch track and onsets of a 1 s gated 440 Hz tone (kernels compiled on first use)."""
    from audiostyle.metrics._features import METRIC_SR, features  # here: the metrics' imports compile kernels too
    from audiostyle.metrics._melody import onset_times, pitch_track

    t = np.arange(METRIC_SR) / METRIC_SR
    tone = features((np.sin(2 * np.pi * 440 * t) * (t % 0.25 < 0.1)).astype(np.float32), METRIC_SR)
    pitch_track(tone)
    onset_times(tone)


def _try_lock(lock: Any) -> bool:
    """Take the exclusive ``flock`` of the open file ``lock`` if no other process holds it."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
