"""A GAN that generates mel spectrograms (METHODS.md §4, report 002_*): ``spec_gan``.

The generator maps ``noise_dim``-d Gaussian noise through dense layers to a small ``(channels, h, w)`` map and
through transposed convolutions (each doubling both axes) to a log-mel spectrogram of the data's shape
``(n_mels, frames)``, scaled to [-1, 1]. The discriminator is a dense network on the flattened spectrogram
(real vs fake), as in the report.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SpecGenerator(nn.Module):
    """Noise → dense layers → transposed convs → a ``(batch, 1, n_mels, frames)`` spectrogram in [-1, 1].

    Parameters
    ----------
    shape : tuple of int
        ``(n_mels, frames)`` of the data.
    noise_dim : int
        Noise dimensions (the report: 1024).
    hidden : int
        Width of the dense hidden layer.
    channels : int
        Channels of the first (coarsest) feature map; halved at each transposed conv (at least 8).
    layers : int
        Transposed-conv layers, each ×2 on both axes; the output is cropped to ``shape``.
    """

    def __init__(
        self, shape: tuple[int, int], noise_dim: int = 1024, hidden: int = 512, channels: int = 128, layers: int = 4
    ) -> None:
        super().__init__()
        self.shape = shape
        self.noise_dim = noise_dim
        scale = 2**layers
        widths = [max(channels // 2**i, 8) for i in range(layers)] + [1]
        self.start = (widths[0], math.ceil(shape[0] / scale), math.ceil(shape[1] / scale))
        self.dense = nn.Sequential(
            nn.Linear(noise_dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, math.prod(self.start)),
            nn.LeakyReLU(0.2),
        )
        ups: list[nn.Module] = []
        for i in range(layers):
            ups.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, stride=2, padding=1))
            ups.append(nn.Tanh() if i == layers - 1 else nn.Sequential(nn.BatchNorm2d(widths[i + 1]), nn.ReLU()))
        self.convs = nn.Sequential(*ups)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        """``(batch, noise_dim)`` → ``(batch, 1, n_mels, frames)``."""
        h = self.dense(noise).view(noise.shape[0], *self.start)
        return self.convs(h)[..., : self.shape[0], : self.shape[1]]


class DenseDiscriminator(nn.Module):
    """A dense real-vs-fake critic on flattened spectrograms: ``(batch, 1, n_mels, frames)`` → ``(batch,)`` logits.

    Parameters
    ----------
    shape : tuple of int
        ``(n_mels, frames)``.
    hidden : int
        Width of the first hidden layer; each further layer halves it (at least 16).
    layers : int
        Hidden layers.
    """

    def __init__(self, shape: tuple[int, int], hidden: int = 512, layers: int = 2) -> None:
        super().__init__()
        widths = [math.prod(shape)] + [max(hidden // 2**i, 16) for i in range(layers)]
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Linear(widths[i], widths[i + 1]), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(nn.Flatten(), *blocks, nn.Linear(widths[-1], 1))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, n_mels, frames)`` → ``(batch,)`` real-vs-fake logits (or critic scores)."""
        return self.net(spec).squeeze(1)
