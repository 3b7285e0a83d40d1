"""Sanity-ladder helpers of ``segnet``/``unet``: two synthetic spectrogram domains with a known correspondence.

Both domains play the same melodies (one note per time segment, its fundamental on a mel row) on the [0, 1]
normalised log-mel scale of :func:`audiostyle.methods.segnet.normalise_mel`; they differ only in timbre:
``"x"`` (piano-like) has a strong fundamental, weak overtones and notes that decay, ``"y"`` (violin-like) a weak
fundamental, strong overtones and sustained notes. ``render(melodies, side)`` of the same melodies in both sides
is a true transfer pair, so a transfer can be scored against its true target and against the input's melody.
"""

from __future__ import annotations

import numpy as np
import torch

TIMBRES = {"x": ((1.0, 0.35, 0.15), 0.6), "y": ((0.35, 0.9, 0.7), 0.0)}
"""Per side: overtone amplitudes (fundamental first) and the decay over a note (0 = sustained)."""
OVERTONE_ROWS = (0, 6, 10)
"""Rows above the fundamental of each overtone (mel rows squeeze harmonics together)."""
NOTE_FRAMES = 8
FLOOR = 0.3
"""Level of the bins between the partials (the normalised scale's 0 is 80 dB below the peak: real mels sit above it)."""


def melodies(n: int, rows: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random melodies: the fundamental's row of every frame, ``(n, frames)`` int, one note per
    :data:`NOTE_FRAMES` frames, rows ``[1, rows - 1 - max(OVERTONE_ROWS))``."""
    notes = rng.integers(1, rows - 1 - max(OVERTONE_ROWS), (n, -(-frames // NOTE_FRAMES)))
    return np.repeat(notes, NOTE_FRAMES, axis=1)[:, :frames]


def render(melody: np.ndarray, side: str) -> torch.Tensor:
    """Melodies ``(n, T)`` played in domain ``side``: patches ``(n, 1, rows, T)`` float32 in [0, 1], 32 rows."""
    amps, decay = TIMBRES[side]
    n, frames = melody.shape
    out = np.full((n, 1, 32, frames), FLOOR, dtype=np.float32)
    envelope = 1.0 - decay * (np.arange(frames) % NOTE_FRAMES) / NOTE_FRAMES
    for k, amp in zip(OVERTONE_ROWS, amps):
        for spread, weight in ((-1, 0.5), (1, 0.5), (0, 1.0)):  # each partial leaks into its neighbour rows
            rows = melody + k + spread
            cols = np.arange(frames)[None, :]
            cell = out[np.arange(n)[:, None], 0, rows, cols]
            out[np.arange(n)[:, None], 0, rows, cols] = np.maximum(cell, FLOOR + (1 - FLOOR) * weight * amp * envelope)
    return torch.from_numpy(out)


def melody_retrieval(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of ``outputs (n, 1, rows, T)`` nearer (mean absolute difference) to their own melody's true target
    ``targets[i]`` than to every other melody's: 1 = each transfer keeps its melody, ``1/n`` = chance."""
    dist = (outputs[:, None] - targets[None]).abs().flatten(2).mean(2)  # (n outputs, n targets)
    return float((dist.argmin(dim=1) == torch.arange(len(outputs))).float().mean())
