"""Objective metrics shared by every method, in a fixed feature space no method's parameters change.

Every clip is first resampled to :data:`METRIC_SR` (22.05 kHz); then one STFT (``n_fft`` 2048, hop 512, Hann,
centred) gives everything else: a 64-band log-mel spectrogram (dB), 20 MFCCs (DCT-II of the log-mel), a 12-bin
chroma and the onset-strength envelope (see :func:`clip_features`).

The common columns (:data:`COMMON_METRICS`) every trial reports:

``content_corr`` (max, [-1, 1])
    Mean of :func:`chroma_correlation` and :func:`onset_correlation` between output and content clip.
``style_dist`` (min, >= 0)
    :func:`style_distance`: RMS distance between whitened timbre statistics (mean and std of MFCC 1–19, std of
    their deltas, over the active frames) of the output and of the style clip, or of the target domain's mean.
    The whitening uses the dataset's within-domain covariance, so statistics that move with the melody (pitch)
    weigh little and those that tell instruments apart weigh much.
``target_prob`` (max, [0, 1])
    :func:`target_probability`: the dataset's domain classifier (:class:`Reference`) on the output.
``lsd_db`` (min, dB)
    :func:`log_spectral_distance` to the true target rendering; NaN when no true target is given.
``fad`` (min, >= 0)
    :func:`frechet_distance` between the frame-level MFCC 1–19 of all outputs pooled and the target domain's.
``transfer_score`` (max, [0, 1])
    :func:`transfer_score` = ``sqrt(max(content_corr, 0) * target_prob)``.

Nothing here downloads anything: the classifier and the domain statistics are fitted on the dataset itself by
:func:`build_reference` (well under a second for the demo set) and cached on disk by the dataset's content hash.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Sequence, Union

import librosa
import numpy as np
import scipy.fft
import scipy.linalg
import scipy.optimize

from audiostyle.data.dataset import AudioDataset
from audiostyle.errors import AudiostyleError, check_choice

log = logging.getLogger(__name__)

METRIC_SR = 22050
"""Sample rate (Hz) every clip is resampled to before any metric."""
N_FFT = 2048
HOP = 512
N_MELS = 64
N_MFCC = 20
TOP_DB = 60.0
"""Frames quieter than the clip's loudest frame by more than this (dB) are left out of timbre statistics."""
LSD_FLOOR_DB = 80.0
"""Spectra are floored this far (dB) below the true target's peak before the log-spectral distance."""
FAD_SHRINKAGE = 0.1
"""Weight of the diagonal in the shrunk covariances of :func:`frechet_distance` (``cov="shrunk"``)."""
STYLE_SHRINKAGE = 0.5
"""Weight of the diagonal in the shrunk within-domain covariance that whitens timbre statistics."""
REFERENCE_VERSION = 2
"""Bump when the feature space or the classifier changes: cached references of other versions are ignored."""

COMMON_METRICS: tuple[str, ...] = ("content_corr", "style_dist", "target_prob", "lsd_db", "fad", "transfer_score")
"""The columns every trial of every method reports (names without the store's ``metric.`` prefix)."""

CovMode = Literal["shrunk", "full", "diag"]

_MEMO: dict[str, "Reference"] = {}
"""References built in this process, by dataset hash (a few at most)."""


# -- fixed features -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipFeatures:
    """Fixed features of one clip at :data:`METRIC_SR`.

    Attributes
    ----------
    power_db : np.ndarray
        ``10 log10 |STFT|²`` (floored at -100 dB), shape ``(1025, frames)``.
    logmel : np.ndarray
        Log-mel power spectrogram in dB, shape ``(64, frames)``.
    mfcc : np.ndarray
        MFCC 0–19 (orthonormal DCT-II of ``logmel``), shape ``(20, frames)``.
    chroma : np.ndarray
        Chroma (each frame max-normalised), shape ``(12, frames)``.
    onset : np.ndarray
        Onset-strength envelope, shape ``(frames,)``.
    active : np.ndarray
        Boolean, shape ``(frames,)``: frames within :data:`TOP_DB` of the loudest one.
    """

    power_db: np.ndarray
    logmel: np.ndarray
    mfcc: np.ndarray
    chroma: np.ndarray
    onset: np.ndarray
    active: np.ndarray

    @property
    def timbre_frames(self) -> np.ndarray:
        """MFCC 1–19 of the active frames (gain-invariant), shape ``(active frames, 19)``."""
        return self.mfcc[1:, self.active].T


