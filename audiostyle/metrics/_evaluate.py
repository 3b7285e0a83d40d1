"""The headline and :func:`evaluate`: every common metric of a set of outputs in one call."""

from __future__ import annotations

import logging
import math
from typing import Mapping, Sequence

import numpy as np

from audiostyle.errors import AudiostyleError
from audiostyle.metrics._distribution import CovMode, frechet_distance, gaussian
from audiostyle.metrics._features import POWER_FLOOR_DB, TOP_DB, Audio, ClipFeatures, cached_features, features
from audiostyle.metrics._melody import melody_metrics
from audiostyle.metrics._names import COMMON_METRICS, HEADLINE, MELODY_METRICS
from audiostyle.metrics._paired import log_mel_distance, relative_distance
from audiostyle.metrics._reference import Reference
from audiostyle.metrics._timbre import clip_stats, timbre_stats

log = logging.getLogger(__name__)

SCORE_VERSION = 11
"""The version of the common metrics' definitions, stored in every trial row (``metrics_version``): scores of
different versions are not comparable. Bumped whenever a column's definition or the reference
(``REFERENCE_VERSION``) changes. 1–10: the reference's version. 11: ``melody`` is the pitch line alone
(:func:`melody_metrics`), no longer its mean with ``chroma_sim``."""
TIMBRE_PRIOR = 0.05
"""Additive prior of the headline's timbre term, ``(timbre_shift + TIMBRE_PRIOR) / (1 + TIMBRE_PRIOR)``: an output
whose timbre did not move keeps ``TIMBRE_PRIOR / (1 + TIMBRE_PRIOR)`` (0.048) and still ranks by its melody and its
distance to the target, and a small move lifts the term in proportion (a floor of ``max(shift, 1e-3)`` under the cube
root gave a 2 % move 2.3× copy-content's headline while every other part got worse)."""


def headline_parts(row: Mapping[str, float]) -> dict[str, float]:
    """The headline's components in [0, 1] from a metrics row: ``melody``, ``timbre`` and (paired) ``target``.

    ``melody`` is clipped to [0, 1]; ``timbre = (timbre_shift + TIMBRE_PRIOR) / (1 + TIMBRE_PRIOR)``; ``target =
    exp(-lsd_rel²)`` (copying the content keeps ``exp(-1)``, the true target 1, an output farther from the target
    than the content falls fast), NaN when ``lsd_rel`` is (no true target).
    """
    rel = float(row["lsd_rel"])
    return {
        "melody": float(np.clip(row["melody"], 0.0, 1.0)),
        "timbre": (float(row["timbre_shift"]) + TIMBRE_PRIOR) / (1.0 + TIMBRE_PRIOR),
        "target": math.exp(-rel * rel) if math.isfinite(rel) else math.nan,
    }


def headline(row: Mapping[str, float]) -> float:
    """``transfer_score``: the geometric mean of the defined :func:`headline_parts` (see the package docstring).

    Parameters
    ----------
    row : mapping of str to float
        At least ``melody``, ``timbre_shift`` and ``lsd_rel`` (NaN on unpaired data).

    Returns
    -------
    float
        In [0, 1]; NaN when ``melody`` is NaN (a generator's samples have no content).
    """
    if not math.isfinite(float(row["melody"])):
        return math.nan
    parts = [v for v in headline_parts(row).values() if math.isfinite(v)]
    return float(np.prod(parts) ** (1.0 / len(parts)))


