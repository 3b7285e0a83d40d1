"""Distribution distance: the Fréchet distance between Gaussians of frame-level timbre features (``fad``)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from audiostyle.errors import check_choice

FAD_SHRINKAGE = 0.1
"""Weight of the diagonal in the shrunk covariances of :func:`frechet_distance` (``cov="shrunk"``)."""

CovMode = Literal["shrunk", "full", "diag"]


def _shrink(cov: np.ndarray, mode: CovMode) -> np.ndarray:
    if mode == "full":
        return cov
    diag = np.diag(np.diag(cov))
    return diag if mode == "diag" else (1 - FAD_SHRINKAGE) * cov + FAD_SHRINKAGE * diag


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(
    mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray, *, cov: CovMode = "shrunk"
) -> float:
    """Fréchet distance between two Gaussians ``N(mu1, cov1)`` and ``N(mu2, cov2)``.

    ``|mu1 - mu2|² + tr(C1) + tr(C2) - 2 tr((C1^½ C2 C1^½)^½)`` with ``C = shrink(cov)``.

    Parameters
    ----------
    mu1, mu2 : np.ndarray
        Means, shape ``(d,)``.
    cov1, cov2 : np.ndarray
        Covariances, shape ``(d, d)``.
    cov : {"shrunk", "full", "diag"}
        ``"shrunk"`` (default) blends each covariance with its diagonal (weight :data:`FAD_SHRINKAGE`), which
        keeps the distance stable when few frames estimate it (a handful of short outputs); ``"diag"`` keeps only
        variances; ``"full"`` uses the covariances as given.

    Returns
    -------
    float
        >= 0; 0 for identical Gaussians.
    """
    check_choice("cov", cov, ("shrunk", "full", "diag"))
    c1, c2 = _shrink(np.asarray(cov1, np.float64), cov), _shrink(np.asarray(cov2, np.float64), cov)
    s1 = _sqrtm_psd(c1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(s1 @ c2 @ s1), 0, None)).sum()
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    return float(max(diff @ diff + np.trace(c1) + np.trace(c2) - 2 * cross, 0.0))


def gaussian(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of frames ``(n, d)``; a single frame gets a zero covariance."""
    mu = frames.mean(axis=0)
    if frames.shape[0] < 2:
        return mu, np.zeros((frames.shape[1], frames.shape[1]))
    return mu, np.cov(frames, rowvar=False)

