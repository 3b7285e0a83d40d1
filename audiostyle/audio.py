"""Audio front-end: loading, clips, features (STFT, mel, MFCC), inversion (phase reuse, Griffin-Lim), patches.

NumPy functions work on one mono clip; the ``*_torch`` functions work on batches and run on whatever device their
input tensor lives on (CPU or CUDA), so many outputs can be inverted in one call.

Shapes: a waveform is ``(samples,)`` float32; a spectrogram is ``(F, T)`` (frequency bins × frames); torch batches
add a leading ``B``.
"""

from __future__ import annotations

import io
import logging
import math
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from audiostyle.errors import AudiostyleError

if TYPE_CHECKING:  # torch is imported lazily: data loading does not need it
    import torch

log = logging.getLogger(__name__)

DEFAULT_SR = 22050
MEL_NNLS_ITERS = 128
"""Projected-gradient iterations of :func:`mel_to_stft_torch` (``benchmarks/results/mel_inversion.md``)."""
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".au", ".snd", ".aiff", ".aif", ".mp3", ".m4a")


# --------------------------------------------------------------------------------------------------- loading


class DecodeError(AudiostyleError):
    """No decoder could read an audio file; ``path`` names it and ``reason`` says what the decoders said."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(
            f"cannot decode audio file {path} ({reason}). Check that the file is a complete wav/flac/ogg/au "
            "(or mp3 with ffmpeg installed), or remove it."
        )


def _resample_mono(y: np.ndarray, sr_in: int, sr: int | None) -> np.ndarray:
    if y.ndim == 2:
        y = y.mean(axis=1)
    return resample(y, sr_in, sr or sr_in)


def _decode(src: str | io.BytesIO, suffix: str, sr: int | None, label: str) -> tuple[np.ndarray, int]:
    """soundfile first (fast, exact), then librosa (audioread/ffmpeg for formats soundfile lacks)."""
    import soundfile as sf

    try:
        y, sr_in = sf.read(src, dtype="float32", always_2d=True)
        return _resample_mono(y, sr_in, sr), sr or sr_in
    except Exception as sf_err:  # noqa: BLE001 - any decoder error: try the next decoder
        first = sf_err
    import librosa

    try:
        with warnings.catch_warnings():  # librosa warns that soundfile failed: we know, and report failures below
            warnings.simplefilter("ignore")
            if isinstance(src, io.BytesIO):  # audioread needs a real file
                with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
                    tmp.write(src.getvalue())
                    tmp.flush()
                    y, sr_out = librosa.load(tmp.name, sr=sr, mono=True)
            else:
                y, sr_out = librosa.load(src, sr=sr, mono=True)
    except Exception as lr_err:  # noqa: BLE001
        raise DecodeError(label, f"soundfile: {first}; librosa: {type(lr_err).__name__} {lr_err}".strip()) from lr_err
    return np.asarray(y, dtype=np.float32), int(sr_out)


def load(path_or_url: str | os.PathLike, sr: int | None = DEFAULT_SR) -> np.ndarray:
    """Decode an audio file to mono float32 at ``sr`` (:func:`load_with_rate` without the rate)."""
    return load_with_rate(path_or_url, sr)[0]


def load_with_rate(path_or_url: str | os.PathLike, sr: int | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file to mono float32 at ``sr``, and that rate.

    Parameters
    ----------
    path_or_url : str or PathLike
        Local path or ``s3://bucket/key`` (read through :mod:`audiostyle.fsio`).
    sr : int or None
        Target sample rate, Hz; None keeps the file's rate.

    Returns
    -------
    (np.ndarray, int)
        float32 audio of shape ``(samples,)`` and its sample rate in Hz.

    Raises
    ------
    AudiostyleError
        The file is missing or no decoder can read it (the message names the file).
    """
    label = str(path_or_url)
    suffix = Path(label).suffix
    from audiostyle import fsio

    if fsio.is_remote(label):
        try:
            with fsio.open(label, "rb") as f:
                data = io.BytesIO(f.read())
        except FileNotFoundError as e:
            raise AudiostyleError(f"audio file {label} does not exist. Check the URL.") from e
        return _decode(data, suffix, sr, label)
    if not os.path.isfile(label):
        raise AudiostyleError(f"audio file {label} does not exist. Check the path.")
    return _decode(label, suffix, sr, label)


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """``y (samples,)`` resampled from ``sr_in`` to ``sr_out`` Hz (librosa's default filter), float32."""
    if sr_in == sr_out:
        return np.asarray(y, dtype=np.float32)
    import librosa

    return librosa.resample(np.asarray(y, dtype=np.float32), orig_sr=sr_in, target_sr=sr_out).astype(np.float32)


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad ``y`` (``(samples,)``) at the end to exactly ``n`` samples."""
    if y.shape[-1] >= n:
        return y[..., :n]
    pad = [(0, 0)] * (y.ndim - 1) + [(0, n - y.shape[-1])]
    return np.pad(y, pad)


def split_clips(y: np.ndarray, sr: int, seconds: float, min_fraction: float = 0.5) -> list[np.ndarray]:
    """Cut ``y`` into consecutive clips of ``round(seconds * sr)`` samples.

    A tail (or a whole file) shorter than a clip is zero-padded when it holds at least ``min_fraction`` of a clip
    and dropped otherwise, so a file shorter than ``min_fraction * seconds`` gives ``[]``.

    Returns
    -------
    list of np.ndarray
        Each float32, shape ``(round(seconds * sr),)``.
    """
    n = int(round(seconds * sr))
    if n <= 0:
        raise AudiostyleError(f"clip length seconds={seconds} gives no samples at sr={sr}. Use seconds > 0.")
    clips = []
    for start in range(0, y.shape[-1], n):
        piece = y[start : start + n]
        if piece.shape[-1] < n:
            if piece.shape[-1] < min_fraction * n:
                break
            piece = fit_length(piece, n)
        clips.append(np.ascontiguousarray(piece, dtype=np.float32))
    return clips


# --------------------------------------------------------------------------------------------------- STFT


@dataclass(frozen=True)
class StftParams:
    """STFT parameters, recorded with every feature computed from them.

    Attributes
    ----------
    n_fft : int
        FFT size, samples; ``n_fft // 2 + 1`` frequency bins (511 → 256 bins, as in the CycleGAN report).
    hop_length : int
        Frame hop, samples (512 at 22.05 kHz: 256 frames ≈ 5.94 s).
    win_length : int or None
        Window length, samples; None = ``n_fft``.
    window : str
        Window name (scipy/librosa), e.g. ``"hann"``.
    """

    n_fft: int = 2048
    hop_length: int = 512
    win_length: int | None = None
    window: str = "hann"

    def __post_init__(self) -> None:
        if self.n_fft < 16 or self.hop_length < 1 or (self.win_length is not None and self.win_length > self.n_fft):
            raise AudiostyleError(
                f"bad STFT parameters {self}: need n_fft ≥ 16, hop_length ≥ 1, win_length ≤ n_fft."
            )

    @property
    def n_bins(self) -> int:
        """Frequency bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    def n_frames(self, samples: int) -> int:
        """Frames of a centred STFT of ``samples`` samples."""
        return 1 + samples // self.hop_length

    def as_dict(self) -> dict:
        """Plain dict, for cache keys and records."""
        return asdict(self)


