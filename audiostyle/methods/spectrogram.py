"""What the spectrogram methods share: their STFT fields, validated once, and applying a patch-to-patch network to a
spectrogram of any length.

The fields' rules are the widest any method had, so that every default, preset, search space and test config stays
valid: ``16 ≤ n_fft ≤ 65 536``, ``1 ≤ hop_length ≤ n_fft`` and ``0 ≤ griffin_lim_iters ≤ 10 000``. Segnet had
allowed a hop of at most ``n_fft // 2`` (Griffin-Lim inverts frames that overlap by half or more best), but a
cyclegan test trains with ``n_fft`` 127 and hop 64, so the one rule is ``n_fft``: the defaults overlap by at least
half. ``griffin_lim_iters=0`` (spec_gan's lowest; segnet and shallow_cnn had asked for 1) inverts with the random
initial phase alone.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from audiostyle import audio as A
from audiostyle.errors import check_range

GRIFFIN_LIM_MAX_ITERS = 10_000
"""Most Griffin-Lim iterations a config may ask for."""


class StftFields:
    """The STFT fields of a spectrogram method's config, with their one validation (a mixin of config dataclasses).

    Each config declares the two fields itself, with its method's defaults (so they keep their place among its
    fields), and calls :meth:`check_stft` from its ``__post_init__``.

    Attributes
    ----------
    n_fft : int
        FFT size and Hann window length, samples (``n_fft // 2 + 1`` frequency bins); 16 … 65 536.
    hop_length : int
        Hop between frames, samples; 1 … ``n_fft``.
    """

    n_fft: int
    hop_length: int

    def check_stft(self) -> None:
        """Raise :class:`~audiostyle.errors.AudiostyleError` for an ``n_fft`` or ``hop_length`` out of range."""
        check_range("n_fft", self.n_fft, 16, 65_536)
        check_range("hop_length", self.hop_length, 1, self.n_fft, fix="Use a hop of at most n_fft, e.g. n_fft // 4.")

    @property
    def stft(self) -> A.StftParams:
        """The STFT of this config's spectrograms."""
        return A.StftParams(n_fft=self.n_fft, hop_length=self.hop_length)


def check_griffin_lim_iters(name: str, value: int) -> None:
    """Raise :class:`~audiostyle.errors.AudiostyleError` unless ``0 ≤ value ≤`` :data:`GRIFFIN_LIM_MAX_ITERS` (a
    Griffin-Lim iteration count, field ``name``)."""
    check_range(name, value, 0, GRIFFIN_LIM_MAX_ITERS)


def translate_spectrogram(
    net: Callable[[torch.Tensor], torch.Tensor],
    spec: np.ndarray,
    patch_frames: int,
    device: str | torch.device = "cpu",
    *,
    channels_last: bool = False,
    pad_value: float = 0.0,
    batch: int = 8,
) -> np.ndarray:
    """Apply a patch-to-patch network to a spectrogram of any length, without seams.

    The spectrogram is cut into patches of ``patch_frames`` overlapping by half (:func:`audiostyle.audio.to_patches`),
    translated ``batch`` at a time under ``torch.no_grad()``, and stitched back with raised-cosine cross-fades
    (:func:`audiostyle.audio.from_patches`). A non-finite output raises ``FloatingPointError`` (the loop adds the
    step when this happens during evaluation).

    Parameters
    ----------
    net : callable
        ``(N, 1, F, patch_frames)`` tensor → same shape (e.g. a generator in eval mode).
    spec : np.ndarray
        ``(F, T)`` in the network's input scale.
    patch_frames : int
        Patch width the network was trained on, frames.
    device : str or torch.device
        Where the network lives.
    channels_last : bool
        Feed channels-last tensors.
    pad_value : float
        Fills the frames past the end of ``spec`` (the scale's silence).
    batch : int
        Patches per forward pass.

    Returns
    -------
    np.ndarray
        ``(F, T)`` float32.
    """
    hop = patch_frames // 2
    patches = A.to_patches(np.asarray(spec, dtype=np.float32), size=patch_frames, hop=hop, pad_value=pad_value)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    outs = []
    with torch.no_grad():
        for i in range(0, len(patches), batch):
            t = torch.from_numpy(np.ascontiguousarray(patches[i : i + batch]))[:, None].to(device)
            out = net(t.contiguous(memory_format=fmt)).float()
            if not bool(torch.isfinite(out).all()):
                raise FloatingPointError(
                    "the network's output became non-finite (nan/inf); lower lr or enable gradient clipping "
                    "(grad_clip=1.0)."
                )
            outs.append(out[:, 0].cpu().numpy())
    return A.from_patches(np.concatenate(outs), spec.shape[1], hop=hop)
