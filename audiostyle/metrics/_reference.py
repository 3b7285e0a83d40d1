"""The dataset's reference: timbre embedding, domain classifier and frame statistics, fitted on the train split."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from audiostyle import audio
from audiostyle.data.cache import default_cache_dir
from audiostyle.data.dataset import AudioDataset
from audiostyle.errors import AudiostyleError
from audiostyle.metrics._classifier import acceptance, acceptance_radius, domain_probabilities, timbre_shift
from audiostyle.metrics._distribution import gaussian
from audiostyle.metrics._features import ClipFeatures, clip_features
from audiostyle.metrics._timbre import (TimbreSpace, anchor_timbre_space, fit_timbre_space, timbre_distance,
                                        timbre_stats)

log = logging.getLogger(__name__)

REFERENCE_VERSION = 10
"""Bump when the feature space, the embedding or the classifier changes (and ``SCORE_VERSION`` with it): cached
references of other versions are ignored. 6: two-view timbre model with band level ranges and spectral contrast,
per-domain acceptance radii in both views from the unseen-clip distances. 9: the timbre model also fits train clips
through mel vocoders (:data:`VOCODERS`). 10: ``fad``'s frames are MFCC 1–12 and their deltas."""
VOCODERS: tuple[tuple[int, int, int], ...] = ((128, 2048, 512), (256, 2048, 512))
"""``(n_mels, n_fft, hop)`` of the mel vocoders whose artefacts the timbre model learns to ignore. The first
:data:`VOCODED_PER_DOMAIN` train clips of each domain are also fitted through them (the ``i``-th through
``VOCODERS[i % 2]``, :data:`VOCODER_ITERS` Griffin-Lim iterations), labelled with their domain and grouped with
their melody. Without it even the true target through a 64-band mel read as no instrument (target_prob 0.00,
timbre_shift 0.003 on the benchmark's piano → violin): the mel smears the partials a bowed string's timbre is told by
into bands, so no mel-domain method could ever score a timbre move. With it the 64-band vocoded target, a mel
coarser than either here, scores far above copy-content (``benchmarks/results/calibration.md``); a 64-band vocoder
among these widened the domains towards noise so far that the demo set's piano + 30 dB white noise read as a violin
(0.51)."""
VOCODED_PER_DOMAIN = 20
"""Train clips per domain also fitted through a vocoder (about 0.4 s each on one core: the fit's main cost, once per
dataset and machine, as the reference is cached)."""
VOCODER_ITERS = 32
"""Griffin-Lim iterations of :data:`VOCODERS` (the mel-domain methods' default)."""
TRAIN_SPLIT = "train"
"""The only split references, classifiers and statistics are fitted on."""
MEMO_SIZE = 4
"""References kept in memory per process (by dataset hash)."""

_MEMO: dict[str, "Reference"] = {}


