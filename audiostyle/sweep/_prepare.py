"""Data preparation: the sweep's dataset, and ``method.prepare`` run once in the driver through the feature cache.

The prepared data is handed to every trial through Ray's object store (``tune.with_parameters``), so trials on
every node share one copy and none of them decodes audio.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from audiostyle.data.dataset import AudioDataset
from audiostyle.data.builtin import smoke_dataset
from audiostyle.data.cache import default_cache_dir
from audiostyle.methods.base import Method

PREPARED_FORMAT = 1
"""Version of the cached ``prepare`` output layout; bump to invalidate every cached entry."""


def load_data(
    data: str | AudioDataset,
    *,
    smoke: bool = False,
    seed: int = 0,
    cache_dir: str | None = None,
    domains: Sequence[str] | None = None,
) -> AudioDataset:
    """The sweep's dataset: an :class:`AudioDataset` as given, the demo set, the benchmark, or any source path/URL.

    ``"demo"`` with ``smoke`` is the small in-memory demo set (8 melodies × 3 s, a few seconds to make);
    otherwise ``audiostyle.data.load_dataset(data, domains=domains, ...)`` (which caches decoded audio under
    ``cache_dir``); ``domains`` (None: all) keeps a sweep over two IRMAS instruments from decoding all eleven.
    ``seed`` draws the splits (and the smoke set); a sweep leaves it at 0 whatever its own ``--seed``.
    """
    if isinstance(data, AudioDataset):
        return data
    small = smoke_dataset(data, seed) if smoke else None
    if small is not None:
        return small
    from audiostyle.data import load_dataset

    return load_dataset(data, domains=domains, seed=seed, cache_dir=cache_dir or default_cache_dir())


def dataset_fingerprint(dataset: AudioDataset) -> str:
    """The dataset's own fingerprint, or a hash of its clips (names, splits, audio) when it has none."""
    if dataset.fingerprint:
        return dataset.fingerprint
    digest = hashlib.sha256(f"{dataset.sr}|{dataset.source}".encode())
    for clip in dataset.clips:
        digest.update(f"{clip.domain}|{clip.name}|{clip.split}|{clip.pair_key}|".encode())
        digest.update(np.ascontiguousarray(clip.audio, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _code_version(method: Method) -> str:
    """Hash of the source files a method's ``prepare`` depends on (its module, audio, every file of metrics)."""
    from audiostyle import audio, metrics

    digest = hashlib.sha256()
    files = [Path(inspect.getsourcefile(m)) for m in (sys.modules[type(method).__module__], audio)]
    files += sorted(Path(inspect.getsourcefile(metrics)).parent.glob("*.py"))  # a package: all its private modules
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class Prepared:
    """The prepared data of a sweep and how it was obtained (``seconds``, cache ``hit``)."""

    data: Any
    seconds: float
    hit: bool


def prepare_data(method: Method, dataset: AudioDataset, base_config: Any, cache_dir: str | None = None) -> Prepared:
    """``method.prepare(dataset, base_config)`` through the feature cache.

    The cache key holds the method, the dataset's fingerprint, the base config and a hash of the code
    ``prepare`` runs, so a changed file, config or code prepares again. The entry is the pickled result
    (as a byte array in the cache's ``.npz``): the cache root is trusted like the code itself.
    """
    from audiostyle.data.cache import FeatureCache

    started = time.perf_counter()
    cache = FeatureCache(cache_dir or default_cache_dir())
    key = {
        "kind": "prepared",
        "format": PREPARED_FORMAT,
        "method": f"{type(method).__module__}:{type(method).__qualname__}",
        "dataset": dataset_fingerprint(dataset),
        "config": dataclasses.asdict(base_config),
        "code": _code_version(method),
    }
    arrays = cache.get_or_compute(
        key, lambda: {"pickle": np.frombuffer(pickle.dumps(method.prepare(dataset, base_config)), dtype=np.uint8)}
    )
    data = pickle.loads(arrays["pickle"].tobytes())
    return Prepared(data, time.perf_counter() - started, cache.hits > 0)