@lru_cache(maxsize=1)
def _filterbanks() -> tuple[np.ndarray, np.ndarray]:
    mel = librosa.filters.mel(sr=METRIC_SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
    chroma = librosa.filters.chroma(sr=METRIC_SR, n_fft=N_FFT).astype(np.float32)
    return mel, chroma


def clip_features(audio: np.ndarray, sr: int) -> ClipFeatures:
    """Compute the fixed metric features of one clip.

    Parameters
    ----------
    audio : np.ndarray
        Mono waveform, shape ``(samples,)``, any float dtype.
    sr : int
        Its sample rate, Hz; resampled to :data:`METRIC_SR` when different.

    Returns
    -------
    ClipFeatures
    """
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim != 1:
        raise AudiostyleError(f"metrics expect mono audio of shape (samples,), got shape {y.shape}; mix down first.")
    if not np.all(np.isfinite(y)):
        raise AudiostyleError("audio passed to metrics contains NaN or inf samples; check the method's output.")
    if sr != METRIC_SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=METRIC_SR)
    if y.size < N_FFT // 2:
        y = np.pad(y, (0, N_FFT // 2 - y.size))
    power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2
    mel_fb, chroma_fb = _filterbanks()
    logmel = librosa.power_to_db(mel_fb @ power, ref=1.0, amin=1e-10, top_db=None)
    mfcc = scipy.fft.dct(logmel, axis=0, type=2, norm="ortho")[:N_MFCC]
    chroma = librosa.util.normalize(chroma_fb @ power, norm=np.inf, axis=0)
    onset = librosa.onset.onset_strength(S=logmel, sr=METRIC_SR, hop_length=HOP)
    energy_db = librosa.power_to_db(power.sum(axis=0), ref=1.0, amin=1e-10, top_db=None)
    active = energy_db >= energy_db.max() - TOP_DB
    if active.sum() < 2:
        active = np.ones_like(active)
    power_db = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
    return ClipFeatures(power_db, logmel, mfcc, chroma, onset, active)


Audio = Union[np.ndarray, ClipFeatures]


def _feats(x: Audio, sr: int) -> ClipFeatures:
    return x if isinstance(x, ClipFeatures) else clip_features(x, sr)


def timbre_stats(x: Audio, sr: int = METRIC_SR) -> np.ndarray:
    """Clip-level timbre statistics: mean and std of MFCC 1–19 and std of their deltas over the active frames.

    Parameters
    ----------
    x : np.ndarray or ClipFeatures
        Waveform ``(samples,)`` at ``sr``, or features from :func:`clip_features`.
    sr : int
        Sample rate of ``x`` when it is a waveform, Hz.

    Returns
    -------
    np.ndarray
        float64, shape ``(57,)``; independent of the clip's gain.
    """
    f = _feats(x, sr)
    frames = f.mfcc[1:]
    delta = np.diff(frames, axis=1) if frames.shape[1] > 1 else np.zeros_like(frames)
    act = f.active
    d_act = act[1:] & act[:-1] if act.size > 1 else act
    if d_act.sum() < 1:
        d_act = np.ones(delta.shape[1], dtype=bool)
    parts = (frames[:, act].mean(1), frames[:, act].std(1), delta[:, d_act].std(1))
    return np.concatenate(parts).astype(np.float64)


# -- per-idea metrics ----------------------------------------------------------------------------


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.shape[-1], b.shape[-1])
    a = np.asarray(a[..., :n], np.float64).ravel()
    b = np.asarray(b[..., :n], np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b / denom) if denom > 1e-12 else 0.0


def chroma_correlation(output: Audio, content: Audio, sr: int = METRIC_SR) -> float:
    """Pearson correlation of the two chromagrams (flattened, cut to the shorter clip): melody/harmony kept.

    Parameters
    ----------
    output, content : np.ndarray or ClipFeatures
        Waveforms ``(samples,)`` at ``sr`` or their :func:`clip_features`.
    sr : int
        Sample rate of waveform inputs, Hz.

    Returns
    -------
    float
        In [-1, 1]; 0 when either chromagram is constant.
    """
    return _pearson(_feats(output, sr).chroma, _feats(content, sr).chroma)


def onset_correlation(output: Audio, content: Audio, sr: int = METRIC_SR) -> float:
    """Pearson correlation of the onset-strength envelopes (cut to the shorter clip): rhythm kept.

    Parameters and return as in :func:`chroma_correlation`.
    """
    return _pearson(_feats(output, sr).onset, _feats(content, sr).onset)


def content_correlation(output: Audio, content: Audio, sr: int = METRIC_SR) -> float:
    """``content_corr``: mean of :func:`chroma_correlation` and :func:`onset_correlation`, in [-1, 1]."""
    fo, fc = _feats(output, sr), _feats(content, sr)
    return 0.5 * (chroma_correlation(fo, fc) + onset_correlation(fo, fc))


def style_distance(
    output: Audio,
    reference: Reference,
    *,
    style: Audio | None = None,
    target_domain: str | None = None,
    sr: int = METRIC_SR,
) -> float:
    """``style_dist``: RMS distance of standardised timbre statistics (:func:`timbre_stats`).

    Parameters
    ----------
    output : np.ndarray or ClipFeatures
        Output waveform ``(samples,)`` at ``sr`` or its features.
    reference : Reference
        Supplies the whitening (the dataset's within-domain covariance of the statistics) and domain means.
    style : np.ndarray or ClipFeatures, optional
        The style clip (waveform at ``sr`` or features) to compare with.
    target_domain : str, optional
        Without ``style``: compare with this domain's mean statistics.
    sr : int
        Sample rate of waveform inputs, Hz.

    Returns
    -------
    float
        ``|(s_out - s_ref) W| / sqrt(57)`` >= 0 with ``W`` the whitening; 0 for identical audio. On the demo set,
        two melodies on one instrument are about 1 apart, one melody on two instruments about 2.3.
    """
    if style is not None:
        ref = timbre_stats(style, sr)
    elif target_domain is not None:
        ref = reference.domain_stats[reference.domains[reference.domain_index(target_domain)]]
    else:
        raise AudiostyleError("style_distance needs a style clip (style=...) or a target_domain to compare with.")
    return _stats_distance(timbre_stats(output, sr), ref, reference)


def _stats_distance(s_out: np.ndarray, s_ref: np.ndarray, reference: Reference) -> float:
    z = (s_out - s_ref) @ reference.whiten
    return float(np.sqrt(np.mean(z**2)))


def log_spectral_distance(output: Audio, target: Audio, sr: int = METRIC_SR) -> float:
    """``lsd_db``: log-spectral distance (dB) between output and the true target rendering.

    Per frame, ``sqrt(mean_f (P_out,dB - P_target,dB)²)`` over the 1025 STFT bins, averaged over frames; both
    spectra are floored :data:`LSD_FLOOR_DB` below the target's peak so that silence does not dominate.

    Parameters
    ----------
    output, target : np.ndarray or ClipFeatures
        Waveforms ``(samples,)`` at ``sr`` or their features; cut to the shorter one.
    sr : int
        Sample rate of waveform inputs, Hz.

    Returns
    -------
    float
        >= 0 dB; 0 for identical audio.
    """
    a, b = _feats(output, sr).power_db, _feats(target, sr).power_db
    n = min(a.shape[1], b.shape[1])
    floor = b[:, :n].max() - LSD_FLOOR_DB
    diff = np.maximum(a[:, :n], floor) - np.maximum(b[:, :n], floor)
    return float(np.sqrt((diff.astype(np.float64) ** 2).mean(axis=0)).mean())


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


def _gaussian(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of frames ``(n, d)``; a single frame gets a zero covariance."""
    mu = frames.mean(axis=0)
    if frames.shape[0] < 2:
        return mu, np.zeros((frames.shape[1], frames.shape[1]))
    return mu, np.cov(frames, rowvar=False)


def target_probability(output: Audio, reference: Reference, target_domain: str, sr: int = METRIC_SR) -> float:
    """``target_prob``: probability the dataset's domain classifier gives ``target_domain`` for ``output``.

    Parameters
    ----------
    output : np.ndarray or ClipFeatures
        Waveform ``(samples,)`` at ``sr`` or its features.
    reference : Reference
        The dataset's reference (classifier and domain names).
    target_domain : str
        One of ``reference.domains``.
    sr : int
        Sample rate of a waveform input, Hz.

    Returns
    -------
    float
        In [0, 1].
    """
    k = reference.domain_index(target_domain)
    return float(reference.predict_proba(timbre_stats(output, sr)[None])[0, k])


def transfer_score(content_corr: float, target_prob: float) -> float:
    """``transfer_score = sqrt(max(content_corr, 0) * target_prob)``: high only when melody survives and timbre moved."""
    return float(math.sqrt(max(content_corr, 0.0) * max(target_prob, 0.0)))


# -- the dataset's reference ---------------------------------------------------------------------


@dataclass
class Reference:
    """Per-dataset statistics and domain classifier the metrics compare against (picklable, numpy only).

    Attributes
    ----------
    domains : tuple of str
        Domain names, in classifier output order.
    stats_mean : np.ndarray
        Mean of :func:`timbre_stats` over the dataset's training clips, shape ``(57,)``.
    whiten : np.ndarray
        ``(57, 57)``: ``(s - stats_mean) @ whiten`` has (shrunk) within-domain covariance I.
    domain_stats : dict of str to np.ndarray
        Mean timbre statistics per domain, shape ``(57,)``: the style reference when no style clip is given.
    frame_center, frame_scale : np.ndarray
        Mean and std of frame-level MFCC 1–19 over all clips, ``(19,)`` each: frames are standardised by them.
    frame_mean, frame_cov : dict of str to np.ndarray
        Per domain, mean ``(19,)`` and covariance ``(19, 19)`` of standardised frame-level MFCC 1–19 (``fad``).
    weights, bias : np.ndarray
        Multinomial logistic regression on whitened timbre statistics: ``(57, n_domains)``, ``(n_domains,)``.
    holdout_accuracy : float
        Classifier accuracy on the dataset's ``val`` clips (NaN when there are none).
    dataset_hash : str
        Content hash of the dataset the reference was built from.
    version : int
        :data:`REFERENCE_VERSION` at build time.
    """

    domains: tuple[str, ...]
    stats_mean: np.ndarray
    whiten: np.ndarray
    domain_stats: dict[str, np.ndarray]
    frame_center: np.ndarray
    frame_scale: np.ndarray
    frame_mean: dict[str, np.ndarray]
    frame_cov: dict[str, np.ndarray]
    weights: np.ndarray
    bias: np.ndarray
    holdout_accuracy: float
    dataset_hash: str
    version: int = REFERENCE_VERSION

    def domain_index(self, domain: str) -> int:
        """Index of ``domain`` in :attr:`domains`; unknown names raise :class:`AudiostyleError`."""
        if domain not in self.domains:
            raise AudiostyleError(
                f"target domain {domain!r} is not in the metrics reference (domains: {', '.join(self.domains)}); "
                "pick one of those or rebuild the reference on a dataset that has it."
            )
        return self.domains.index(domain)

    def predict_proba(self, stats: np.ndarray) -> np.ndarray:
        """Class probabilities for timbre statistics ``(n, 57)``: shape ``(n, n_domains)``."""
        return _softmax(((stats - self.stats_mean) @ self.whiten) @ self.weights + self.bias)

    def frames(self, features: ClipFeatures) -> np.ndarray:
        """Standardised frame-level MFCC 1–19 of the active frames, shape ``(frames, 19)``."""
        return (features.timbre_frames - self.frame_center) / self.frame_scale


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _fit_logreg(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by L-BFGS on ``x (n, d)`` standardised, labels ``y (n,)``."""
    n, d = x.shape
    onehot = np.eye(n_classes)[y]

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: d * n_classes].reshape(d, n_classes), theta[d * n_classes :]
        p = _softmax(x @ w + b)
        loss = -np.sum(onehot * np.log(p + 1e-12)) / n + 0.5 * l2 * np.sum(w * w)
        g = (p - onehot) / n
        return loss, np.concatenate([(x.T @ g + l2 * w).ravel(), g.sum(axis=0)])

    theta0 = np.zeros(d * n_classes + n_classes)
    res = scipy.optimize.minimize(loss_grad, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[: d * n_classes].reshape(d, n_classes), res.x[d * n_classes :]


def _within_domain_whitening(stats: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``W`` with ``W.T C W = I`` for ``C`` the within-domain covariance of ``stats (n, d)``, shrunk to its diagonal."""
    resid = np.concatenate([stats[labels == k] - stats[labels == k].mean(axis=0) for k in np.unique(labels)])
    cov = resid.T @ resid / max(len(resid) - len(np.unique(labels)), 1)
    floor = 1e-3 * np.var(stats, axis=0) + 1e-9
    cov = (1 - STYLE_SHRINKAGE) * cov + np.diag(STYLE_SHRINKAGE * np.diag(cov) + floor)
    w, v = np.linalg.eigh(cov)
    return v / np.sqrt(w)


def dataset_hash(dataset: AudioDataset) -> str:
    """SHA-256 over the dataset's sample rate and every clip's name, domain, split, pair key and samples."""
    h = hashlib.sha256(f"sr={dataset.sr};v={REFERENCE_VERSION}".encode())
    for c in sorted(dataset.clips, key=lambda c: c.name):
        h.update(f"|{c.name}|{c.domain}|{c.split}|{c.pair_key}|{c.sr}|".encode())
        h.update(np.ascontiguousarray(c.audio, dtype=np.float32).tobytes())
    return h.hexdigest()


def _fit_reference(dataset: AudioDataset, digest: str) -> Reference:
    if len(dataset.domains) < 2:
        raise AudiostyleError(
            f"metrics need at least two domains to train the domain classifier; {dataset.source or 'the dataset'} "
            f"has {', '.join(dataset.domains) or 'none'}. Add clips of another domain."
        )
    feats = [clip_features(c.audio, c.sr) for c in dataset.clips]
    stats = np.stack([timbre_stats(f) for f in feats])
    labels = np.array([dataset.domains.index(c.domain) for c in dataset.clips])
    is_val = np.array([c.split == "val" for c in dataset.clips])
    train = ~is_val if (~is_val).any() else np.ones_like(is_val)
    mean = stats[train].mean(axis=0)
    whiten = _within_domain_whitening(stats[train], labels[train])
    z = (stats - mean) @ whiten
    w, b = _fit_logreg(z[train], labels[train], len(dataset.domains))
    acc = float((np.argmax(z[is_val] @ w + b, axis=1) == labels[is_val]).mean()) if is_val.any() else float("nan")
    all_frames = np.concatenate([f.timbre_frames for f in feats])
    center, scale = all_frames.mean(axis=0), all_frames.std(axis=0) + 1e-6
    domain_stats, frame_mean, frame_cov = {}, {}, {}
    for k, d in enumerate(dataset.domains):
        idx = np.flatnonzero(labels == k)
        domain_stats[d] = stats[idx].mean(axis=0)
        frames = (np.concatenate([feats[i].timbre_frames for i in idx]) - center) / scale
        frame_mean[d], frame_cov[d] = _gaussian(frames)
    log.info("metrics reference for %s: %d clips, classifier held-out accuracy %.3f",
             dataset.source or "dataset", len(dataset.clips), acc)
    return Reference(dataset.domains, mean, whiten, domain_stats, center, scale, frame_mean, frame_cov, w, b, acc,
                     digest)


def build_reference(dataset: AudioDataset, cache_dir: str | os.PathLike | None = None) -> Reference:
    """Fit the metrics reference of a dataset (domain statistics and classifier), cached by content hash.

    Parameters
    ----------
    dataset : AudioDataset
        At least two domains. The classifier trains on the ``train`` clips (all clips when none are marked
        ``train``) and reports its accuracy on the ``val`` clips.
    cache_dir : str or PathLike, optional
        Local folder; the reference is stored as ``reference-<hash>.pkl`` there and reused by any later call
        on a dataset with the same content. Within one process the last few references are also kept in
        memory (same hash, same object).

    Returns
    -------
    Reference
    """
    digest = dataset_hash(dataset)
    ref = _MEMO.get(digest)
    path = Path(cache_dir) / f"reference-{digest[:24]}.pkl" if cache_dir is not None else None
    if ref is None and path is not None and path.exists():
        try:
            with open(path, "rb") as fh:
                cached = pickle.load(fh)
            if isinstance(cached, Reference) and cached.version == REFERENCE_VERSION and cached.dataset_hash == digest:
                ref = cached
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            log.warning("ignoring unreadable metrics reference cache %s (%s)", path, exc)
    if ref is None:
        ref = _fit_reference(dataset, digest)
    if path is not None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".reference-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(ref, fh)
        os.replace(tmp, path)
    return _remember(ref)


def _remember(ref: Reference) -> Reference:
    if len(_MEMO) >= 4:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[ref.dataset_hash] = ref
    return ref


# -- everything at once --------------------------------------------------------------------------


def evaluate(
    outputs: Sequence[np.ndarray],
    contents: Sequence[np.ndarray],
    sr: int,
    reference: Reference,
    target_domain: str,
    *,
    styles: Sequence[np.ndarray] | None = None,
    true_targets: Sequence[np.ndarray] | None = None,
    fad_cov: CovMode = "shrunk",
) -> dict[str, float]:
    """All common metrics (:data:`COMMON_METRICS`) of a set of transfers, averaged over the set.

    Parameters
    ----------
    outputs : sequence of np.ndarray
        Transferred waveforms, each ``(samples,)`` at ``sr`` (or their :class:`ClipFeatures`, as ``contents``).
    contents : sequence of np.ndarray
        The content clip of each output (same order, same length of sequence), ``(samples,)`` at ``sr``.
    sr : int
        Sample rate of every waveform, Hz.
    reference : Reference
        From :func:`build_reference` on the dataset.
    target_domain : str
        The domain the outputs should sound like.
    styles : sequence of np.ndarray, optional
        The style clip of each output; when absent, ``style_dist`` compares with the domain's mean statistics.
    true_targets : sequence of np.ndarray, optional
        The true rendering of each content in the target domain (paired data); ``lsd_db`` is NaN without it.
    fad_cov : {"shrunk", "full", "diag"}
        Covariance mode of ``fad`` (:func:`frechet_distance`). ``fad`` pools the standardised frame-level MFCC 1–19
        of every output into one Gaussian, so it is defined for any set size (even one short clip).

    Returns
    -------
    dict of str to float
        ``content_corr``, ``style_dist``, ``target_prob``, ``lsd_db``, ``fad``, ``transfer_score``; every
        per-clip metric is the mean over the set, and ``transfer_score`` is computed from those means.
    """
    n = len(outputs)
    if n == 0 or len(contents) != n:
        raise AudiostyleError(f"evaluate needs one content clip per output: got {n} outputs, {len(contents)} contents.")
    for name, seq in (("styles", styles), ("true_targets", true_targets)):
        if seq is not None and len(seq) != n:
            raise AudiostyleError(f"evaluate: {name} has {len(seq)} clips for {n} outputs; give one per output.")
    k = reference.domain_index(target_domain)
    f_out = [_feats(y, sr) for y in outputs]  # waveforms, or ClipFeatures computed once by the caller
    f_con = [_feats(y, sr) for y in contents]
    stats = np.stack([timbre_stats(f) for f in f_out])
    refs = [timbre_stats(clip_features(s, sr)) for s in styles] if styles is not None else \
        [reference.domain_stats[target_domain]] * n
    content = float(np.mean([content_correlation(a, b) for a, b in zip(f_out, f_con)]))
    style = float(np.mean([_stats_distance(s, r, reference) for s, r in zip(stats, refs)]))
    prob = float(reference.predict_proba(stats)[:, k].mean())
    lsd = float(np.mean([log_spectral_distance(f, clip_features(t, sr)) for f, t in zip(f_out, true_targets)])) \
        if true_targets is not None else float("nan")
    mu, cov = _gaussian(np.concatenate([reference.frames(f) for f in f_out]))
    fad = frechet_distance(mu, cov, reference.frame_mean[target_domain], reference.frame_cov[target_domain],
                           cov=fad_cov)
    return {
        "content_corr": content,
        "style_dist": style,
        "target_prob": prob,
        "lsd_db": lsd,
        "fad": fad,
        "transfer_score": transfer_score(content, prob),
    }