def _kw(params: StftParams) -> dict:
    return dict(n_fft=params.n_fft, hop_length=params.hop_length, win_length=params.win_length, window=params.window)


def stft(y: np.ndarray, params: StftParams = StftParams()) -> np.ndarray:
    """Centred STFT (zero-padded edges, librosa convention).

    Returns
    -------
    np.ndarray
        complex64, shape ``(params.n_bins, params.n_frames(len(y)))``.
    """
    import librosa

    return librosa.stft(np.asarray(y, dtype=np.float32), center=True, **_kw(params))


def istft(S: np.ndarray, params: StftParams = StftParams(), length: int | None = None) -> np.ndarray:
    """Inverse of :func:`stft`: a complex spectrogram ``(F, T)`` back to a float32 waveform (``length`` samples:
    pass the input's to keep it)."""
    import librosa

    S = np.asarray(S, dtype=np.complex64)
    return librosa.istft(S, length=length, center=True, **_kw(params)).astype(np.float32)


def magphase(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a complex spectrogram into magnitude (float32) and phase angle (float32, radians), both ``(F, T)``."""
    return np.abs(S).astype(np.float32), np.angle(S).astype(np.float32)


def istft_with_phase(
    mag: np.ndarray, phase: np.ndarray, params: StftParams = StftParams(), length: int | None = None
) -> np.ndarray:
    """Phase reuse: invert a magnitude (e.g. a model's output) with the phase angle of another signal.

    Parameters
    ----------
    mag : np.ndarray
        Magnitude, ``(F, T)``.
    phase : np.ndarray
        Phase angle in radians, ``(F, T')``; frames are cropped or zero-padded to ``T``.
    length : int or None
        Output samples (pass the input's length to keep it).

    Returns
    -------
    np.ndarray
        float32 waveform ``(samples,)``.
    """
    return istft(mag * np.exp(1j * fit_length(phase, mag.shape[-1])), params, length)


def log_compress(x: np.ndarray) -> np.ndarray:
    """``log1p(x)``: magnitude → log-magnitude (the inverse is :func:`log_expand`)."""
    return np.log1p(x)


def log_expand(x: np.ndarray) -> np.ndarray:
    """``expm1(x)`` clipped at 0: log-magnitude → magnitude."""
    return np.maximum(np.expm1(x), 0)


def octave_smoothing(freqs: np.ndarray, octaves: float) -> np.ndarray:
    """The matrix that averages a spectrum over ``± octaves / 2`` around each of its channels.

    Parameters
    ----------
    freqs : np.ndarray
        ``(n,)`` ascending centre frequencies of the channels, Hz (STFT bins, mel bands).
    octaves : float
        Width of the window, octaves (``1/3``: third-octave smoothing).

    Returns
    -------
    np.ndarray
        ``(n, n)`` float64, each row a box average over the channels within the window (always its own; the
        0 Hz channel alone): ``smoothing @ spectrum`` smooths a ``(n,)`` spectrum or the columns of ``(n, T)``.
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    lo = np.searchsorted(freqs, freqs * 2 ** (-octaves / 2))
    hi = np.maximum(np.searchsorted(freqs, freqs * 2 ** (octaves / 2), side="right"), lo + 1)
    idx = np.arange(len(freqs))
    inside = (idx[None, :] >= lo[:, None]) & (idx[None, :] < hi[:, None])
    return inside / (hi - lo)[:, None]


EQ_SMOOTH_OCTAVES = 1 / 3
"""Smoothing (octaves) of the long-term spectra :func:`eq_match` divides."""
EQ_MAX_DB = 24.0
"""Most boost or cut (dB) of :func:`eq_match` in any bin, as a real equaliser's range: without it, bins where the
content has no energy were raised by up to 120 dB (the spectra's floors' ratio), amplifying rounding noise."""


def eq_match(content: np.ndarray, style: np.ndarray, sr: int, params: StftParams = StftParams()) -> np.ndarray:
    """The content equalised to the style clip's long-term spectrum: each bin scaled by the square root of the
    ratio of the two clips' mean power spectra, each smoothed over :data:`EQ_SMOOTH_OCTAVES`, the gain held within
    ± :data:`EQ_MAX_DB`; float32 ``(len(content),)``.

    The signal-processing baseline every transfer is judged against (the ``eq_match`` anchor of
    :mod:`audiostyle.calibrate`), and the shallow CNN's ``pre_eq``.
    """
    c, s = stft(content, params), stft(style, params)
    smoothing = octave_smoothing(np.fft.rfftfreq(params.n_fft, 1 / sr), EQ_SMOOTH_OCTAVES)
    ratio = (smoothing @ (np.abs(s) ** 2).mean(axis=1) + 1e-12) / (smoothing @ (np.abs(c) ** 2).mean(axis=1) + 1e-12)
    gain_db = np.clip(10 * np.log10(ratio), -EQ_MAX_DB, EQ_MAX_DB)
    equalised = c * (10 ** (gain_db / 20)).astype(np.float32)[:, None]
    return istft(equalised, params, len(content))


def spectral_convergence(mag: np.ndarray, y: np.ndarray, params: StftParams = StftParams()) -> float:
    """``‖mag − |STFT(y)|‖_F / ‖mag‖_F``: how well waveform ``y`` realises the target magnitude (0 = exactly)."""
    got = np.abs(stft(y, params))
    t = min(got.shape[1], mag.shape[1])
    return float(np.linalg.norm(mag[:, :t] - got[:, :t]) / max(np.linalg.norm(mag[:, :t]), 1e-12))


# --------------------------------------------------------------------------------------------------- mel, MFCC


def mel(y: np.ndarray, sr: int, n_mels: int = 128, params: StftParams = StftParams(), power: float = 2.0) -> np.ndarray:
    """Mel spectrogram (power 2 by default; apply :func:`log_compress` or dB yourself).

    Returns
    -------
    np.ndarray
        float32, shape ``(n_mels, params.n_frames(len(y)))``. Use ``n_fft ≥ 2048`` for 256 mel bands (smaller FFTs
        leave empty filters).
    """
    import librosa

    return librosa.feature.melspectrogram(
        y=np.asarray(y, dtype=np.float32), sr=sr, n_mels=n_mels, power=power, center=True, **_kw(params)
    ).astype(np.float32)


def mel_to_audio(
    M: np.ndarray, sr: int, params: StftParams = StftParams(), n_iter: int = 32, length: int | None = None,
    power: float = 2.0, seed: int = 0, device: "str | torch.device" = "cpu",
) -> np.ndarray:
    """Invert mel spectrograms from :func:`mel` with :func:`mel_to_audio_torch` (NNLS + Griffin-Lim) on ``device``.

    Parameters
    ----------
    M : np.ndarray
        Mel spectrogram ``(n_mels, T)`` or a batch ``(B, n_mels, T)`` (power ``power``, Slaney filters).
    params : StftParams
        The STFT the mel was computed with (Hann window only).
    n_iter : int
        Griffin-Lim iterations.
    device : str or torch.device
        Where the inversion runs (``"cuda"``: on the GPU; a batch is one call either way).

    Returns
    -------
    np.ndarray
        float32 ``(samples,)`` (``(B, samples)`` for a batch). Deterministic: the initial phase comes from ``seed``.
    """
    import torch

    if params.window != "hann":
        raise AudiostyleError(f"mel inversion supports the Hann window only, not {params.window!r}.")
    M = np.asarray(M, dtype=np.float32)
    single = M.ndim == 2
    y = mel_to_audio_torch(torch.from_numpy(M[None] if single else M).to(device), sr, params.n_fft,
                           params.hop_length, n_iter=n_iter, length=length, power=power, win_length=params.win_length,
                           seed=seed)
    out = y.cpu().numpy()
    return out[0] if single else out


def vocode(y: np.ndarray, sr: int, n_mels: int, params: StftParams, n_iter: int = 32, seed: int = 0) -> np.ndarray:
    """``y`` through a mel spectrogram and back (:func:`mel`, then :func:`mel_to_audio`): what a mel-domain method
    that reproduced its input perfectly would output (the mel's smearing of partials and Griffin-Lim's phase).

    Parameters
    ----------
    y : np.ndarray
        Waveform ``(samples,)`` at ``sr``.
    n_mels : int
        Mel bands.
    params : StftParams
        The mel's STFT (Hann window).
    n_iter : int
        Griffin-Lim iterations.
    seed : int
        Seed of Griffin-Lim's initial phase.

    Returns
    -------
    np.ndarray
        float32 ``(samples,)``, the length of ``y``.
    """
    return mel_to_audio(mel(y, sr, n_mels=n_mels, params=params), sr, params, n_iter=n_iter, length=len(y), seed=seed)


def mfcc(
    y: np.ndarray, sr: int, n_mfcc: int = 40, n_mels: int = 128, params: StftParams = StftParams()
) -> np.ndarray:
    """MFCCs of the log-power mel spectrogram (DCT-II, ortho); float32 ``(n_mfcc, T)``."""
    import librosa

    return librosa.feature.mfcc(
        y=np.asarray(y, dtype=np.float32), sr=sr, n_mfcc=n_mfcc, n_mels=n_mels, center=True, **_kw(params)
    ).astype(np.float32)


# --------------------------------------------------------------------------------------------------- patches


def _patch_starts(n_frames: int, size: int, hop: int) -> list[int]:
    n = 1 if n_frames <= size else 1 + math.ceil((n_frames - size) / hop)
    return [i * hop for i in range(n)]


def to_patches(S: np.ndarray, size: int = 256, hop: int | None = None, pad_value: float = 0.0) -> np.ndarray:
    """Cut a spectrogram into fixed-width patches along time.

    Parameters
    ----------
    S : np.ndarray
        ``(F, T)``.
    size : int
        Patch width, frames (256 frames ≈ 6 s at 22.05 kHz, hop 512).
    hop : int or None
        Step between patch starts, frames; None = ``size // 2`` (overlapping, so :func:`from_patches` cross-fades).
        Pass ``hop=size`` for disjoint patches.
    pad_value : float
        Fills frames past the end of ``S`` (0 = silence for magnitudes and log1p magnitudes).

    Returns
    -------
    np.ndarray
        ``(N, F, size)`` with ``N = 1 + ceil((T - size) / hop)`` (1 when ``T ≤ size``).
    """
    hop = size // 2 if hop is None else hop
    if not 1 <= hop <= size:
        raise AudiostyleError(f"patch hop={hop} must be in 1…size={size}.")
    starts = _patch_starts(S.shape[-1], size, hop)
    total = starts[-1] + size
    padded = np.pad(S, ((0, 0), (0, total - S.shape[-1])), constant_values=pad_value) if total > S.shape[-1] else S
    return np.stack([padded[:, s : s + size] for s in starts])


def crossfade_window(size: int, hop: int) -> np.ndarray:
    """Weights ``(size,)`` for overlap-add: raised-cosine ramps over the ``size - hop`` overlap, flat in the middle.

    Strictly positive, so the normalised sum of :func:`from_patches` is defined everywhere.
    """
    w = np.ones(size, dtype=np.float64)
    ov = min(size - hop, size // 2)
    if ov > 0:
        ramp = np.sin(0.5 * np.pi * (np.arange(ov) + 0.5) / ov) ** 2
        w[:ov] = ramp
        w[size - ov :] = ramp[::-1]
    return w


def from_patches(patches: np.ndarray, n_frames: int, hop: int | None = None) -> np.ndarray:
    """Stitch patches from :func:`to_patches` back into one spectrogram, cross-fading the overlaps (no seams).

    Parameters
    ----------
    patches : np.ndarray
        ``(N, F, size)``.
    n_frames : int
        Frames of the result (the original ``T``).
    hop : int or None
        The hop used by :func:`to_patches` (None = ``size // 2``).

    Returns
    -------
    np.ndarray
        ``(F, n_frames)``, float32; equals the original where the patches are unchanged.
    """
    n, f, size = patches.shape
    hop = size // 2 if hop is None else hop
    w = crossfade_window(size, hop)
    total = (n - 1) * hop + size
    acc = np.zeros((f, total))
    norm = np.zeros(total)
    for i in range(n):
        acc[:, i * hop : i * hop + size] += patches[i] * w
        norm[i * hop : i * hop + size] += w
    return (acc / norm)[:, :n_frames].astype(np.float32)


# --------------------------------------------------------------------------------------------------- torch, batched


def _window_torch(n_fft: int, win_length: int | None, ref: "torch.Tensor") -> "torch.Tensor":
    import torch

    return torch.hann_window(win_length or n_fft, periodic=True, dtype=torch.float32, device=ref.device)


def stft_torch(
    y: "torch.Tensor", n_fft: int, hop_length: int, win_length: int | None = None, window: "torch.Tensor | None" = None
) -> "torch.Tensor":
    """Batched centred Hann STFT matching :func:`stft` (zero padding, like librosa ≥ 0.10).

    Parameters
    ----------
    y : Tensor
        ``(B, samples)`` or ``(samples,)``, any device.

    Returns
    -------
    Tensor
        complex64 ``(B, n_fft // 2 + 1, frames)`` (no batch dim for 1-D input), on ``y``'s device.
    """
    import torch

    return torch.stft(
        y.float(), n_fft=n_fft, hop_length=hop_length, win_length=win_length,
        window=_window_torch(n_fft, win_length, y) if window is None else window,
        center=True, pad_mode="constant", return_complex=True,
    )


def istft_torch(
    S: "torch.Tensor", n_fft: int, hop_length: int, win_length: int | None = None, length: int | None = None,
    window: "torch.Tensor | None" = None,
) -> "torch.Tensor":
    """Inverse of :func:`stft_torch`: complex ``(B, F, T)`` → ``(B, samples)`` on the same device.

    ``window`` (Hann of ``win_length or n_fft`` samples on ``S``'s device) may be passed to skip re-creating it.
    """
    import torch

    return torch.istft(
        S, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
        window=_window_torch(n_fft, win_length, S) if window is None else window,
        center=True, length=length,
    )


def _fit_frames(S: "torch.Tensor", n: int) -> "torch.Tensor":
    import torch

    if S.shape[-1] >= n:
        return S[..., :n]
    return torch.nn.functional.pad(S, (0, n - S.shape[-1]))


def griffin_lim_torch(
    mag: "torch.Tensor",
    n_fft: int,
    hop_length: int,
    n_iter: int = 32,
    length: int | None = None,
    momentum: float = 0.99,
    win_length: int | None = None,
    seed: int = 0,
) -> "torch.Tensor":
    """Batched fast Griffin-Lim (Perraudin et al. 2013, librosa's update rule), on ``mag``'s device.

    Parameters
    ----------
    mag : Tensor
        Magnitudes ``(B, F, T)`` (or ``(F, T)``), ``F = n_fft // 2 + 1``; CUDA tensors run on the GPU.
    n_iter : int
        Iterations (each one inverse + one forward STFT of the whole batch).
    length : int or None
        Output samples.
    momentum : float
        Fast Griffin-Lim momentum (0 = classic Griffin-Lim).
    seed : int
        Seed of the random initial phase (drawn on the CPU, so CPU and CUDA start alike).

    Returns
    -------
    Tensor
        float32 ``(B, samples)`` (``(samples,)`` for 2-D input), no grad.
    """
    import torch

    squeeze = mag.dim() == 2
    with torch.no_grad():
        mag = (mag[None] if squeeze else mag).float()
        if mag.shape[-2] != n_fft // 2 + 1:
            raise AudiostyleError(
                f"magnitude has {mag.shape[-2]} frequency bins but n_fft={n_fft} gives {n_fft // 2 + 1}: "
                "pass the n_fft the magnitude was computed with."
            )
        gen = torch.Generator().manual_seed(seed)
        angles = torch.polar(torch.ones(mag.shape), 2 * math.pi * torch.rand(mag.shape, generator=gen)).to(mag.device)
        rebuilt = torch.zeros_like(angles)
        alpha = momentum / (1 + momentum)
        window = _window_torch(n_fft, win_length, mag)
        for _ in range(n_iter):
            prev = rebuilt
            inverse = istft_torch(mag * angles, n_fft, hop_length, win_length, length, window)
            rebuilt = _fit_frames(stft_torch(inverse, n_fft, hop_length, win_length, window), mag.shape[-1])
            angles = rebuilt - alpha * prev
            angles *= angles.abs().add_(1e-16).reciprocal_()  # real scale: cheaper than a complex division
        y = istft_torch(mag * angles, n_fft, hop_length, win_length, length, window)
    return y[0] if squeeze else y


@lru_cache(maxsize=8)
def _mel_inverse_constants(sr: int, n_fft: int, n_mels: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Mel filters ``(n_mels, n_bins)`` (librosa's Slaney bank, as :func:`mel` uses), their pseudo-inverse
    ``(n_bins, n_mels)`` and ``1 / ‖filters‖₂²`` (the projected-gradient step of :func:`mel_to_stft_torch`)."""
    import librosa

    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float64)
    step = 1.0 / float(np.linalg.norm(basis, 2) ** 2)
    return basis.astype(np.float32), np.linalg.pinv(basis).astype(np.float32), step


def mel_filters(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """The mel filter bank of :func:`mel`: float32 ``(n_mels, n_fft // 2 + 1)``; rows weight STFT bins."""
    return _mel_inverse_constants(sr, n_fft, n_mels)[0]


def mel_to_stft_torch(
    M: "torch.Tensor", sr: int, n_fft: int, power: float = 2.0, n_iter: int = MEL_NNLS_ITERS
) -> "torch.Tensor":
    """Batched non-negative least squares from mel to a linear STFT magnitude, on ``M``'s device.

    Solves ``min_{X ≥ 0} ‖B X − M‖²`` per frame (``B`` the mel filters), librosa's ``mel_to_stft`` problem, by
    accelerated projected gradient (FISTA, step ``1 / ‖B‖₂²``) started from the clipped pseudo-inverse
    ``max(B⁺ M, 0)``; then ``X ** (1 / power)``.

    Parameters
    ----------
    M : Tensor
        Mel spectrograms ``(B, n_mels, T)`` or ``(n_mels, T)``, power ``power`` (2 = power, 1 = magnitude), ≥ 0.
    sr : int
        Sample rate of the mel, Hz.
    n_fft : int
        FFT size of the mel, samples.
    n_iter : int
        Projected-gradient iterations (0 = the clipped pseudo-inverse alone).

    Returns
    -------
    Tensor
        float32 magnitudes ``(B, n_fft // 2 + 1, T)`` (no batch dim for 2-D input), ≥ 0, no grad.
    """
    import torch

    basis_np, pinv_np, step = _mel_inverse_constants(sr, n_fft, M.shape[-2])
    with torch.no_grad():
        frames = M.float().transpose(-1, -2)  # (…, T, n_mels): every frame of the batch is one row of one GEMM
        rows = frames.reshape(-1, frames.shape[-1])
        basis, pinv = torch.from_numpy(basis_np).to(M.device), torch.from_numpy(pinv_np).to(M.device)
        x = torch.clamp(rows @ pinv.T, min=0)
        y, t = x, 1.0
        for _ in range(n_iter):
            x_next = torch.clamp(y - step * ((y @ basis.T - rows) @ basis), min=0)
            t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            y = x_next + ((t - 1.0) / t_next) * (x_next - x)
            x, t = x_next, t_next
        mag = x if power == 1.0 else x.pow(1.0 / power)
        return mag.reshape(*frames.shape[:-1], -1).transpose(-1, -2)


def mel_to_audio_torch(
    M: "torch.Tensor",
    sr: int,
    n_fft: int,
    hop_length: int,
    n_iter: int = 32,
    length: int | None = None,
    power: float = 2.0,
    win_length: int | None = None,
    seed: int = 0,
    nnls_iter: int = MEL_NNLS_ITERS,
) -> "torch.Tensor":
    """Batched mel inversion on ``M``'s device: :func:`mel_to_stft_torch`, then :func:`griffin_lim_torch`.

    The torch counterpart of ``librosa.feature.inverse.mel_to_audio`` (the same NNLS problem and Griffin-Lim
    update), for a whole batch at once on the CPU or the GPU; ``benchmarks/bench_mel_inversion.py`` compares the two.

    Parameters
    ----------
    M : Tensor
        Mel spectrograms ``(B, n_mels, T)`` (or ``(n_mels, T)``) of power ``power`` from a centred Hann STFT.
    n_fft, hop_length, win_length : int
        The STFT the mel was computed with, samples.
    n_iter : int
        Griffin-Lim iterations.
    length : int or None
        Output samples.
    seed : int
        Seed of Griffin-Lim's random initial phase.
    nnls_iter : int
        Projected-gradient iterations of :func:`mel_to_stft_torch`.

    Returns
    -------
    Tensor
        float32 waveforms ``(B, samples)`` (``(samples,)`` for 2-D input), no grad.
    """
    mag = mel_to_stft_torch(M, sr, n_fft, power, nnls_iter)
    return griffin_lim_torch(mag, n_fft, hop_length, n_iter=n_iter, length=length, win_length=win_length, seed=seed)
