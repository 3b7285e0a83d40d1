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
from scipy.special import expit

SHIFT_MIN_SPAN = 0.5
"""Least discriminant-view distance (unseen-clip spreads) between a content clip and the target domain's typical
clip that :func:`timbre_shift` divides by: a content that already sounds like the target does not blow it up."""
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


def timbre_shift(full: np.ndarray, discriminant: np.ndarray, content_discriminant: np.ndarray,
                 full_radius: float, full_std: float, discriminant_rms: float) -> np.ndarray:
    """``timbre_shift``: how far each output moved from its content clip's timbre to the target domain's, in [0, 1].

    The product of two continuous factors, so that a sweep sees an output that moved halfway as better than one
    that did nothing (the acceptance of :func:`acceptance` is a step as sharp as the data's scatter, which gives
    every partial move the same 0):

    - **moved**, in the discriminant view (the one that tells instruments apart): the fraction of the way from the
      content clip's distance ``c`` to the target domain down to its typical unseen clip's distance ``r`` that the
      output's distance ``d`` covered, ``1 - clip((d - r) / max(c - r, SHIFT_MIN_SPAN), 0, 1)``: 0 for the content
      itself (in every direction, whatever the instruments' distance), 1 within a typical clip of the target
      instrument (so also for a content that already was one);
    - **plausible**, in the full view (every direction of the statistics, where added noise, muffling or a mix with
      another sound lies far from every domain while the discriminant view may project it next to one): a logistic
      ``expit((R - f) / s)`` of the full-view distance ``f`` around the domain's acceptance radius ``R``, with the
      standard deviation ``s`` of its unseen clips' distances as the slope, so 1/2 at ``R`` as in
      :func:`acceptance`, but graded over the data's own scatter rather than stepped.

    Parameters
    ----------
    full, discriminant : np.ndarray
        The outputs' distances to the target domain in the full and the discriminant view, unseen-clip spreads,
        ``(n,)`` each.
    content_discriminant : np.ndarray
        Each output's content clip's discriminant-view distance to the target domain, ``(n,)``.
    full_radius, full_std : float
        The target domain's :func:`acceptance_radius` and unseen-clip distance std in the full view.
    discriminant_rms : float
        The target domain's RMS unseen-clip distance in the discriminant view.

    Returns
    -------
    np.ndarray
        ``(n,)`` in [0, 1].
    """
    span = np.maximum(np.asarray(content_discriminant) - discriminant_rms, SHIFT_MIN_SPAN)
    moved = 1.0 - np.clip((np.asarray(discriminant) - discriminant_rms) / span, 0.0, 1.0)
    return moved * expit((full_radius - np.asarray(full)) / max(full_std, 1e-6))
