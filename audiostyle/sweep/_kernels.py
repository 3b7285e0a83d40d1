"""librosa's compiled-kernel cache, filled one process at a time: what every trial and test process does first.

The metrics call librosa functions that numba compiles on first use and caches on disk. Processes that start together
(the trials of a sweep on one node, a test run's workers) must not compile the same kernel at once:
:func:`compile_librosa_kernels` says why and how.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib
import importlib.util
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from audiostyle.fsio import atomic_write_bytes

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

    Loading needs no lock, so a process that held it leaves a stamp of the cache it left complete
    (:func:`_cache_state`); a later process whose cache still matches the stamp loads without the lock. Trials that
    start together then no longer queue behind one another (a trial under load 8 waited 120 s for it), and anything
    that makes numba compile again (another CPU, another numba or librosa, a deleted cache) changes the state, so the
    next process takes the lock again.

    A holder that never lets go (a process frozen on a node that hangs, where nodes share ``/tmp``) must not hang
    every later trial with it: after :data:`KERNEL_LOCK_WAIT_S` the trial goes on without the lock, with a warning,
    and leaves no stamp. A process that has done this already (a reused trial actor) returns at once.
    """
    stamp = _stamp_path()
    if _read_json(stamp) == _cache_state():  # a lock holder left this cache complete: loading needs no lock
        _compile_kernels()
        return
    with open(Path(tempfile.gettempdir()) / "audiostyle-numba-cache.lock", "a") as lock:  # released when closed
        held = _wait_for_lock(lock)
        _compile_kernels()
        state = _cache_state()
        if held and state["cache"]:
            try:
                atomic_write_bytes(stamp, json.dumps(state).encode())
            except OSError as exc:
                log.warning("librosa's kernel-cache stamp %s not written (%s): later processes take the lock",
                            stamp, exc)


def _wait_for_lock(lock: Any) -> bool:
    """Take the open file ``lock``'s exclusive lock; False (with a warning) after :data:`KERNEL_LOCK_WAIT_S`."""
    deadline = time.monotonic() + KERNEL_LOCK_WAIT_S
    while not _try_lock(lock):
        if time.monotonic() > deadline:
            log.warning("librosa's kernel-cache lock %s has been held for %.0f s (by a hung process?): going on "
                        "without it", lock.name, KERNEL_LOCK_WAIT_S)
            return False
        time.sleep(0.2)
    return True


def _compile_kernels() -> None:
    """Import :data:`LIBROSA_KERNEL_MODULES` and score one tone: every kernel the metrics use compiled or loaded."""
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


def _librosa_dir() -> Path:
    """librosa's package folder, found without importing librosa."""
    return Path(importlib.util.find_spec("librosa").origin).parent


def _stamp_path() -> Path:
    """This librosa install's stamp file in the temporary folder (shared by the processes of one machine)."""
    from numba.core import config

    key = hashlib.sha1(f"{_librosa_dir()}|{config.CACHE_DIR}".encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"audiostyle-numba-cache-{key}.json"


def _cache_state() -> dict[str, Any]:
    """What numba's cached kernels depend on, as JSON values: numba's cache key for this CPU (target, CPU name and
    features), the numba and Python versions, and the size and modification time (ns) of every source file of librosa
    and every cache file (``*.nbi``, ``*.nbc``) beside them or under ``NUMBA_CACHE_DIR``; ``cache`` is empty where
    numba caches elsewhere (a read-only install), and then no stamp is ever trusted."""
    import numba
    from numba.core import config
    from numba.core.registry import cpu_target

    source = _librosa_dir()
    cache_root = Path(config.CACHE_DIR) if config.CACHE_DIR else source
    return {"cpu": list(cpu_target.target_context.codegen().magic_tuple()), "numba": numba.__version__,
            "python": sys.version, "sources": _file_stats(source.rglob("*.py")),
            "cache": _file_stats(cache_root.rglob("*.nb[ic]"))}


def _file_stats(paths: Iterable[Path]) -> list[list[Any]]:
    """``[path, size, mtime_ns]`` of each file, sorted; a file removed meanwhile is left out."""
    out = []
    for path in sorted(paths):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out.append([str(path), st.st_size, st.st_mtime_ns])
    return out


def _read_json(path: Path) -> Any:
    """The JSON value in ``path``, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
