"""Reference inversions the package does not use: librosa's Griffin-Lim and MFCC inversion.

The package inverts with :func:`audiostyle.audio.griffin_lim_torch` and :func:`audiostyle.audio.mel_to_audio`;
these are the baselines ``tests/test_audio.py`` checks and ``benchmarks/bench_data.py`` and
``benchmarks/bench_shallow_cnn.py`` time them against.
"""

from __future__ import annotations

import librosa
import numpy as np

from audiostyle.audio import StftParams, mel_to_audio


def griffin_lim(
    mag: np.ndarray,
    params: StftParams = StftParams(),
    n_iter: int = 32,
    length: int | None = None,
    momentum: float = 0.99,
    seed: int = 0,
) -> np.ndarray:
    """Fast Griffin-Lim (librosa) from a magnitude ``(F, T)``; random initial phase drawn from ``seed``.

    Returns
    -------
    np.ndarray
        float32 waveform ``(samples,)``.
    """
    return librosa.griffinlim(
        np.asarray(mag, dtype=np.float32), n_iter=n_iter, length=length, momentum=momentum, random_state=seed,
        center=True, n_fft=params.n_fft, hop_length=params.hop_length, win_length=params.win_length,
        window=params.window,
    ).astype(np.float32)


def mfcc_to_audio(
    M: np.ndarray, sr: int, n_mels: int = 128, params: StftParams = StftParams(), n_iter: int = 32,
    length: int | None = None, seed: int = 0,
) -> np.ndarray:
    """Invert MFCCs from :func:`audiostyle.audio.mfcc` (inverse DCT → mel → :func:`audiostyle.audio.mel_to_audio`);
    float32 ``(samples,)``."""
    mel_power = librosa.feature.inverse.mfcc_to_mel(np.asarray(M, dtype=np.float32), n_mels=n_mels)
    return mel_to_audio(mel_power, sr, params, n_iter=n_iter, length=length, seed=seed)
