"""The domain classifier: distances in the timbre embedding, with a reject class for what is like no domain.

A softmax over ``-d_k² / 2`` (``d_k``: distance to domain k's centre, in unseen-clip spreads) is a Gaussian
classifier with one shared isotropic covariance. A logistic regression extrapolates: any input far from the data
lands deep in some class's half-space and gets a probability near 1 (noise, silence). Here an extra "none of them"
class sits at the fixed distance :data:`REJECT_RADIUS` from every input, so an input further than that from every
domain gives most of its probability to the reject class, whichever side it lies on.
"""

from __future__ import annotations

import numpy as np

REJECT_RADIUS = 3.0
"""Distance (unseen-clip spreads) at which the reject class weighs as much as a domain. An unseen clip of a domain
lies about 1 from its centre (its reject weight ``exp(-(9 - 1) / 2)`` ≈ 2 % of its domain's); a clip three times
as far from every domain as a typical unseen one is more likely none of them."""


def domain_probabilities(distances: np.ndarray) -> np.ndarray:
    """Probabilities of each domain from distances ``(n, n_domains)`` (spreads): ``(n, n_domains)``.

    Rows sum to ``1 - p_reject`` (< 1): far from every domain, every probability is low.
    """
    logits = np.concatenate([-0.5 * distances**2, np.full((len(distances), 1), -0.5 * REJECT_RADIUS**2)], axis=1)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True))[:, :-1]
