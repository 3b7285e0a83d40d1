"""The domain classifier: which instrument from the discriminant view, whether it is one at all from both views.

With one shared covariance (the whitening of :mod:`audiostyle.metrics._timbre`), the Bayes classifier of Gaussian
domains is a softmax over ``-d_k² / 2`` (discriminant-view distances, unseen-clip spreads). It extrapolates: an
input far from all the data still lies nearest to some domain and gets a probability near 1 (noise, silence).
So in each view domain k also *accepts* an input with the probability that a Gaussian of the domain's unseen
clips explains it better than one at the domain's acceptance radius ``R_k = rms_k + REJECT_SIGMAS · std_k`` (the
RMS and std of its unseen clips' distances in that view, compared in the whitened units of the fit, so the step is
as sharp as the data's own scatter). ``target_prob`` is the softmax times both acceptances: an instrument plus
hiss, muffled or mixed with another lies beyond ``R_k`` in one view or the other.

``R_k`` comes from the unseen-clip distances the cross-validation measured on the dataset itself, so it widens for
instruments whose clips vary more (another sample library, live recordings); nothing is set per dataset by hand.
"""

from __future__ import annotations

import numpy as np

REJECT_SIGMAS = 3.0
"""Standard deviations of a domain's unseen-clip distances (beyond their RMS) at which its acceptance in a view
falls to one half."""


def acceptance_radius(domain_rms: np.ndarray, domain_std: np.ndarray) -> np.ndarray:
    """Each domain's acceptance radius in one view, ``rms_k + REJECT_SIGMAS · std_k``, unseen-clip spreads."""
    return np.asarray(domain_rms) + REJECT_SIGMAS * np.asarray(domain_std)


def acceptance(distances: np.ndarray, spread: float, radius: np.ndarray) -> np.ndarray:
    """Probability that each domain's unseen clips explain each input better than its radius, ``(n, n_domains)``.

    Parameters
    ----------
    distances : np.ndarray
        One view's distances, unseen-clip spreads, ``(n, n_domains)``.
    spread : float
        That view's spread, whitened units.
    radius : np.ndarray
        :func:`acceptance_radius` of each domain in that view, ``(n_domains,)``.
    """
    return np.exp(-np.logaddexp(0.0, 0.5 * spread**2 * (distances**2 - np.asarray(radius)[None] ** 2)))


def domain_probabilities(discriminant: np.ndarray, accepted: np.ndarray) -> np.ndarray:
    """Probability of each domain, ``(n, n_domains)``; rows sum to less than 1 (the rest is "none of them").

    Parameters
    ----------
    discriminant : np.ndarray
        Discriminant-view distances to each domain, unseen-clip spreads, ``(n, n_domains)``.
    accepted : np.ndarray
        The product of both views' :func:`acceptance`, ``(n, n_domains)``.
    """
    logits = -0.5 * discriminant**2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True) * accepted
