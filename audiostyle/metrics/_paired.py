"""Distance to the true target (paired data): log-mel spectral distance after loudness matching."""

from __future__ import annotations

import numpy as np

from audiostyle.metrics._features import ClipFeatures

LSD_REL_FLOOR_DB = 1.0
"""Least copy-content LSD (dB) ``lsd_rel`` divides by: a content that already sounds like its target (the same
instrument) does not blow the ratio up."""
LSD_FLOOR_DB = 80.0
"""Both spectra are floored this far (dB) below the target's peak, so that silence does not dominate."""
LSD_MASK_DB = 40.0
"""In each frame both spectra are also floored this far (dB) below the target's loudest band in that frame: what
lies further below is masked by it, and noise that fills the valleys between a bowed target's partials can no
longer bring an output closer to the target (content + 30 dB white noise scored ``lsd_rel`` 0.8–0.9 without it)."""


def _level_db(f: ClipFeatures) -> float:
    return float(10 * np.log10(np.mean(10 ** (f.logmel / 10)) + 1e-30))


def log_mel_distance(output: ClipFeatures, target: ClipFeatures) -> float:
    """``lsd_db``: log-spectral distance (dB) on the 64-band log-mel spectrogram, loudness-normalised.

    The output is first scaled to the target's mean power (a method's output gain is not its timbre; silence is
    left as it is), then per frame ``sqrt(mean_band (O_dB - T_dB)²)`` with both floored at the higher of
    :data:`LSD_FLOOR_DB` below the target's peak and :data:`LSD_MASK_DB` below the target frame's loudest band,
    averaged over the frames of the shorter clip. The per-frame floor is what noise cannot game: below it the target
    has nothing audible to match, and whatever an output adds above it counts as a difference. The mel bands follow
    the ear's frequency resolution, as in Cífka et al. 2021 (ss-VQ-VAE), whose table this reproduces in form.

    Parameters
    ----------
    output, target : ClipFeatures

    Returns
    -------
    float
        >= 0 dB; 0 for the target itself at any gain.
    """
    n = min(output.frames, target.frames)
    gain = 0.0 if output.silent else _level_db(target) - _level_db(output)
    o, t = output.logmel[:, :n] + gain, target.logmel[:, :n]
    floor = np.maximum(t.max() - LSD_FLOOR_DB, t.max(axis=0, keepdims=True) - LSD_MASK_DB)
    diff = np.maximum(o, floor) - np.maximum(t, floor)
    return float(np.sqrt((diff.astype(np.float64) ** 2).mean(axis=0)).mean())


def relative_distance(output: ClipFeatures, content: ClipFeatures, target: ClipFeatures) -> float:
    """``lsd_rel``: the output's ``lsd_db`` to the target over the content's (what copying the content would score).

    1 for copying the content, 0 for the target, below 1 for every output that moved towards the target: the figure
    that compares across datasets and instrument pairs (Cífka et al. 2021 read 0.83 for ss-VQ-VAE and 0.99 for
    Ulyanov & Lebedev's shallow CNN on their synthetic set). The denominator is floored at
    :data:`LSD_REL_FLOOR_DB`.
    """
    return log_mel_distance(output, target) / max(log_mel_distance(content, target), LSD_REL_FLOOR_DB)
