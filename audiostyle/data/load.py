"""``load_dataset``: any supported source (demo, GTZAN, IRMAS, folder per domain; local or s3://) → AudioDataset."""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np

from audiostyle import audio
from audiostyle.data.builtin import BUILT_IN, built_in_root
from audiostyle.data.cache import FeatureCache, cache_key
from audiostyle.data.dataset import AudioDataset, Clip, clip_key
from audiostyle.data.layouts import AudioFile, Listing, list_source, resolve_domains
from audiostyle.data.splits import assign_splits, check_fractions
from audiostyle.errors import AudiostyleError, check_range

log = logging.getLogger(__name__)

#: Bump when decoding or clipping changes, so cached clips are rebuilt.
DECODE_VERSION = 2


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
            index.append(k)
    n = int(round(clip_seconds * sr))
    return {
        "audio": np.stack(clips) if clips else np.zeros((0, n), np.float32),
        "stem": np.array(stems, dtype=str),
        "index": np.array(index, dtype=np.int64),
        "skipped": np.array(skipped, dtype=str),
    }


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
    test_fraction: float = 0.2,
    seed: int = 0,
    cache_dir: str | os.PathLike | FeatureCache | None = None,
    layout: str = "auto",
    soundfont: str | os.PathLike | None = None,
) -> AudioDataset:
    """Load a dataset of mono clips from any supported source.

    Parameters
    ----------
    source : str or PathLike
        ``"demo"`` (the built-in paired demo set of four synthetic instruments), ``"bench"`` (the built-in paired
        benchmark of nine sampled instruments, :mod:`audiostyle.data.bench`; needs FluidSynth and a soundfont), both
        rendered once into the cache; or a local folder or ``s3://`` URL holding a GTZAN, IRMAS or folder-per-domain
        tree (see :mod:`audiostyle.data.layouts`).
    domains : sequence of str or None
        Domains to load (genres, IRMAS codes or names, folder names); None = all.
    sr : int
        Sample rate, Hz; files are resampled to it.
    clip_seconds : float
        Clip length, s. Longer files are cut into consecutive clips; a tail shorter than half a clip is dropped.
    val_fraction, test_fraction : float
        Fractions of the groups held out as ``"val"`` and ``"test"`` (:mod:`audiostyle.data.splits`). A group is a
        file stem: per domain for unpaired sources, shared by every domain for paired ones (a melody is in one split
        on every instrument); clips of one file share a split.
    seed : int
        Seed of the splits.
    cache_dir : str, PathLike, FeatureCache or None
        Feature cache (local folder, ``s3://`` URL, or a :class:`FeatureCache` whose counters you read): decoded clips are stored per (file names/sizes/mtimes or ETags,
        ``sr``, ``clip_seconds``) and reused by later calls. None: no clip cache (the built-in sets still render into
        :func:`~audiostyle.data.cache.default_cache_dir`).
    layout : str
        ``"auto"``, ``"gtzan"``, ``"irmas"`` or ``"folder"``.
    soundfont : str, PathLike or None
        The ``.sf2``/``.sf3`` that renders ``"bench"`` (default ``$AUDIOSTYLE_SOUNDFONT``, else MuseScore General);
        ignored by other sources.

    Returns
    -------
    AudioDataset
        Clips of ``round(clip_seconds * sr)`` float32 samples, named ``"<domain>/<key>"`` with ``key`` =
        :func:`~audiostyle.data.dataset.clip_key` (``"<stem>"`` for a file's first clip, ``"<stem>#<k>"`` for the
        next); ``group`` is the stem; ``pair_key`` is ``key`` for paired sources, else None. Clip k of stem s pairs
        with clip k of stem s in every domain; the extra clips of a longer file have no counterpart.

    Raises
    ------
    AudiostyleError
        Missing path, unknown layout or domain, a domain without usable audio, or (``"bench"``) no FluidSynth or
        soundfont. Unreadable, empty, silent or too short files are skipped with one warning naming them.
    """
    check_range("sr", sr, 1000, 384_000, fix="Use a sample rate such as 22050.")
    check_range("clip_seconds", clip_seconds, 0.05, 3600.0)
    check_fractions(val_fraction, test_fraction)
    source = str(source)
    cache = cache_dir if isinstance(cache_dir, FeatureCache) or cache_dir is None else FeatureCache(str(cache_dir))
    root = built_in_root(source, cache.root if cache else None, sr, soundfont) if source in BUILT_IN else source
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
    shared = assign_splits(all_stems, val_fraction, test_fraction, seed) if listing.paired else None
    clips: list[Clip] = []
    for d in chosen:
        a = arrays[d]
        stems = a["stem"].tolist()
        split = shared if shared is not None else assign_splits(stems, val_fraction, test_fraction, seed)
        for y, stem, k in zip(a["audio"], stems, a["index"].tolist()):
            key = clip_key(stem, k)
            clips.append(
                Clip(
                    domain=d,
                    name=f"{d}/{key}",
                    audio=np.ascontiguousarray(y, dtype=np.float32),
                    sr=sr,
                    split=split[stem],
                    pair_key=key if listing.paired else None,
                    group=stem,
                )
            )
    fp = cache_key(
        {"source": listing.fingerprint(chosen), "sr": sr, "clip_seconds": clip_seconds, "val_fraction": val_fraction,
         "test_fraction": test_fraction, "seed": seed, "version": DECODE_VERSION}
    )
    log.info("loaded %d clips of %s from %s (%s layout)", len(clips), ", ".join(chosen), root, listing.layout)
    return AudioDataset(clips, sr, source=source, fingerprint=fp)

