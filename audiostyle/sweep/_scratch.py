"""Scratch folders in the system temp folder that a killed process cannot leak.

A trial works in ``<tmp>/audiostyle-<name>-*`` and removes it when it ends, but a process killed outright (SIGKILL,
the out-of-memory killer, a lost node) never runs that ``finally``. So the owner holds an exclusive ``flock`` on its
folder while it lives, and the kernel drops the lock however the process ends. The marker file :data:`MARKER` is
written only once the lock is held; each new scratch folder first reclaims every marked folder whose lock is free.
Folders without the marker (a user's data, another tool's temp files) are never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "audiostyle-"
"""Name prefix of every scratch folder, e.g. ``/tmp/audiostyle-<sweep>-<trial id>-k2j4ab9x``."""

MARKER = ".audiostyle-scratch"
"""File inside a scratch folder, written once its owner holds the lock."""


@contextlib.contextmanager
def scratch(name: str, root: str | os.PathLike | None = None) -> Iterator[Path]:
    """A new folder ``<root>/audiostyle-<name>-*``, locked while the block runs and removed after it.

    Parameters
    ----------
    name : str
        What the folder is for, e.g. a trial id.
    root : path, optional
        Where to create it; the system temp folder by default.
    """
    reclaim(root)
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{name}-", dir=root))
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        (folder / MARKER).touch()
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def reclaim(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove the scratch folders under ``root`` whose owner has ended; the folders removed."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*/{MARKER}"):
        folder = folder.parent
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:  # removed meanwhile, or not ours to open
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its owner lives
            os.close(fd)
            continue
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d scratch folder(s) left by ended processes", len(removed))
    return removed
