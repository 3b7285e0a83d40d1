"""The built-in sources: ``"demo"`` and ``"bench"``, rendered once into the cache and read as folders.

:mod:`audiostyle.data.synth` and :mod:`audiostyle.data.bench` render the sets; this module decides where a set
lives (``<cache>/demo-…``, ``<cache>/bench-…``), renders it there on first use, and gives a smoke run its small
in-memory stand-in. :func:`audiostyle.data.load_dataset` reads the rendered folder like any other.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Sequence

from audiostyle import fsio
from audiostyle.data.cache import cache_key, default_cache_dir
from audiostyle.data.dataset import AudioDataset
from audiostyle.data.layouts import PAIRED_MARKER

#: Built-in sources: ``source=`` names that render a set into the cache instead of reading a folder.
BUILT_IN = ("demo", "bench")

# synth and bench are imported lazily below: `python -m audiostyle.data.synth` (or .bench) must not import it twice.


def rendered_root(name: str, render: Callable[[Path], object], cache_dir: str | None = None) -> Path:
    """Render a built-in set once into ``<cache>/<name>`` (a local folder) and return its path.

    ``render(folder)`` writes the set, paired marker last. It renders into a temporary sibling folder that is
    renamed into place, so a half-rendered set is never used; concurrent callers both render and one rename wins.
    A remote ``cache_dir`` (``s3://``) renders into :func:`~audiostyle.data.cache.default_cache_dir` instead.
    """
    base = cache_dir if cache_dir and not fsio.is_remote(cache_dir) else default_cache_dir()
    root = Path(base) / name
    if (root / PAIRED_MARKER).exists():
        return root
    tmp = Path(base) / f".{name}.{uuid.uuid4().hex}"
    try:
        render(tmp)
        os.replace(tmp, root)
    except OSError:  # another process got there first
        if not (root / PAIRED_MARKER).exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def demo_root(cache_dir: str | None = None, sr: int = 22050) -> Path:
    """The default demo set (:func:`audiostyle.data.synth.render_demo`), rendered once into the cache."""
    from audiostyle.data import synth

    return rendered_root(f"demo-v{synth.SYNTH_VERSION}-sr{sr}", lambda tmp: synth.render_demo(tmp, sr=sr), cache_dir)


def bench_root(
    cache_dir: str | None = None,
    *,
    sr: int = 22050,
    soundfont: str | os.PathLike | None = None,
    n_melodies: int | None = None,
    names: Sequence[str] | None = None,
) -> Path:
    """The benchmark in the folder layout, rendered once into ``<cache>/bench-…`` and reused.

    The folder's name is a hash of the soundfont's bytes, :data:`~audiostyle.data.bench.BENCH_VERSION`, ``sr`` and
    the melodies and instruments, so another soundfont or generator renders anew; ``load_dataset("bench")`` then
    caches the decoded clips in the feature cache, and a second load decodes nothing. See
    :func:`audiostyle.data.bench.render_bench` for the parameters (``n_melodies`` None: all of
    :data:`~audiostyle.data.bench.N_MELODIES`).
    """
    from audiostyle.data import bench

    n_melodies = bench.N_MELODIES if n_melodies is None else n_melodies
    font = bench.find_soundfont(soundfont)
    chosen = [i.name for i in bench.instruments(names)]
    key = cache_key({"soundfont": bench.soundfont_digest(font), "version": bench.BENCH_VERSION, "sr": sr,
                     "n_melodies": n_melodies, "instruments": chosen})
    return rendered_root(
        f"bench-v{bench.BENCH_VERSION}-sr{sr}-{key[:16]}",
        lambda tmp: bench.render_bench(tmp, n_melodies=n_melodies, names=chosen, sr=sr, soundfont=font),
        cache_dir,
    )


def built_in_root(source: str, cache_dir: str | None, sr: int, soundfont: str | os.PathLike | None) -> str:
    """The folder of a built-in source (``"demo"``, ``"bench"``), rendered into the cache on first use."""
    if source == "bench":
        return str(bench_root(cache_dir, sr=sr, soundfont=soundfont))
    return str(demo_root(cache_dir, sr))


def smoke_dataset(source: str, seed: int = 0) -> AudioDataset | None:
    """A smoke run's stand-in for ``source``: for ``"demo"`` the small in-memory demo set (8 melodies × 3 s, a
    few seconds to make, :func:`audiostyle.data.synth.demo_dataset`); None for every other source."""
    if source != "demo":
        return None
    from audiostyle.data.synth import demo_dataset

    return demo_dataset(seed=seed)