def silence_level(output: ClipFeatures, content: ClipFeatures) -> float:
    """``silence_kept``: the output's level (dB re its loudest frame) over the frames where the content is silent.

    Silent content frames are those more than :data:`~audiostyle.metrics._features.TOP_DB` below the content's
    loudest frame (pauses, the end of release tails, padding). A method that fills them with a drone or hiss reads
    high (-20 dB: a drone 20 dB below the playing); one that keeps the pauses reads near the content's own level
    there. A silent output reads :data:`~audiostyle.metrics._features.POWER_FLOOR_DB`.

    Returns
    -------
    float
        dB <= 0; NaN when the content has no silent frame (a clip of continuous playing).
    """
    n = min(output.frames, content.frames)
    quiet = content.energy_db[:n] < content.energy_db.max() - TOP_DB
    if not quiet.any():
        return math.nan
    if output.silent:
        return POWER_FLOOR_DB
    level = 10 * np.log10(np.mean(10 ** (output.energy_db[:n][quiet].astype(np.float64) / 10)))
    return float(max(level - output.energy_db.max(), POWER_FLOOR_DB))


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def evaluate(
    outputs: Sequence[Audio],
    contents: Sequence[Audio] | None,
    sr: int,
    reference: Reference,
    target_domain: str,
    *,
    true_targets: Sequence[Audio | None] | None = None,
    fad_cov: CovMode = "shrunk",
) -> dict[str, float]:
    """All common metrics (:data:`COMMON_METRICS`) of a set of outputs, averaged over the set.

    Parameters
    ----------
    outputs : sequence of np.ndarray or ClipFeatures
        Output waveforms, each ``(samples,)`` at ``sr``, or their :func:`clip_features`.
    contents : sequence of np.ndarray or ClipFeatures, or None
        The content clip of each output (same order). Their features and pitch tracks are computed once per
        process (:func:`cached_features`). None for generated samples: the melody columns, ``timbre_shift`` and the
        headline are NaN.
    sr : int
        Sample rate of every waveform, Hz.
    reference : Reference
        From :func:`build_reference` on the dataset (train split).
    target_domain : str
        The domain the outputs should sound like.
    true_targets : sequence of (np.ndarray or ClipFeatures or None), optional
        The true rendering of each content in the target domain (paired data), None where an output has none (an
        unpaired trailing clip): ``lsd_db`` is the mean over the outputs that have one, ``paired_frac`` says how
        many did, and the headline is the paired one as long as one did. Absent: ``lsd_db`` NaN, ``paired_frac`` 0.
    fad_cov : {"shrunk", "full", "diag"}
        Covariance mode of ``fad`` (:func:`frechet_distance`), which pools the standardised ``fad`` frames (MFCC
        1–12 and their deltas, :attr:`ClipFeatures.fad_frames`) of every output into one Gaussian, so it is
        defined for any set size (even one short clip).

    Returns
    -------
    dict of str to float
        Every name of :data:`COMMON_METRICS`; per-output metrics are means over the set (melody ones over the
        outputs where they are defined), the headline is computed from those means.

    Raises
    ------
    AudiostyleError
        Mismatched lengths, an unknown target domain, or audio that is not mono and finite.
    """
    n = len(outputs)
    if n == 0 or (contents is not None and len(contents) != n):
        raise AudiostyleError(
            f"evaluate needs one content clip per output: got {n} outputs, {len(contents or ())} contents.")
    if true_targets is not None and len(true_targets) != n:
        raise AudiostyleError(f"evaluate: true_targets has {len(true_targets)} clips for {n} outputs; give one per "
                              "output (None where an output has no true target).")
    k = reference.domain_index(target_domain)
    f_out = [features(y, sr) for y in outputs]
    stats = np.stack([clip_stats(f) for f in f_out])
    distances, proba = reference.classify(stats)
    row = {name: math.nan for name in COMMON_METRICS}
    row["timbre_dist"] = float(distances[:, k].mean())
    row["target_prob"] = float(proba[:, k].mean())
    paired = [i for i, t in enumerate(true_targets or ()) if t is not None]
    targets = {i: cached_features(true_targets[i], sr) for i in paired}  # type: ignore[index]
    if contents is not None:
        f_in = [cached_features(c, sr) for c in contents]
        per = [melody_metrics(f, c, targets.get(i)) for i, (f, c) in enumerate(zip(f_out, f_in))]
        row.update({name: _nanmean([p[name] for p in per]) for name in MELODY_METRICS})
        row["timbre_shift"] = float(reference.shift(stats, np.stack([clip_stats(c) for c in f_in]), k).mean())
        row["silence_kept"] = _nanmean([silence_level(f, c) for f, c in zip(f_out, f_in)])
    row["paired_frac"] = len(paired) / n
    if paired:
        row["lsd_db"] = float(np.mean([log_mel_distance(f_out[i], targets[i]) for i in paired]))
        if contents is not None:
            row["lsd_rel"] = float(np.mean([relative_distance(f_out[i], cached_features(contents[i], sr), targets[i])
                                            for i in paired]))
        if len(paired) < n:
            log.warning("%d of %d outputs have no true target: lsd_db is the mean over the other %d "
                        "(paired_frac %.2f)", n - len(paired), n, len(paired), row["paired_frac"])
    mu, cov = gaussian(np.concatenate([reference.frames(f) for f in f_out]))
    row["fad"] = frechet_distance(mu, cov, reference.frame_mean[target_domain], reference.frame_cov[target_domain],
                                  cov=fad_cov)
    row[HEADLINE] = headline(row)
    return row


def target_probability(output: Audio, reference: Reference, target_domain: str, sr: int) -> float:
    """``target_prob`` of one clip: the domain classifier's probability of ``target_domain`` (the rest: "none of them").

    Parameters
    ----------
    output : np.ndarray or ClipFeatures
        Waveform ``(samples,)`` at ``sr`` or its features.
    reference : Reference
    target_domain : str
        One of ``reference.domains``.
    sr : int
        Sample rate of a waveform, Hz.

    Returns
    -------
    float
        In [0, 1]; low for inputs like no domain (noise, silence).
    """
    k = reference.domain_index(target_domain)
    return float(reference.predict_proba(timbre_stats(features(output, sr))[None])[0, k])
