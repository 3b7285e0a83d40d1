"""Feature cache: arrays computed once per (source contents, feature parameters), stored locally or on S3.

A key is the SHA-256 of the JSON of ``key_parts`` (put the source fingerprint, e.g.
:attr:`AudioDataset.fingerprint <audiostyle.data.dataset.AudioDataset>` or
:meth:`Listing.fingerprint <audiostyle.data.layouts.Listing.fingerprint>`, and every feature parameter in it),
so a changed file or parameter gives a new key and a recomputation. Entries are ``.npz`` files (no pickles)
written atomically: a reader sees a whole entry or none.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from audiostyle import fsio

log = logging.getLogger(__name__)


def cache_key(key_parts: Mapping[str, Any]) -> str:
    """SHA-256 hex digest of ``key_parts`` as canonical JSON (sorted keys; dataclasses via ``str``)."""
    blob = json.dumps(key_parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def default_cache_dir() -> str:
    """``$AUDIOSTYLE_CACHE`` or ``~/.cache/audiostyle``: the feature cache, and where the built-in sets render."""
    return os.environ.get("AUDIOSTYLE_CACHE") or str(Path.home() / ".cache" / "audiostyle")


class FeatureCache:
    """Arrays keyed by a hash of their inputs, under ``root`` (local folder or ``s3://bucket/prefix``).

    Attributes
    ----------
    root : str
    hits, misses : int
        Counts of :meth:`get_or_compute` calls served from the cache and computed, in this process.
    """

    def __init__(self, root: str) -> None:
        self.root = str(root).rstrip("/")
        self.hits = 0
        self.misses = 0

    def path(self, key_parts: Mapping[str, Any]) -> str:
        """URL of the entry for ``key_parts``: ``<root>/<aa>/<sha256>.npz``."""
        key = cache_key(key_parts)
        return fsio.join(self.root, key[:2], f"{key}.npz")

    def get(self, key_parts: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
        """The cached arrays, or None when absent or unreadable (an unreadable entry is logged and recomputed)."""
        url = self.path(key_parts)
        try:
            with fsio.open(url, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except Exception as e:  # noqa: BLE001 - a damaged entry is a miss, not a crash
            log.warning("feature cache entry %s is unreadable (%s): recomputing it", url, e)
            return None

    def put(self, key_parts: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
        """Store ``arrays`` atomically; returns the entry's URL."""
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
        url = self.path(key_parts)
        fsio.atomic_write_bytes(url, buf.getvalue())
        return url

    def get_or_compute(
        self, key_parts: Mapping[str, Any], compute: Callable[[], Mapping[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        """The arrays for ``key_parts``: from the cache when present, else ``compute()`` then stored.

        Parameters
        ----------
        key_parts : mapping
            JSON-able description of the inputs: source fingerprint and feature parameters.
        compute : callable
            Returns ``{name: array}`` (numeric or unicode arrays; no objects).

        Returns
        -------
        dict of str to np.ndarray
        """
        t0 = time.perf_counter()
        found = self.get(key_parts)
        if found is not None:
            self.hits += 1
            log.info("feature cache hit %s (%.2f s) %s", self.path(key_parts), time.perf_counter() - t0, _short(key_parts))
            return found
        self.misses += 1
        arrays = {k: np.asarray(v) for k, v in compute().items()}
        url = self.put(key_parts, arrays)
        log.info("feature cache miss, computed and stored %s (%.2f s) %s", url, time.perf_counter() - t0, _short(key_parts))
        return arrays


def _short(key_parts: Mapping[str, Any]) -> str:
    return json.dumps(key_parts, sort_keys=True, default=str)[:200]
