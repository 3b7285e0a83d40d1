"""Timbre: clip statistics, a Gaussian model of each instrument fitted on the train split, two distances to it.

Every domain is modelled as a Gaussian over clip statistics (:func:`timbre_stats`) with one covariance shared by
all domains: the within-domain covariance, which is what changes with the melody on one instrument
(same-instrument, other-melody clips are the positives), shrunk towards its diagonal. Statistics are whitened by
it and seen two ways:

- the **discriminant** view (linear discriminant analysis): the ``n_domains - 1`` whitened directions along which
  the train instruments' means differ most. It tells instruments apart regardless of the melody, but an input
  unlike any of them (an instrument plus hiss) can land next to some domain there, since every other direction is
  projected away;
- the **full** view: the Mahalanobis distance in every whitened direction. It sees such an input as far from every
  domain, but tells close instruments apart less sharply, because the melody's variation in all the other
  directions is counted too.

Each distance is in units of its unseen-clip spread, the RMS distance of an unseen clip to its own domain's centre,
measured by leaving whole melodies out of the fit (grouped cross-validation), so an unseen clip of the instrument
sits about 1 from it in both. ``timbre_dist`` is the larger of the two: near a domain only when both views agree.
Each domain's own RMS and standard deviation of unseen-clip distances in each view set its acceptance radii in the
classifier (:mod:`audiostyle.metrics._classifier`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from audiostyle.metrics._features import ClipFeatures

STYLE_SHRINKAGE = 0.5
"""Weight of the diagonal in the shrunk within-domain covariance (few clips estimate an 86 × 86 covariance)."""
CV_FOLDS = 4
"""Folds (of melodies, or clips on unpaired data) that estimate the unseen-clip spread."""
LEVEL_BANDS = 8
"""Groups of adjacent mel bands whose level range :func:`timbre_stats` measures."""
PRIOR_CLIPS = 8
"""Weight, in clips, of the pooled unseen-clip distances in each domain's own estimate (:attr:`TimbreSpace.domain_rms`,
:attr:`TimbreSpace.domain_std`): a domain with few train melodies leans on the pool."""


def timbre_stats(f: ClipFeatures) -> np.ndarray:
    """Clip-level timbre statistics over the active frames, independent of the clip's gain.

    Mean and std of MFCC 1–19 and std of their frame-to-frame deltas (the spectral envelope and its movement);
    mean and std of the spectral flatness (dB) and its 10th, 50th and 90th percentiles (how noise-like the sound
    is, at its most tonal and its noisiest); the std of the frame level (dB) and its mean absolute frame-to-frame
    change (dB); and in each of :data:`LEVEL_BANDS` groups of mel bands the range (dB) between the 95th and 10th
    percentile of the band's level (how far each band decays between notes: a noise floor fills it in); mean and
    std of the spectral contrast in its seven bands (how far partials stand above the floor between them).

    Parameters
    ----------
    f : ClipFeatures

    Returns
    -------
    np.ndarray
        float64 ``(86,)``.
    """
    act = f.active
    frames = f.mfcc[1:]
    both = act[1:] & act[:-1]
    if both.sum() < 1:
        both = np.ones(max(frames.shape[1] - 1, 1), dtype=bool)
    delta = np.diff(frames, axis=1) if frames.shape[1] > 1 else np.zeros_like(frames)
    energy = f.energy_db
    d_energy = np.abs(np.diff(energy)) if energy.size > 1 else np.zeros(1)
    flat = f.flatness_db[act]
    bands = np.stack([b.mean(axis=0) for b in np.array_split(f.logmel[:, act], LEVEL_BANDS)])
    parts = (
        frames[:, act].mean(axis=1), frames[:, act].std(axis=1), delta[:, both].std(axis=1),
        [flat.mean(), flat.std(), *np.percentile(flat, [10, 50, 90]), energy[act].std(), d_energy[both].mean()],
        np.percentile(bands, 95, axis=1) - np.percentile(bands, 10, axis=1),
        f.contrast_db[:, act].mean(axis=1), f.contrast_db[:, act].std(axis=1),
    )
    return np.concatenate(parts).astype(np.float64)


def clip_stats(f: ClipFeatures) -> np.ndarray:
    """:func:`timbre_stats` of ``f``, computed once per :class:`ClipFeatures` (kept in its memo): a content clip's
    statistics serve every evaluation of its outputs."""
    if "timbre_stats" not in f.memo:
        f.memo["timbre_stats"] = timbre_stats(f)
    return f.memo["timbre_stats"]


@dataclass
class TimbreSpace:
    """The fitted timbre model (numpy only, picklable); ``d`` = 86 statistics.

    Attributes
    ----------
    mean : np.ndarray
        Mean of the train statistics, ``(d,)``.
    whitening : np.ndarray
        ``(d, d)``: ``(stats - mean) @ whitening`` has identity within-domain covariance.
    centres : np.ndarray
        Each domain's mean train statistics in the whitened space, ``(n_domains, d)``.
    axes : np.ndarray
        The discriminant directions of the whitened space, orthonormal columns ``(d, n_domains - 1)``.
    spread, discriminant_spread : float
        RMS distance of an unseen clip to its own domain's centre in the full and the discriminant view, whitened
        units (grouped cross-validation).
    domain_rms, domain_std : np.ndarray
        Per domain, the RMS and the standard deviation of its unseen clips' full-view distances, in units of
        ``spread``, ``(n_domains,)`` each (blended with the pooled ones, :data:`PRIOR_CLIPS`): instruments whose
        clips vary less (a bowed note) accept less around them.
    discriminant_rms, discriminant_std : np.ndarray
        The same of the discriminant view, in units of ``discriminant_spread``.
    """

    mean: np.ndarray
    whitening: np.ndarray
    centres: np.ndarray
    axes: np.ndarray
    spread: float
    discriminant_spread: float
    domain_rms: np.ndarray
    domain_std: np.ndarray
    discriminant_rms: np.ndarray
    discriminant_std: np.ndarray

    def _offsets(self, stats: np.ndarray) -> np.ndarray:
        """Whitened offset of each clip from each domain's centre, ``(n, n_domains, d)``."""
        return ((stats - self.mean) @ self.whitening)[:, None, :] - self.centres[None]

    def views(self, stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Full-view and discriminant-view distances of statistics ``(n, d)`` to each domain, each in its view's
        unseen-clip spreads, ``(n, n_domains)`` each (one whitening for both)."""
        offsets = self._offsets(stats)
        return (np.linalg.norm(offsets, axis=2) / self.spread,
                np.linalg.norm(offsets @ self.axes, axis=2) / self.discriminant_spread)

    def distances(self, stats: np.ndarray) -> np.ndarray:
        """``timbre_dist`` to each domain (:func:`timbre_distance` of :meth:`views`), ``(n, n_domains)``."""
        return timbre_distance(*self.views(stats))


def timbre_distance(full: np.ndarray, discriminant: np.ndarray) -> np.ndarray:
    """``timbre_dist`` from the two views' distances: the larger, so near a domain only when both views agree."""
    return np.maximum(full, discriminant)


def _within_domain_whitening(stats: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``W`` with ``W.T C W = I`` for ``C`` the within-domain covariance of ``stats (n, d)``, shrunk to its diagonal."""
    classes = np.unique(labels)
    resid = np.concatenate([stats[labels == k] - stats[labels == k].mean(axis=0) for k in classes])
    cov = resid.T @ resid / max(len(resid) - len(classes), 1)
    floor = 1e-3 * np.var(stats, axis=0) + 1e-9
    cov = (1 - STYLE_SHRINKAGE) * cov + np.diag(STYLE_SHRINKAGE * np.diag(cov) + floor)
    w, v = np.linalg.eigh(cov)
    return v / np.sqrt(w)


def _centres_and_axes(z: np.ndarray, labels: np.ndarray, n_domains: int) -> tuple[np.ndarray, np.ndarray]:
    """Each domain's mean of whitened statistics ``z (n, d)``, ``(n_domains, d)``, and the discriminant axes, the
    ``n_domains - 1`` directions along which those means differ most, ``(d, n_domains - 1)``."""
    centres = np.stack([z[labels == k].mean(axis=0) for k in range(n_domains)])
    _, vectors = np.linalg.eigh(np.cov(centres, rowvar=False))
    return centres, vectors[:, ::-1][:, : n_domains - 1]


def _fit(stats: np.ndarray, labels: np.ndarray, n_domains: int) -> tuple[np.ndarray, ...]:
    """Mean ``(d,)``, whitening ``(d, d)``, whitened centres ``(n_domains, d)`` and axes ``(d, n_domains - 1)``."""
    mean = stats.mean(axis=0)
    whitening = _within_domain_whitening(stats, labels)
    return mean, whitening, *_centres_and_axes((stats - mean) @ whitening, labels, n_domains)


def _unseen_offsets(stats: np.ndarray, labels: np.ndarray, groups: np.ndarray, n_domains: int) -> list[tuple]:
    """(whitened offsets of held-out clips from their own centre ``(m, d)``, that fold's axes, their labels) per
    fold."""
    unique = np.unique(groups)
    fold_of = {g: i % CV_FOLDS for i, g in enumerate(np.random.default_rng(0).permutation(unique))}
    folds = np.array([fold_of[g] for g in groups])
    out = []
    for k in range(min(CV_FOLDS, len(unique))):
        held, kept = folds == k, folds != k
        if len(np.unique(labels[kept])) < n_domains:
            continue
        m, w, c, axes = _fit(stats[kept], labels[kept], n_domains)
        out.append(((stats[held] - m) @ w - c[labels[held]], axes, labels[held]))
    return out


def fit_timbre_space(stats: np.ndarray, labels: np.ndarray, groups: np.ndarray, n_domains: int) -> TimbreSpace:
    """Fit the model on train statistics and measure the unseen-clip spreads by grouped cross-validation.

    Parameters
    ----------
    stats : np.ndarray
        :func:`timbre_stats` of the train clips, ``(n, d)``.
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
    mean, whitening, centres, axes = _fit(stats, labels, n_domains)
    folds = _unseen_offsets(stats, labels, groups, n_domains)
    if not folds:  # too few clips to hold any out: the train spread (optimistic)
        folds = [((stats - mean) @ whitening - centres[labels], axes, labels)]
    full = np.concatenate([np.linalg.norm(o, axis=1) for o, _, _ in folds])
    discriminant = np.concatenate([np.linalg.norm(o @ a, axis=1) for o, a, _ in folds])
    held_labels = np.concatenate([lab for _, _, lab in folds])
    spread = float(np.sqrt(np.mean(full**2))) + 1e-9
    d_spread = float(np.sqrt(np.mean(discriminant**2))) + 1e-9
    return TimbreSpace(mean, whitening, centres, axes, spread, d_spread, *_per_domain(full / spread, held_labels,
                       n_domains), *_per_domain(discriminant / d_spread, held_labels, n_domains))


def _per_domain(distances: np.ndarray, labels: np.ndarray, n_domains: int) -> tuple[np.ndarray, np.ndarray]:
    """Each domain's RMS and std of unseen-clip distances ``(n_domains,)``, blended with the pool's (RMS 1)."""
    pooled_var = float(np.var(distances))
    rms, std = np.ones(n_domains), np.full(n_domains, np.sqrt(pooled_var))
    for k in range(n_domains):
        d = distances[labels == k]
        w = d.size / (d.size + PRIOR_CLIPS)
        rms[k] = np.sqrt(w * np.mean(d**2) + (1 - w)) if d.size else 1.0
        std[k] = np.sqrt(w * np.var(d) + (1 - w) * pooled_var) if d.size else std[k]
    return rms, std


def anchor_timbre_space(space: TimbreSpace, stats: np.ndarray, labels: np.ndarray) -> TimbreSpace:
    """``space`` with its domains' centres and discriminant axes measured on other clips: another recording
    source's train clips of the same instruments.

    The whitening (which directions vary with the melody, the nuisance the model ignores), the spreads and the
    acceptance radii stay those of the fit. Only the instruments' centres move: two sample libraries' violins sit
    about two unseen-clip spreads apart in a space fitted on one of them, while the scatter of a melody, a noise floor
    or a vocoder around an instrument is alike in both (``benchmarks/results/calibration_across_sources.md``).

    Parameters
    ----------
    space : TimbreSpace
    stats : np.ndarray
        :func:`timbre_stats` of the clips that locate the domains, ``(n, d)``.
    labels : np.ndarray
        Domain index of each clip in ``space``'s order, int ``(n,)``; every domain present.

    Returns
    -------
    TimbreSpace
    """
    n_domains = len(space.centres)
    centres, axes = _centres_and_axes((stats - space.mean) @ space.whitening, labels, n_domains)
    return replace(space, centres=centres, axes=axes)
