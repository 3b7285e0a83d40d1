"""``load_dataset``: any supported source (demo, GTZAN, IRMAS, folder per domain; local or s3://) → AudioDataset."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np

from audiostyle import audio, fsio
from audiostyle.data.cache import FeatureCache, cache_key
from audiostyle.data.dataset import AudioDataset, Clip
from audiostyle.data.layouts import AudioFile, Listing, list_source, resolve_domains
from audiostyle.errors import AudiostyleError, check_range

log = logging.getLogger(__name__)

#: Bump when decoding or clipping changes, so cached clips are rebuilt.
DECODE_VERSION = 1


def default_cache_dir() -> str:
    """``$AUDIOSTYLE_CACHE`` or ``~/.cache/audiostyle``."""
    return os.environ.get("AUDIOSTYLE_CACHE") or str(Path.home() / ".cache" / "audiostyle")


def demo_root(cache_dir: str | None = None, sr: int = 22050) -> Path:
    """Render the default demo set once into ``<cache>/demo-…`` (a local folder) and return its path.

    The set is rendered into a temporary sibling folder and renamed into place, so a half-rendered set is never
    used; concurrent callers both render and one rename wins.
    """
    from audiostyle.data import synth  # lazily: `python -m audiostyle.data.synth` must not import it twice

    base = cache_dir if cache_dir and not fsio.is_remote(cache_dir) else default_cache_dir()
    name = f"demo-v{synth.SYNTH_VERSION}-sr{sr}"
    root = Path(base) / name
    if (root / synth.PAIRED_MARKER).exists():
        return root
    tmp = Path(base) / f".{name}.{uuid.uuid4().hex}"
    synth.render_demo(tmp, sr=sr)
    try:
        os.replace(tmp, root)
    except OSError:  # another process got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _decode_domain(files: Sequence[AudioFile], sr: int, clip_seconds: float) -> dict[str, np.ndarray]:
    """Decode and cut every file of one domain; unusable files are listed in ``skipped``, not raised."""
    clips, stems, index, skipped = [], [], [], []
    for f in files:
        try:
            y = audio.load(f.url, sr=sr)
        except audio.DecodeError as e:
            skipped.append(f"{f.url} (cannot decode: {e.reason[:160]})")
            continue
        if y.size == 0 or not np.isfinite(y).all():
            skipped.append(f"{f.url} ({'empty' if y.size == 0 else 'non-finite samples'})")
            continue
        if np.abs(y).max() < 1e-4:
            skipped.append(f"{f.url} (silent)")
            continue
        pieces = audio.split_clips(y, sr, clip_seconds)
        if not pieces:
            skipped.append(f"{f.url} (too short: {y.size / sr:.2f} s < half a {clip_seconds:g} s clip)")
            continue
        for k, piece in enumerate(pieces):
            clips.append(piece)
            stems.append(f.stem)
            index.append(k if len(pieces) > 1 else -1)
    n = int(round(clip_seconds * sr))
    return {
        "audio": np.stack(clips) if clips else np.zeros((0, n), np.float32),
        "stem": np.array(stems, dtype=str),
        "index": np.array(index, dtype=np.int64),
        "skipped": np.array(skipped, dtype=str),
    }


def _val_groups(groups: Sequence[str], val_fraction: float, seed: int) -> set[str]:
    """A deterministic ``val_fraction`` of ``groups`` (at least one, never all, when there are two or more)."""
    groups = sorted(set(groups))
    n_val = int(round(len(groups) * val_fraction))
    if val_fraction > 0 and len(groups) > 1:
        n_val = min(max(n_val, 1), len(groups) - 1)
    ranked = sorted(groups, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    return set(ranked[:n_val])


def _domain_arrays(
    listing: Listing, domain: str, sr: int, clip_seconds: float, cache: FeatureCache | None
) -> dict[str, np.ndarray]:
    files = listing.files[domain]

    def compute() -> dict[str, np.ndarray]:
        return _decode_domain(files, sr, clip_seconds)

    if cache is None:
        return compute()
    key = {
        "kind": "clips",
        "version": DECODE_VERSION,
        "source": listing.fingerprint([domain]),
        "domain": domain,
        "sr": sr,
        "clip_seconds": clip_seconds,
    }
    return cache.get_or_compute(key, compute)


def load_dataset(
    source: str | os.PathLike = "demo",
    *,
    domains: Sequence[str] | None = None,
    sr: int = 22050,
    clip_seconds: float = 6.0,
    val_fraction: float = 0.2,
    seed: int = 0,
    cache_dir: str | os.PathLike | FeatureCache | None = None,
    layout: str = "auto",
) -> AudioDataset:
    """Load a dataset of mono clips from any supported source.

    Parameters
    ----------
    source : str or PathLike
        ``"demo"`` (the built-in paired demo set, rendered once into the cache), or a local folder or ``s3://`` URL
        holding a GTZAN, IRMAS or folder-per-domain tree (see :mod:`audiostyle.data.layouts`).
    domains : sequence of str or None
        Domains to load (genres, IRMAS codes or names, folder names); None = all.
    sr : int
        Sample rate, Hz; files are resampled to it.
    clip_seconds : float
        Clip length, s. Longer files are cut into consecutive clips; a tail shorter than half a clip is dropped.
    val_fraction : float
        Fraction of files (of melodies, for paired data) held out as ``"val"``; clips of one file share a split.
    seed : int
        Seed of the train/validation split.
    cache_dir : str, PathLike, FeatureCache or None
        Feature cache (local folder, ``s3://`` URL, or a :class:`FeatureCache` whose counters you read): decoded clips are stored per (file names/sizes/mtimes or ETags,
        ``sr``, ``clip_seconds``) and reused by later calls. None: no clip cache (the demo set still renders into
        :func:`default_cache_dir`).
    layout : str
        ``"auto"``, ``"gtzan"``, ``"irmas"`` or ``"folder"``.

    Returns
    -------
    AudioDataset
        Clips of ``round(clip_seconds * sr)`` float32 samples, named ``"<domain>/<stem>"`` (plus ``"#<k>"`` when a
        file gives several clips); ``pair_key`` is that stem (+ ``"#<k>"``) for paired sources, else None.

    Raises
    ------
    AudiostyleError
        Missing path, unknown layout or domain, or a domain without usable audio. Unreadable, empty, silent or too
        short files are skipped with one warning naming them.
    """
    check_range("sr", sr, 1000, 384_000, fix="Use a sample rate such as 22050.")
    check_range("clip_seconds", clip_seconds, 0.05, 3600.0)
    check_range("val_fraction", val_fraction, 0.0, 0.9)
    source = str(source)
    cache = cache_dir if isinstance(cache_dir, FeatureCache) or cache_dir is None else FeatureCache(str(cache_dir))
    root = str(demo_root(cache.root if cache else None, sr)) if source == "demo" else source
    listing = list_source(root, layout)
    chosen = resolve_domains(listing, domains)
    if not chosen:
        raise AudiostyleError(
            f"no domains with audio in {root} ({listing.layout} layout). Put audio files in <domain>/ folders."
        )
    arrays = {d: _domain_arrays(listing, d, sr, clip_seconds, cache) for d in chosen}
    skipped = [s for d in chosen for s in arrays[d]["skipped"].tolist()]
    if skipped:
        log.warning(
            "skipped %d unusable audio file(s) in %s: %s", len(skipped), root, "; ".join(skipped)
        )
    for d in chosen:
        if len(arrays[d]["audio"]) == 0:
            n_files = len(listing.files[d])
            raise AudiostyleError(
                f"domain {d!r} in {root} has no usable audio: {n_files} audio file(s) found, "
                f"{len(arrays[d]['skipped'])} unusable. "
                f"Add decodable clips of at least {clip_seconds / 2:g} s (half of clip_seconds={clip_seconds:g}) "
                "or drop the domain."
            )
    all_stems = [s for d in chosen for s in arrays[d]["stem"].tolist()]
    shared = _val_groups(all_stems, val_fraction, seed) if listing.paired else None
    clips: list[Clip] = []
    for d in chosen:
        a = arrays[d]
        stems = a["stem"].tolist()
        val = shared if shared is not None else _val_groups(stems, val_fraction, seed)
        for y, stem, k in zip(a["audio"], stems, a["index"].tolist()):
            key = stem if k < 0 else f"{stem}#{k}"
            clips.append(
                Clip(
                    domain=d,
                    name=f"{d}/{key}",
                    audio=np.ascontiguousarray(y, dtype=np.float32),
                    sr=sr,
                    split="val" if stem in val else "train",
                    pair_key=key if listing.paired else None,
                )
            )
    fp = cache_key(
        {"source": listing.fingerprint(chosen), "sr": sr, "clip_seconds": clip_seconds, "val_fraction": val_fraction,
         "seed": seed, "version": DECODE_VERSION}
    )
    log.info("loaded %d clips of %s from %s (%s layout)", len(clips), ", ".join(chosen), root, listing.layout)
    return AudioDataset(clips, sr, source="demo" if source == "demo" else source, fingerprint=fp)
