"""Fixed features of one clip (one STFT at :data:`METRIC_SR`), and a cache for clips that do not change."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Union

import librosa
import numpy as np
import scipy.fft

from audiostyle.errors import AudiostyleError

METRIC_SR = 22050
"""Sample rate (Hz) every clip is resampled to before any metric."""
N_FFT = 2048
"""STFT size (samples at :data:`METRIC_SR`, 93 ms)."""
HOP = 512
"""STFT hop (samples, 23.2 ms): one metric frame."""
N_MELS = 64
N_MFCC = 20
POWER_FLOOR_DB = -100.0
"""Power floor of every dB spectrum (dB re full scale): digital silence sits there."""
FAD_MFCC = 12
"""``fad``'s frames keep MFCC 1–12, the spectral envelope. MFCC 13–19 follow the ripple of the partials, which moves
with the register: with them a test melody's true target sat farther from its instrument's train frames than the
content did on two OPL3 directions (``benchmarks/results/calibration_across_sources.md``)."""
TOP_DB = 60.0
"""Frames quieter than the clip's loudest frame by more than this (dB) are inactive (left out of statistics)."""
CACHE_SIZE = 64
"""Clips whose features :func:`cached_features` keeps (contents, targets: the inputs of many evaluations; about
0.6 MB each for 6 s)."""


@dataclass
class ClipFeatures:
    """Fixed features of one clip at :data:`METRIC_SR`.

    Attributes
    ----------
    audio : np.ndarray
        The mono waveform at :data:`METRIC_SR`, float32 ``(samples,)`` (for the pitch tracker).
    logmel : np.ndarray
        Log-mel power spectrogram in dB (floored at :data:`POWER_FLOOR_DB`), ``(64, frames)``.
    mfcc : np.ndarray
        MFCC 0–19 (orthonormal DCT-II of ``logmel``), ``(20, frames)``.
    chroma : np.ndarray
        Chroma energy (not normalised), ``(12, frames)``.
    onset : np.ndarray
        Onset-strength envelope (spectral flux of ``logmel``), ``(frames,)``.
    energy_db : np.ndarray
        Frame power in dB, ``(frames,)``.
    flatness_db : np.ndarray
        Spectral flatness (geometric over arithmetic mean of the power spectrum) in dB, ``(frames,)``: 0 for white
        noise, very negative for harmonic tones.
    contrast_db : np.ndarray
        Spectral contrast (``librosa.feature.spectral_contrast``: peak minus valley level in six octave bands from
        200 Hz and the rest), dB, ``(7, frames)``: how far partials stand above the floor between them, which a
        noise floor (hiss, a bow's or a breath's noise) fills in.
    active : np.ndarray
        Boolean ``(frames,)``: frames within :data:`TOP_DB` of the loudest one and above the floor (all frames of a
        silent clip, so that statistics stay defined).
    silent : bool
        True when no frame rises above the floor (digital silence).
    memo : dict
        Per-clip memo of derived values (the pitch track, onsets), filled lazily by the metrics.
    """

    audio: np.ndarray
    logmel: np.ndarray
    mfcc: np.ndarray
    chroma: np.ndarray
    onset: np.ndarray
    energy_db: np.ndarray
    flatness_db: np.ndarray
    contrast_db: np.ndarray
    active: np.ndarray
    silent: bool
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def frames(self) -> int:
        """Number of metric frames."""
        return int(self.onset.shape[0])

    @property
    def fad_frames(self) -> np.ndarray:
        """MFCC 1–:data:`FAD_MFCC` and their change from the frame before (0 at the first frame) over the active
        frames (gain-invariant): the envelope and how it moves (an attack, a vibrato), ``(active frames,
        2 * FAD_MFCC)``."""
        envelope = self.mfcc[1:FAD_MFCC + 1]
        change = np.diff(envelope, axis=1, prepend=envelope[:, :1])
        return np.concatenate([envelope, change])[:, self.active].T


@lru_cache(maxsize=1)
def _filterbanks() -> tuple[np.ndarray, np.ndarray]:
    mel = librosa.filters.mel(sr=METRIC_SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
    chroma = librosa.filters.chroma(sr=METRIC_SR, n_fft=N_FFT).astype(np.float32)
    return mel, chroma


def _db(power: np.ndarray) -> np.ndarray:
    return librosa.power_to_db(power, ref=1.0, amin=10 ** (POWER_FLOOR_DB / 10), top_db=None)


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

    Raises
    ------
    AudiostyleError
        Audio that is not mono or holds NaN/inf samples.
    """
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim != 1:
        raise AudiostyleError(f"metrics expect mono audio of shape (samples,), got shape {y.shape}; mix down first.")
    if not np.all(np.isfinite(y)):
        raise AudiostyleError("audio passed to metrics contains NaN or inf samples; check the method's output.")
    if sr != METRIC_SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=METRIC_SR).astype(np.float32)
    if y.size < N_FFT:
        y = np.pad(y, (0, N_FFT - y.size))
    power = (np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2).astype(np.float32)
    mel_fb, chroma_fb = _filterbanks()
    logmel = _db(mel_fb @ power)
    mfcc = scipy.fft.dct(logmel, axis=0, type=2, norm="ortho")[:N_MFCC]
    onset = librosa.onset.onset_strength(S=logmel, sr=METRIC_SR, hop_length=HOP)
    energy_db = _db(power.sum(axis=0))
    floor = 10 ** (POWER_FLOOR_DB / 10)
    flatness_db = _db(np.exp(np.log(power + floor).mean(axis=0)) / (power.mean(axis=0) + floor))
    contrast = librosa.feature.spectral_contrast(S=np.sqrt(power), sr=METRIC_SR, n_fft=N_FFT, hop_length=HOP)
    active = (energy_db >= energy_db.max() - TOP_DB) & (energy_db > POWER_FLOOR_DB + 1e-3)
    silent = int(active.sum()) == 0
    if active.sum() < 2:
        active = np.ones_like(active)
    return ClipFeatures(y, logmel, mfcc, chroma_fb @ power, onset, energy_db, flatness_db, contrast, active, silent)


Audio = Union[np.ndarray, ClipFeatures]
"""A waveform ``(samples,)`` or its :class:`ClipFeatures`."""

_CACHE: OrderedDict[str, ClipFeatures] = OrderedDict()


def _digest(audio: np.ndarray, sr: int) -> str:
    y = np.ascontiguousarray(audio, dtype=np.float32)
    return hashlib.sha1(y.tobytes() + f"|{sr}|{y.shape}".encode()).hexdigest()


def cached_features(x: Audio, sr: int) -> ClipFeatures:
    """Features of an input clip (content, true target, reference clip), computed once per process.

    Parameters
    ----------
    x : np.ndarray or ClipFeatures
        Waveform ``(samples,)`` at ``sr`` (keyed by a hash of its samples), or features (returned as they are).
    sr : int
        Sample rate of a waveform, Hz.

    Returns
    -------
    ClipFeatures
        The same object for the same samples while it stays among the last :data:`CACHE_SIZE` clips, so that
        derived values (the content's pitch track, onsets) are computed once.
    """
    if isinstance(x, ClipFeatures):
        return x
    key = _digest(x, sr)
    hit = _CACHE.get(key)
    if hit is None:
        hit = _CACHE[key] = clip_features(x, sr)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return hit


def features(x: Audio, sr: int) -> ClipFeatures:
    """Features of an output clip (computed afresh: outputs change between evaluations)."""
    return x if isinstance(x, ClipFeatures) else clip_features(x, sr)

