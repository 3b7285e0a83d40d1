"""The domain classifier: which instrument from the discriminant view, whether it is one at all from the full view.

With one shared covariance (the whitening of :mod:`audiostyle.metrics._timbre`), the Bayes classifier of Gaussian
domains is a softmax over ``-d_k² / 2``. It extrapolates: an input far from all the data still lies nearest to
some domain and gets a probability near 1 (noise, silence). Two guards keep it honest:

- in the discriminant view (distances in unseen-clip spreads), an extra "none of them" class sits at
  :data:`DISCRIMINANT_REJECT` from every input, so an input further than that from every domain gives most of its
  probability to it;
- in the full view, domain k accepts an input with the probability that a Gaussian of the domain's unseen clips
  explains it better than one at the domain's acceptance radius ``R_k = rms_k + REJECT_SIGMAS · std_k`` (the RMS
  and std of its unseen clips' distances; compared in the whitened units of the fit, so the step is as sharp as
  the data's own scatter): an instrument plus hiss, muffled or mixed with another lies beyond ``R_k`` in
  directions the discriminant view does not see.

``R_k`` comes from the unseen-clip distances the cross-validation measured on the dataset itself, so it widens for
instruments whose clips vary more (another sample library, live recordings); nothing is set per dataset by hand.
"""

from __future__ import annotations

import numpy as np

DISCRIMINANT_REJECT = 3.0
"""Discriminant-view distance (unseen-clip spreads) at which the reject class weighs as much as a domain: an unseen
clip of a domain lies about 1 from it (reject weight ``exp(-(9 - 1) / 2)`` ≈ 2 % of its domain's)."""
REJECT_SIGMAS = 3.0
"""Standard deviations of a domain's unseen-clip full-view distances (beyond their RMS) at which its acceptance
falls to one half."""


def acceptance_radius(domain_rms: np.ndarray, domain_std: np.ndarray) -> np.ndarray:
    """Each domain's full-view acceptance radius ``rms_k + REJECT_SIGMAS · std_k``, unseen-clip spreads."""
    return np.asarray(domain_rms) + REJECT_SIGMAS * np.asarray(domain_std)


def domain_probabilities(discriminant: np.ndarray, full: np.ndarray, spread: float, radius: np.ndarray
                         ) -> np.ndarray:
    """Probability of each domain, ``(n, n_domains)``; rows sum to less than 1 (the rest is "none of them").

    Parameters
    ----------
    discriminant, full : np.ndarray
        The two views' distances to each domain, unseen-clip spreads, ``(n, n_domains)``.
    spread : float
        The full view's spread, whitened units.
    radius : np.ndarray
        :func:`acceptance_radius` of each domain, ``(n_domains,)``.
    """
    logits = -0.5 * np.concatenate([discriminant**2, np.full((len(discriminant), 1), DISCRIMINANT_REJECT**2)], axis=1)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    which = (p / p.sum(axis=1, keepdims=True))[:, :-1]
    excess = 0.5 * spread**2 * (full**2 - np.asarray(radius)[None] ** 2)
    return which * np.exp(-np.logaddexp(0.0, excess))
