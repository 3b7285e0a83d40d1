"""The numerical core of ``shallow_cnn``: features, the random shallow CNN and the style-transfer loss.

Everything here works on batches of (content, style) pairs and on any device. Shapes: a waveform batch is
``(B, samples)``; a feature batch ``(B, C, T)`` (channels × frames: 1025 STFT bins, 128 mel bands or 40 MFCCs);
network features ``(B, N, K)`` (N positions × K filters).

The loss is Ulyanov & Lebedev's (their ``neural-style-audio-tf`` notebook, which both reports started from)::

    L = alpha · Σ (A_x − A_c)²  +  Σ (A_xᵀA_x / N_x − A_sᵀA_s / N_s)²

summed over the pairs of the batch (the pairs do not interact: each output only enters its own terms). With a
style view (``style_octaves`` > 0, :func:`style_view`) the style term's A_x and A_s are the features of the
output's and the style's maps averaged over frequency, so the Gram statistics carry timbre but not pitch. The
style term needs no K × K Gram matrix when positions are fewer than filters (N < K, e.g. 420 frames × 4096
filters): with A (N_a × K) and B (N_b × K),
``‖AᵀA/N_a − BᵀB/N_b‖²_F = ‖AAᵀ‖²/N_a² − 2‖ABᵀ‖²/(N_a N_b) + ‖BBᵀ‖²/N_b²``
uses N × N products only (≈ 5 instead of ≈ 43 GFLOP for 10 s of audio), see :func:`style_loss_fast`.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from audiostyle import audio as A
from audiostyle.errors import AudiostyleError

N_MELS = 128
"""Mel bands of the ``"mel"`` features (report 004, docs/reports.md)."""
N_MFCC = 40
"""Coefficients of the ``"mfcc"`` features (report 004)."""
MAX_ELEMENTS = 2**28
"""Largest activation or weight tensor (elements, 1 GiB in float32) a config may need; larger ones are refused."""


# -- features ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSpec:
    """Which features the network sees and how to get back to audio.

    Attributes
    ----------
    kind : str
        ``"stft"``: ``log1p|STFT|`` (``n_fft // 2 + 1`` channels); ``"mel"``: ``log1p`` of a 128-band mel
        magnitude; ``"mfcc"``: 40 MFCCs of the mel power in dB (orthonormal DCT-II).
    sr : int
        Sample rate, Hz.
    n_fft, hop_length : int
        STFT size and hop, samples.
    """

    kind: str
    sr: int
    n_fft: int
    hop_length: int

    @property
    def channels(self) -> int:
        """Channels of the feature map: 1025, 128 or 40 (for ``n_fft`` 2048)."""
        return {"stft": self.n_fft // 2 + 1, "mel": N_MELS, "mfcc": N_MFCC}[self.kind]

    def frequencies(self) -> np.ndarray | None:
        """Centre frequencies of the channels, Hz, ``(channels,)`` ascending; None for ``mfcc`` (quefrencies)."""
        if self.kind == "stft":
            return np.fft.rfftfreq(self.n_fft, 1 / self.sr)
        if self.kind == "mel":
            import librosa

            return librosa.mel_frequencies(N_MELS + 2, fmax=self.sr / 2)[1:-1]
        return None


def check_style_view(spec: FeatureSpec, octaves: float) -> None:
    """Raise :class:`AudiostyleError` when a style view of ``octaves`` > 0 is asked of features without a
    frequency axis (``mfcc``)."""
    if octaves > 0 and spec.frequencies() is None:
        raise AudiostyleError(f"style_octaves={octaves} needs features with a frequency axis: use features='stft' "
                              f"or 'mel', or style_octaves=0 with {spec.kind!r}.")


def style_view(spec: FeatureSpec, octaves: float) -> np.ndarray | None:
    """What the style term sees of a feature map: None for the map itself (``octaves`` 0, the reports' loss),
    else the ``(C, C)`` float32 matrix that averages each frame over ``± octaves / 2`` around each channel.

    Averaged over an octave, a frame keeps its spectral envelope (the formants, the brightness, how they move)
    but not its partials: the Gram statistics of the style clip then carry its timbre without its pitches, which
    the content term alone decides (``benchmarks/results/style_view.md``).
    """
    check_style_view(spec, octaves)
    if octaves == 0:
        return None
    return A.octave_smoothing(spec.frequencies(), octaves).astype(np.float32)


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    import scipy.fft

    return scipy.fft.dct(np.eye(N_MELS), type=2, norm="ortho", axis=0)[:N_MFCC].astype(np.float32)


def _const(array: np.ndarray, like: Tensor) -> Tensor:
    return torch.from_numpy(array).to(like.device)


def features(y: Tensor, spec: FeatureSpec) -> Tensor:
    """Feature maps of a waveform batch.

    Parameters
    ----------
    y : Tensor
        ``(B, samples)`` float32, any device.
    spec : FeatureSpec

    Returns
    -------
    Tensor
        ``(B, spec.channels, frames)`` float32 on ``y``'s device, frames of a centred STFT.
    """
    mag = A.stft_torch(y, spec.n_fft, spec.hop_length).abs()
    if spec.kind == "stft":
        return torch.log1p(mag)
    basis = A.mel_filters(spec.sr, spec.n_fft, N_MELS)
    if spec.kind == "mel":
        return torch.log1p(_const(basis, mag) @ mag)
    power_db = 10 * torch.log10(torch.clamp(_const(basis, mag) @ mag**2, min=1e-10))
    return _const(_dct_matrix(), mag) @ power_db


def magnitude(x: Tensor, spec: FeatureSpec) -> Tensor:
    """The linear STFT magnitude ``(B, n_fft // 2 + 1, T)`` a feature batch ``(B, C, T)`` stands for.

    ``stft`` inverts exactly (``expm1``); ``mel`` and ``mfcc`` go back through the shared non-negative least
    squares of :func:`audiostyle.audio.mel_to_stft_torch` (the MFCC's lost high quefrencies stay lost). Always >= 0.
    """
    x = x.float()
    if spec.kind == "stft":
        return torch.clamp(torch.expm1(x), min=0)
    if spec.kind == "mel":
        return A.mel_to_stft_torch(torch.clamp(torch.expm1(x), min=0), spec.sr, spec.n_fft, power=1.0)
    power = 10 ** ((_const(_dct_matrix(), x).T @ x) / 10)
    return A.mel_to_stft_torch(power, spec.sr, spec.n_fft, power=2.0)


def to_audio(x: Tensor, spec: FeatureSpec, n_iter: int, length: int) -> Tensor:
    """Waveforms ``(B, length)`` of feature maps ``(B, C, T)`` by Griffin-Lim, on ``x``'s device.

    The whole batch goes through :func:`audiostyle.audio.griffin_lim_torch` at once, on the GPU or the CPU (on
    this 2-core CPU 0.4–0.7× librosa's time per clip: ``benchmarks/results/shallow_cnn.md``).
    """
    mag = magnitude(x.detach(), spec)
    return A.griffin_lim_torch(mag, spec.n_fft, spec.hop_length, n_iter=n_iter, length=length)


# -- the network ------------------------------------------------------------------------------------


_ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh, "selu": F.selu}


def positions(channels: int, frames: int, conv: str, width: int, layers: int, pooling: str = "none",
              pool_width: int = 2) -> int:
    """Positions N of the last of ``layers`` layers of :class:`RandomCNN` for a ``(channels, frames)`` input (0 when
    the input is too short): frames for ``conv="1d"``, bands × frames for ``"2d"`` (stride ``width`` over bands)."""
    f, t = (1, frames) if conv == "1d" else (channels, frames)
    for _ in range(layers):
        t = t - width + 1
        f = f if conv == "1d" else (f - width) // width + 1
        if pooling != "none":
            t //= pool_width
            f = f if conv == "1d" else f // pool_width
    return max(t, 0) * max(f, 0)


class RandomCNN(nn.Module):
    """1–2 convolution layers with random, frozen weights (no bias), an activation and optional pooling.

    ``conv="1d"``: the feature map is a 1 × T image with C channels (Ulyanov & Lebedev): each layer is a
    ``conv1d`` of ``width`` frames, positions = frames. ``conv="2d"``: a 1-channel C × T image, each layer a
    ``width × width`` ``conv2d`` with stride ``width`` along frequency (frequency bands) and 1 along time,
    positions = bands × frames. Pooling (``"max"``/``"avg"``, ``pool_width``) follows each activation, over
    time (1d) or both axes (2d).

    Weights are drawn from ``N(0, std²)`` with Ulyanov's ``std = sqrt(2) · sqrt(2 / ((C_in + K) · kernel size))``
    from a CPU generator seeded with ``seed``, so a config reproduces on any device.
    """

    def __init__(
        self,
        in_channels: int,
        filters: int,
        width: int,
        layers: int = 1,
        conv: str = "1d",
        activation: str = "tanh",
        pooling: str = "none",
        pool_width: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.conv, self.width, self.pooling, self.pool_width = conv, width, pooling, pool_width
        self.act = _ACTIVATIONS[activation]
        gen = torch.Generator().manual_seed(seed)
        ksize = width if conv == "1d" else width * width
        self.weights = nn.ParameterList()
        c_in = in_channels if conv == "1d" else 1
        for _ in range(layers):
            shape = (filters, c_in, width) if conv == "1d" else (filters, c_in, width, width)
            if math.prod(shape) > MAX_ELEMENTS:
                raise AudiostyleError(
                    f"a {conv} layer of {filters} filters of width {width} over {c_in} channels needs "
                    f"{math.prod(shape):,} weights (limit {MAX_ELEMENTS:,}): use fewer filters, a smaller width or conv='1d'."
                )
            std = math.sqrt(2.0) * math.sqrt(2.0 / ((c_in + filters) * ksize))
            self.weights.append(nn.Parameter(torch.randn(shape, generator=gen) * std, requires_grad=False))
            c_in = filters

    def load_weights_file(self, path: str | Path) -> None:
        """Replace the random weights by a user's trained ones: a ``torch.save``d state dict of this module.

        Raises :class:`AudiostyleError` when the file is missing, unreadable or of other shapes.
        """
        path = Path(path)
        if not path.is_file():
            raise AudiostyleError(
                f"weights_path={str(path)!r} does not exist: give the path of a feature-network weights file you "
                "have (audiostyle never downloads weights), or leave weights_path unset for random weights."
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError, AttributeError, EOFError, OSError, ValueError) as exc:
            want = {k: tuple(v.shape) for k, v in self.state_dict().items()}
            raise AudiostyleError(
                f"weights_path={str(path)!r} is not a state dict of this network ({exc}); expected the keys and "
                f"shapes {want} (torch.save(state_dict) of RandomCNN with the same config)."
            ) from exc
        for w in self.weights:
            w.requires_grad_(False)

    def positions(self, channels: int, frames: int) -> int:
        """Positions N of the last layer for a ``(channels, frames)`` input (0 when the input is too short)."""
        return positions(channels, frames, self.conv, self.width, len(self.weights), self.pooling, self.pool_width)

    def forward(self, x: Tensor) -> Tensor:
        """Features of the last layer: ``(B, C, T)`` → ``(B, N, K)``."""
        h = x if self.conv == "1d" else x[:, None]
        for w in self.weights:
            if self.conv == "1d":
                h = self.act(F.conv1d(h, w))
            else:
                h = self.act(F.conv2d(h, w, stride=(self.width, 1)))
            if self.pooling != "none":
                pool = {
                    ("1d", "max"): F.max_pool1d, ("1d", "avg"): F.avg_pool1d,
                    ("2d", "max"): F.max_pool2d, ("2d", "avg"): F.avg_pool2d,
                }[self.conv, self.pooling]
                h = pool(h, self.pool_width)
        return h.flatten(2).transpose(1, 2)


# -- the loss ---------------------------------------------------------------------------------------


def gram(a: Tensor) -> Tensor:
    """Normalised Gram matrices ``AᵀA / N`` of features ``(B, N, K)``: ``(B, K, K)``."""
    return a.transpose(1, 2) @ a / a.shape[1]


def style_loss_plain(a: Tensor, style_gram: Tensor) -> Tensor:
    """``Σ_b ‖AᵀA/N − G_s‖²_F`` with explicit K × K Gram matrices (the straightforward form).

    Parameters
    ----------
    a : Tensor
        Output features ``(B, N, K)``.
    style_gram : Tensor
        :func:`gram` of the style features, ``(B, K, K)``.

    Returns
    -------
    Tensor
        ``(B,)`` float32.
    """
    return (gram(a.float()) - style_gram).pow(2).sum(dim=(1, 2))


def style_loss_fast(a: Tensor, s: Tensor, s_term: Tensor) -> Tensor:
    """The same as :func:`style_loss_plain` through N × N products (exact; cheap when N < K).

    ``‖AAᵀ‖²/N_a² − 2‖ASᵀ‖²/(N_a N_s) + ‖SSᵀ‖²/N_s²``; the products run in float32, the three sums of squares
    accumulate in float64 (they nearly cancel near convergence).

    Parameters
    ----------
    a : Tensor
        Output features ``(B, N_a, K)``.
    s : Tensor
        Style features ``(B, N_s, K)``.
    s_term : Tensor
        :func:`style_self_term` of ``s``, ``(B,)`` float64.

    Returns
    -------
    Tensor
        ``(B,)`` float32.
    """
    a = a.float()
    na, ns = a.shape[1], s.shape[1]
    aa = (a @ a.transpose(1, 2)).double().pow(2).sum(dim=(1, 2)) / na**2
    as_ = (a @ s.transpose(1, 2)).double().pow(2).sum(dim=(1, 2)) / (na * ns)
    return (aa - 2 * as_ + s_term).float()


def style_self_term(s: Tensor) -> Tensor:
    """``‖SSᵀ‖²_F / N_s²`` of style features ``(B, N_s, K)`` (constant during the optimisation): ``(B,)`` float64."""
    s = s.float()
    return (s @ s.transpose(1, 2)).double().pow(2).sum(dim=(1, 2)) / s.shape[1] ** 2


class TransferLoss(nn.Module):
    """The loss of a batch of (content, style) pairs; content and style features are computed once, here.

    Parameters
    ----------
    net : RandomCNN
    content, style : Tensor
        Feature maps ``(B, C, T_c)`` and ``(B, C, T_s)``.
    alpha : float
        Weight of the content term.
    view : np.ndarray or None
        :func:`style_view`: the ``(C, C)`` matrix applied to each frame of the output and the style before the
        style term's network (twice the network's work per evaluation), or None for the feature maps themselves.
    fast : bool or None
        Use :func:`style_loss_fast`; None picks it when positions are fewer than filters.
    bf16 : bool
        Run the network (the convolutions) under bf16 autocast on CUDA; features, Gram terms and losses stay
        float32. Ignored on the CPU.
    """

    def __init__(
        self, net: RandomCNN, content: Tensor, style: Tensor, alpha: float, view: np.ndarray | None = None,
        fast: bool | None = None, bf16: bool = False,
    ) -> None:
        super().__init__()
        self.net, self.alpha = net, alpha
        self.view = None if view is None else _const(view, content)
        self.bf16 = bf16 and content.device.type == "cuda"
        with torch.no_grad():
            self.content_feats = self.features(content)
            style_feats = self.features(self.viewed(style))
        k = style_feats.shape[2]
        self.fast = max(self.content_feats.shape[1], style_feats.shape[1]) < k if fast is None else fast
        if self.fast:
            self.style_feats, self.style_term = style_feats, style_self_term(style_feats)
        else:
            self.style_gram = gram(style_feats)

    def features(self, x: Tensor) -> Tensor:
        """Network features ``(B, N, K)`` of feature maps ``(B, C, T)``, float32."""
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with ctx:
            return self.net(x).float()

    def viewed(self, x: Tensor) -> Tensor:
        """The feature maps ``(B, C, T)`` as the style term sees them."""
        return x if self.view is None else self.view @ x

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Content and style losses per pair, ``(B,)`` each, float32; the total is ``alpha · c + s`` summed."""
        a = self.features(x)
        content = (a - self.content_feats).pow(2).sum(dim=(1, 2))
        a = a if self.view is None else self.features(self.viewed(x))
        style = style_loss_fast(a, self.style_feats, self.style_term) if self.fast else style_loss_plain(a, self.style_gram)
        return content, style
