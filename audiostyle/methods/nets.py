"""Building blocks shared by the image-to-image methods (cyclegan; reusable by segnet and spec_gan).

The networks follow the CycleGAN reference (Zhu et al. 2017; junyanz/pytorch-CycleGAN-and-pix2pix):
a ResNet generator (7×7 stem, stride-2 encoder, residual blocks, transposed-conv decoder, no skips,
reflection padding, instance norm, tanh output), a PatchGAN discriminator (4×4 convs, LeakyReLU 0.2,
instance norm), normal(0, 0.02) init, least-squares GAN loss and the history pool of generated images
(Shrivastava et al. 2017). Tensors are ``(batch, channels, height, width)``; for spectrograms height is
frequency bins and width is frames.

Instance norm is computed as ``GroupNorm(C, C, affine=False)``: the same function as
``InstanceNorm2d(C)`` (one group per channel, per sample, eps 1e-5), and its NCHW CPU kernel is 2× faster (2.5 ms
against 5.3 ms forward and backward at 256 channels, 64 × 64, ``benchmarks/results/cyclegan.md``). Its CPU
channels-last kernel is inaccurate, so cyclegan keeps NCHW there (``audiostyle/methods/cyclegan.py``).

A convolution followed by an instance norm has no bias (the reference gives it one). The norm subtracts each
channel's mean, so such a bias cancels exactly and its true gradient is zero; what it receives is rounding noise.
Adam divides a gradient by its own running size, so that noise moves the bias by about ``lr`` per step. In float32
the noise sits below Adam's eps and the bias barely moves; under bf16 autocast it was 1000–15000× larger (cyclegan,
one step, ``benchmarks/results/amp_quality.md``), enough for the biases to random-walk, and a drifting offset leaves
fewer of bf16's 8 mantissa bits for the signal. The networks compute the same function either way, and checkpoints
that hold such biases still load (:func:`drop_cancelled_biases`).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn


def instance_norm(channels: int) -> nn.Module:
    """Instance normalisation without affine parameters or running statistics (per sample, per channel)."""
    return nn.GroupNorm(channels, channels, eps=1e-5, affine=False)


def drop_cancelled_biases(module: nn.Module, state_dict: dict, prefix: str, *args: Any) -> None:
    """``load_state_dict`` pre-hook: drop the biases a checkpoint holds for convolutions that have none here.

    They are the biases ahead of an instance norm, which cancels them (module docstring), so the loaded network
    computes what the saved one did.
    """
    for name, m in module.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is None:
            state_dict.pop(f"{prefix}{name}.bias" if name else f"{prefix}bias", None)


class ResnetBlock(nn.Module):
    """``x + conv-norm-relu-conv-norm(x)`` with reflection padding; shape preserved."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            instance_norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            instance_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """Image-to-image generator: stride-2 encoder, residual bottleneck, transposed-conv decoder, no skips.

    Parameters
    ----------
    in_ch, out_ch : int
        Input and output channels (1 for a magnitude spectrogram).
    ngf : int
        Filters of the first layer; doubled at every downsampling.
    n_blocks : int
        Residual blocks at the bottleneck (9 in the reference for 256 × 256, 6 for 128 × 128).
    n_down : int
        Stride-2 downsamplings (and upsamplings); height and width must be divisible by ``2**n_down``.

    Input ``(B, in_ch, H, W)`` → output ``(B, out_ch, H, W)`` in [-1, 1].
    """

    def __init__(self, in_ch: int = 1, out_ch: int = 1, ngf: int = 64, n_blocks: int = 9, n_down: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, ngf, 7, bias=False),
            instance_norm(ngf),
            nn.ReLU(inplace=True),
        ]
        ch = ngf
        for _ in range(n_down):
            layers += [
                nn.Conv2d(ch, ch * 2, 3, stride=2, padding=1, bias=False),
                instance_norm(ch * 2),
                nn.ReLU(inplace=True),
            ]
            ch *= 2
        layers += [ResnetBlock(ch) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, stride=2, padding=1, output_padding=1, bias=False),
                instance_norm(ch // 2),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_ch, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.register_load_state_dict_pre_hook(drop_cancelled_biases)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (70 × 70 receptive field with ``n_layers=3``): one score per patch.

    Input ``(B, in_ch, H, W)`` → scores ``(B, 1, H', W')`` (unbounded; least-squares loss).
    """

    def __init__(self, in_ch: int = 1, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=False),
                instance_norm(ndf * mult),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)
        self.register_load_state_dict_pre_hook(drop_cancelled_biases)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """The reference's ``normal`` init: conv weights ~ N(0, gain), biases 0 (draws from torch's RNG)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def lsgan_loss(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: mean of ``(pred - 1)²`` for real targets, ``pred²`` for fake (float32)."""
    pred = pred.float()
    return (pred - 1.0).square().mean() if real else pred.square().mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP penalty ``mean((‖∇D(x̂)‖₂ − 1)²)`` at random interpolates ``x̂`` of detached ``real`` and ``fake``.

    ``real`` and ``fake`` have the same shape ``(B, ...)``; returns a float32 scalar. The critic runs eagerly here
    even when it is compiled: the penalty back-propagates through a gradient (double backward), which compiled
    graphs do not support.
    """
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)
    mix = (eps * real.detach().float() + (1 - eps) * fake.detach().float()).requires_grad_(True)
    with torch.compiler.set_stance("force_eager"):
        (grad,) = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    """Switch parameter gradients of ``nets`` on or off (off: frozen while another network trains)."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class ImagePool:
    """History buffer of generated images for the discriminator (Shrivastava et al. 2017).

    Until ``size`` images are stored, every query stores and returns its images. Afterwards each image
    is, with probability 1/2, swapped with a random stored one (the stored one is returned), else
    returned as is. Randomness comes from torch's global CPU generator (checkpointed by the training
    loop), so runs and resumes are deterministic. ``size=0`` disables the pool.

    Parameters
    ----------
    size : int
        Number of stored images (50 in the reference).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Images for the discriminator, shape of ``images`` ``(B, C, H, W)``; inputs are detached."""
        images = images.detach()
        if self.size == 0:
            return images
        if self.images and self.images[0].device != images.device:
            self.images = [im.to(images.device) for im in self.images]
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            draw = torch.rand(2)
            if draw[0] > 0.5:
                idx = int(draw[1] * self.size) % self.size
                out.append(self.images[idx])
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        """``{"images": (n, C, H, W) tensor or None}``."""
        return {"images": torch.stack(self.images) if self.images else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the stored images (moved to the queries' device on the next query)."""
        imgs = state["images"]
        self.images = [] if imgs is None else list(imgs)


__all__ = [
    "ImagePool",
    "PatchDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "drop_cancelled_biases",
    "gradient_penalty",
    "init_weights",
    "instance_norm",
    "lsgan_loss",
    "set_requires_grad",
]