@dataclass
class Reference:
    """Per-dataset statistics the metrics compare against (picklable, numpy only), from train clips only.

    Attributes
    ----------
    domains : tuple of str
        Domain names, in classifier output order.
    timbre : TimbreSpace
        The timbre embedding and the domains' centres in it.
    frame_center, frame_scale : np.ndarray
        Mean and std of the train clips' ``fad`` frames (:attr:`ClipFeatures.fad_frames`), ``(24,)`` each: frames
        are standardised by them.
    frame_mean, frame_cov : dict of str to np.ndarray
        Per domain, mean ``(24,)`` and covariance ``(24, 24)`` of standardised train frames (``fad``).
    holdout_accuracy : float
        Classifier accuracy on the dataset's clips outside the train split (NaN when there are none).
    dataset_hash : str
        Content hash of the dataset the reference was built from.
    version : int
        :data:`REFERENCE_VERSION` at build time.
    space_hash : str or None
        ``dataset_hash`` of the dataset whose timbre space this reference borrows (``build_reference(...,
        space_from=...)``), None when it is fitted on its own train split alone.
    """

    domains: tuple[str, ...]
    timbre: TimbreSpace
    frame_center: np.ndarray
    frame_scale: np.ndarray
    frame_mean: dict[str, np.ndarray]
    frame_cov: dict[str, np.ndarray]
    holdout_accuracy: float
    dataset_hash: str
    version: int = REFERENCE_VERSION
    space_hash: str | None = None

    def domain_index(self, domain: str) -> int:
        """Index of ``domain`` in :attr:`domains`; unknown names raise :class:`AudiostyleError`."""
        if domain not in self.domains:
            raise AudiostyleError(
                f"target domain {domain!r} is not in the metrics reference (domains: {', '.join(self.domains)}); "
                "pick one of those or rebuild the reference on a dataset that has it."
            )
        return self.domains.index(domain)

    def classify(self, stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``timbre_dist`` and domain probabilities of timbre statistics ``(n, 86)``, ``(n, n_domains)`` each; the
        probability rows sum to <= 1 (the rest is "none of them", :mod:`audiostyle.metrics._classifier`)."""
        t = self.timbre
        full, discriminant = t.views(stats)
        accepted = acceptance(full, t.spread, acceptance_radius(t.domain_rms, t.domain_std))
        accepted *= acceptance(discriminant, t.discriminant_spread,
                               acceptance_radius(t.discriminant_rms, t.discriminant_std))
        return timbre_distance(full, discriminant), domain_probabilities(discriminant, accepted)

    def shift(self, stats: np.ndarray, content_stats: np.ndarray, k: int) -> np.ndarray:
        """``timbre_shift`` (:func:`audiostyle.metrics._classifier.timbre_shift`) of outputs with timbre statistics
        ``stats (n, 86)`` from their contents' ``content_stats (n, 86)`` towards domain index ``k``, ``(n,)``."""
        t = self.timbre
        full, discriminant = t.views(stats)
        content = t.views(content_stats)[1]
        radius = acceptance_radius(t.domain_rms, t.domain_std)[k]
        return timbre_shift(full[:, k], discriminant[:, k], content[:, k], radius, t.domain_std[k],
                            t.discriminant_rms[k])

    def predict_proba(self, stats: np.ndarray) -> np.ndarray:
        """Domain probabilities for timbre statistics ``(n, 86)``: ``(n, n_domains)``, rows summing to <= 1."""
        return self.classify(stats)[1]

    def frames(self, features: ClipFeatures) -> np.ndarray:
        """Standardised ``fad`` frames (:attr:`ClipFeatures.fad_frames`) of the active frames, ``(frames, 24)``."""
        return (features.fad_frames - self.frame_center) / self.frame_scale


def dataset_hash(dataset: AudioDataset) -> str:
    """SHA-256 over the dataset's sample rate and every clip's name, domain, split, pair key and samples."""
    h = hashlib.sha256(f"sr={dataset.sr};v={REFERENCE_VERSION}".encode())
    for c in sorted(dataset.clips, key=lambda c: c.name):
        h.update(f"|{c.name}|{c.domain}|{c.split}|{c.pair_key}|{c.sr}|".encode())
        h.update(np.ascontiguousarray(c.audio, dtype=np.float32).tobytes())
    return h.hexdigest()


def _vocoded(y: np.ndarray, sr: int, i: int) -> np.ndarray:
    """Train clip ``i`` through its vocoder of :data:`VOCODERS` (the clip's own length), float32 ``(samples,)``."""
    n_mels, n_fft, hop = VOCODERS[i % len(VOCODERS)]
    return audio.vocode(y, sr, n_mels, audio.StftParams(n_fft=n_fft, hop_length=hop), n_iter=VOCODER_ITERS, seed=i)


def _train_statistics(dataset: AudioDataset, domains: tuple[str, ...]) -> tuple[list[ClipFeatures], np.ndarray,
                                                                              np.ndarray, np.ndarray, np.ndarray]:
    """The train clips' features and domain indices (into ``domains``), and the timbre statistics the model fits:
    every train clip's and, for the first :data:`VOCODED_PER_DOMAIN` of each domain, its vocoded copy's, with their
    labels and groups (the melody, else the clip). Clips of domains outside ``domains`` are left out."""
    where = dataset.source or "the dataset"
    if len(domains) < 2:
        raise AudiostyleError(
            f"metrics need at least two domains to train the domain classifier; {where} has "
            f"{', '.join(domains) or 'none'}. Add clips of another domain."
        )
    train = [c for c in dataset.select(split=TRAIN_SPLIT) if c.domain in domains]
    missing = [d for d in domains if not any(c.domain == d for c in train)]
    if missing:
        raise AudiostyleError(
            f"metrics references are fitted on the {TRAIN_SPLIT!r} split only, and {where} has no {TRAIN_SPLIT} "
            f"clip of {', '.join(missing)}; give every domain training clips (a smaller val_fraction)."
        )
    feats = [clip_features(c.audio, c.sr) for c in train]
    labels = np.array([domains.index(c.domain) for c in train])
    groups = np.array([c.pair_key if c.pair_key is not None else c.name for c in train])
    chosen = np.concatenate([np.flatnonzero(labels == k)[:VOCODED_PER_DOMAIN] for k in range(len(domains))])
    vocoded = [clip_features(_vocoded(train[i].audio, train[i].sr, n), train[i].sr) for n, i in enumerate(chosen)]
    stats = np.stack([timbre_stats(f) for f in feats + vocoded])
    return (feats, labels, stats, np.concatenate([labels, labels[chosen]]),
            np.concatenate([groups, groups[chosen]]))


def _fit_reference(dataset: AudioDataset, digest: str) -> Reference:
    """The reference of ``dataset`` fitted on its own train split alone."""
    feats, labels, stats, stat_labels, groups = _train_statistics(dataset, dataset.domains)
    space = fit_timbre_space(stats, stat_labels, groups, len(dataset.domains))
    all_frames = np.concatenate([f.fad_frames for f in feats])
    center, scale = all_frames.mean(axis=0), all_frames.std(axis=0) + 1e-6
    return _reference(dataset, dataset.domains, space, feats, labels, (center, scale), digest)


def _anchored_reference(base: Reference, dataset: AudioDataset, digest: str) -> Reference:
    """``base``'s timbre space and frame standardisation with ``dataset``'s train clips locating the domains
    (:func:`~audiostyle.metrics._timbre.anchor_timbre_space`) and giving the ``fad`` statistics."""
    feats, labels, stats, stat_labels, _ = _train_statistics(dataset, base.domains)
    space = anchor_timbre_space(base.timbre, stats, stat_labels)
    return _reference(dataset, base.domains, space, feats, labels, (base.frame_center, base.frame_scale), digest,
                      space_hash=base.dataset_hash)


def _reference(dataset: AudioDataset, domains: tuple[str, ...], space: TimbreSpace, feats: list[ClipFeatures],
               labels: np.ndarray, standardise: tuple[np.ndarray, np.ndarray], digest: str, *,
               space_hash: str | None = None) -> Reference:
    """The :class:`Reference` of a fitted space: the held-out accuracy on ``dataset``'s other splits and the
    per-domain ``fad`` statistics of the train clips' frames ``feats`` (domain indices ``labels``), standardised by
    ``standardise`` (centre and scale, ``(19,)`` each); ``space_hash`` names the dataset the space was fitted on
    when it is another one (:attr:`Reference.space_hash`)."""
    held = [c for c in dataset.clips if c.split != TRAIN_SPLIT and c.domain in domains]
    acc = float("nan")
    if held:
        held_stats = np.stack([timbre_stats(clip_features(c.audio, c.sr)) for c in held])
        guess = np.argmin(space.distances(held_stats), axis=1)
        acc = float(np.mean([domains[g] == c.domain for g, c in zip(guess, held)]))
    center, scale = standardise
    frame_mean, frame_cov = {}, {}
    for k, d in enumerate(domains):
        frames = (np.concatenate([feats[i].fad_frames for i in np.flatnonzero(labels == k)]) - center) / scale
        frame_mean[d], frame_cov[d] = gaussian(frames)
    log.info("metrics reference for %s: %d train clips, unseen-clip spread %.3f, held-out accuracy %.3f",
             dataset.source or "the dataset", len(feats), space.spread, acc)
    return Reference(tuple(domains), space, center, scale, frame_mean, frame_cov, acc, digest, space_hash=space_hash)


def build_reference(dataset: AudioDataset, cache_dir: str | os.PathLike | None = None, *,
                    space_from: AudioDataset | None = None) -> Reference:
    """Fit the metrics reference of a dataset on its train split, cached by content hash.

    Parameters
    ----------
    dataset : AudioDataset
        At least two domains, each with ``train`` clips. The embedding, the classifier and the ``fad`` statistics
        see only those; the accuracy is measured on the other splits' clips.
    cache_dir : str or PathLike, optional
        Local folder; the reference is stored as ``reference-<hash>.pkl`` there and reused by any later call on a
        dataset with the same content (every trial of a sweep on one machine fits it once: about 1.5 minutes on the
        benchmark, 2 cores). Default: ``references/`` in the data cache
        (:func:`audiostyle.data.cache.default_cache_dir`). Within one process the last :data:`MEMO_SIZE` references
        are also kept in memory (same hash, same object).
    space_from : AudioDataset, optional
        Another dataset with the same domain names, from another recording source, whose own reference gives the
        timbre space (the whitening, the spreads and the acceptance radii: how far a melody, a noise floor or a
        vocoder moves a clip of an instrument); ``dataset``'s train clips then only locate its domains in that space
        and give the ``fad`` statistics (:func:`~audiostyle.metrics._timbre.anchor_timbre_space`). This is how a
        reference fitted on one source is checked on another (``python -m audiostyle.calibrate --fit-data``).

    The fit runs its BLAS calls on one thread: summed in another order, the float32 feature sums of a 2-thread fit
    differed in the last digits from a 1-thread one, and the whitening of the timbre space amplified that to 0.3 in
    a matrix element, so two processes with other thread settings fitted (and cached) different references.

    Returns
    -------
    Reference

    Raises
    ------
    AudiostyleError
        Fewer than two domains, or a domain without train clips (in ``dataset`` or, for ``space_from``'s
        domains, in either).
    """
    digest, base = dataset_hash(dataset), None
    if space_from is not None:
        base = build_reference(space_from, cache_dir)
        if base.dataset_hash == digest:  # the dataset's own space: its own reference
            base = None
        else:
            digest = hashlib.sha256(f"{digest}|space={base.dataset_hash}".encode()).hexdigest()
    ref = _MEMO.get(digest)
    path = Path(cache_dir if cache_dir is not None else Path(default_cache_dir()) / "references") / (
        f"reference-{digest[:24]}.pkl")
    if ref is None and path.exists():
        try:
            with open(path, "rb") as fh:
                cached = pickle.load(fh)
            if isinstance(cached, Reference) and cached.version == REFERENCE_VERSION and cached.dataset_hash == digest:
                ref = cached
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            log.warning("ignoring unreadable metrics reference cache %s (%s)", path, exc)
    if ref is None:
        with threadpool_limits(limits=1, user_api="blas"):  # bit-identical fits whatever the caller's thread count
            ref = _fit_reference(dataset, digest) if base is None else _anchored_reference(base, dataset, digest)
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".reference-", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(ref, fh)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only or full cache costs a refit next time, never the result
            log.warning("could not cache the metrics reference in %s (%s); set AUDIOSTYLE_CACHE to a writable "
                        "folder to reuse it", path.parent, exc)
    if len(_MEMO) >= MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[ref.dataset_hash] = ref
    return ref
