"""Timbre: clip statistics, a discriminant embedding fitted on the train split, distances in it.

The embedding is linear discriminant analysis with melody as the nuisance: clip statistics
(:func:`timbre_stats`) are whitened by their within-instrument covariance (which is what changes with the melody on
one instrument: same-instrument, other-melody clips are the positives), shrunk to its diagonal, then projected on
the ``n_domains - 1`` directions along which the instruments' means differ most. Distances there are in units of
``spread``: the RMS distance of an unseen clip to its own instrument's centre, measured by leaving whole melodies
out of the fit (grouped cross-validation), so an unseen clip of the instrument sits about 1 from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiostyle.metrics._features import ClipFeatures

STYLE_SHRINKAGE = 0.5
"""Weight of the diagonal in the shrunk within-domain covariance (few clips estimate a 61 × 61 covariance)."""
CV_FOLDS = 4
"""Folds (of melodies, or clips on unpaired data) that estimate the unseen-clip spread."""


def timbre_stats(f: ClipFeatures) -> np.ndarray:
    """Clip-level timbre statistics over the active frames, independent of the clip's gain.

    Mean and std of MFCC 1–19, std of their frame-to-frame deltas, mean and std of the spectral flatness (dB),
    the std of the frame level (dB) and its mean absolute frame-to-frame change (dB): the spectral envelope, its
    movement, how noise-like the sound is and how its loudness moves (notes against a steady noise).

    Parameters
    ----------
    f : ClipFeatures

    Returns
    -------
    np.ndarray
        float64 ``(61,)``.
    """
    act = f.active
    frames = f.mfcc[1:]
    both = act[1:] & act[:-1]
    if both.sum() < 1:
        both = np.ones(max(frames.shape[1] - 1, 1), dtype=bool)
    delta = np.diff(frames, axis=1) if frames.shape[1] > 1 else np.zeros_like(frames)
    energy = f.energy_db
    d_energy = np.abs(np.diff(energy)) if energy.size > 1 else np.zeros(1)
    parts = (
        frames[:, act].mean(axis=1), frames[:, act].std(axis=1), delta[:, both].std(axis=1),
        [f.flatness_db[act].mean(), f.flatness_db[act].std(), energy[act].std(), d_energy[both].mean()],
    )
    return np.concatenate(parts).astype(np.float64)


@dataclass
class TimbreSpace:
    """The fitted timbre embedding (numpy only, picklable).

    Attributes
    ----------
    mean : np.ndarray
        Mean of the train statistics, ``(61,)``.
    projection : np.ndarray
        ``(61, n_domains - 1)``: ``(stats - mean) @ projection`` is the embedding.
    centres : np.ndarray
        Each domain's mean train embedding, ``(n_domains, n_domains - 1)``.
    spread : float
        RMS distance of an unseen clip to its own domain's centre (grouped cross-validation), embedding units.
    """

    mean: np.ndarray
    projection: np.ndarray
    centres: np.ndarray
    spread: float

    def embed(self, stats: np.ndarray) -> np.ndarray:
        """Embeddings of statistics ``(n, 61)``: ``(n, n_domains - 1)``."""
        return (stats - self.mean) @ self.projection

    def distances(self, stats: np.ndarray) -> np.ndarray:
        """Distance of each clip to each domain's centre in units of :attr:`spread`, ``(n, n_domains)``."""
        e = self.embed(stats)
        return np.linalg.norm(e[:, None, :] - self.centres[None], axis=2) / self.spread


def _within_domain_whitening(stats: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``W`` with ``W.T C W = I`` for ``C`` the within-domain covariance of ``stats (n, d)``, shrunk to its diagonal."""
    classes = np.unique(labels)
    resid = np.concatenate([stats[labels == k] - stats[labels == k].mean(axis=0) for k in classes])
    cov = resid.T @ resid / max(len(resid) - len(classes), 1)
    floor = 1e-3 * np.var(stats, axis=0) + 1e-9
    cov = (1 - STYLE_SHRINKAGE) * cov + np.diag(STYLE_SHRINKAGE * np.diag(cov) + floor)
    w, v = np.linalg.eigh(cov)
    return v / np.sqrt(w)


def _fit_projection(stats: np.ndarray, labels: np.ndarray, n_domains: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean ``(d,)``, discriminant projection ``(d, n_domains - 1)`` and domain centres of one fit."""
    mean = stats.mean(axis=0)
    whiten = _within_domain_whitening(stats, labels)
    z = (stats - mean) @ whiten
    centres = np.stack([z[labels == k].mean(axis=0) for k in range(n_domains)])
    between = np.cov(centres, rowvar=False)
    _, vectors = np.linalg.eigh(between)
    projection = whiten @ vectors[:, ::-1][:, : n_domains - 1]
    return mean, projection, centres @ vectors[:, ::-1][:, : n_domains - 1]


def fit_timbre_space(stats: np.ndarray, labels: np.ndarray, groups: np.ndarray, n_domains: int) -> TimbreSpace:
    """Fit the embedding on train statistics and measure the unseen-clip spread by grouped cross-validation.

    Parameters
    ----------
    stats : np.ndarray
        :func:`timbre_stats` of the train clips, ``(n, 61)``.
    labels : np.ndarray
        Domain index of each clip, int ``(n,)``; every domain present.
    groups : np.ndarray
        Group of each clip (its melody on paired data, else the clip itself), ``(n,)``: a fold leaves whole groups
        out, so the spread is that of a melody the fit has not heard.
    n_domains : int

    Returns
    -------
    TimbreSpace
    """
    mean, projection, centres = _fit_projection(stats, labels, n_domains)
    unique = np.unique(groups)
    fold_of = {g: i % CV_FOLDS for i, g in enumerate(np.random.default_rng(0).permutation(unique))}
    folds = np.array([fold_of[g] for g in groups])
    sq = []
    for k in range(min(CV_FOLDS, len(unique))):
        held, kept = folds == k, folds != k
        if len(np.unique(labels[kept])) < n_domains:
            continue
        m, p, c = _fit_projection(stats[kept], labels[kept], n_domains)
        e = (stats[held] - m) @ p
        sq.extend(np.sum((e - c[labels[held]]) ** 2, axis=1))
    if not sq:  # too few clips to hold any out: the train spread (optimistic)
        e = (stats - mean) @ projection
        sq = list(np.sum((e - centres[labels]) ** 2, axis=1))
    return TimbreSpace(mean, projection, centres, float(np.sqrt(np.mean(sq))) + 1e-9)
