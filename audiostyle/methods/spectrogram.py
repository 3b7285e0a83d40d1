"""What the spectrogram methods share: applying a patch-to-patch network to a spectrogram of any length."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from audiostyle import audio as A


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
