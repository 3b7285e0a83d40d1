"""The networks of the image-to-image methods, one place for all: cyclegan's, then segnet's and unet's.

CycleGAN's follow the CycleGAN reference (Zhu et al. 2017; junyanz/pytorch-CycleGAN-and-pix2pix):
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

SegNet's and U-Net's (report 000, docs/reports.md, :mod:`audiostyle.methods.segnet`): per domain an :class:`Encoder` (conv-BN-ReLU
blocks, max-pooling that keeps its indices) and a :class:`Decoder` (max-unpooling, or transposed convolutions and
skips), paired in :class:`AutoEncoders`, and the Wasserstein :class:`Critic` on their latent codes with its losses and
the gradient-reversal layer (:func:`grad_reverse`) between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn


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


# -- segnet / unet: encoder-decoders and their latent critic ---------------------------------------
SIDES = ("x", "y")
"""The two domains of :class:`AutoEncoders`: ``x`` = ``config.domain_x``, ``y`` = ``config.domain_y``."""


# -- gradient reversal -----------------------------------------------------------------------------
class GradReverse(torch.autograd.Function):
    """Identity forward; the backward pass multiplies the incoming gradient by ``-scale``.

    Put between the encoders and the critic, one backward pass trains the critic to *raise* its
    Wasserstein estimate while the encoders receive the reversed gradient and *lower* it (Ganin &
    Lempitsky 2015), which is the report's ``L_enc = L_recon - λ·L_disc``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, scale: float) -> Tensor:  # type: ignore[override]
        ctx.scale = float(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad.neg() * ctx.scale, None


def grad_reverse(x: Tensor, scale: float = 1.0) -> Tensor:
    """``x`` unchanged; gradients flowing back through it are multiplied by ``-scale``."""
    return GradReverse.apply(x, scale)


# -- SegNet / U-Net encoder-decoders ---------------------------------------------------------------
def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 3) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """A SegNet block: (3×3 conv - batch norm - ReLU) × 2, ``(B, c_in, H, W) -> (B, c_out, H, W)``."""
    return nn.Sequential(*_conv_bn_relu(c_in, c_out), *_conv_bn_relu(c_out, c_out))


@dataclass
class EncoderTrace:
    """What an encoder hands its decoder besides the latent code.

    Attributes
    ----------
    indices : list of Tensor
        Max-pool indices of every down-sampling stage, shallowest first, shapes ``(B, w_i, H/2^(i+1), W/2^(i+1))``.
    skips : list of Tensor
        The pre-pooling feature maps, shallowest first, ``(B, w_i, H/2^i, W/2^i)``; only the U-Net decoder uses them.
    """

    indices: list[Tensor]
    skips: list[Tensor]


class Encoder(nn.Module):
    """SegNet encoder: per stage a conv block then 2×2 max-pooling that keeps its indices.

    Parameters
    ----------
    widths : sequence of int
        Channels of each down-sampling stage; ``len(widths)`` stages divide H and W by ``2**len(widths)``.
    latent_channels : int
        Channels of the latent code (a linear 1×1 projection of the deepest stage).
    in_channels : int
        Input channels (1 for a spectrogram).

    ``forward(x)`` maps ``(B, in_channels, H, W)`` to the code ``(B, latent_channels, H/2^n, W/2^n)`` and an
    :class:`EncoderTrace`.
    """

    def __init__(self, widths: tuple[int, ...], latent_channels: int, in_channels: int = 1) -> None:
        super().__init__()
        chans = (in_channels, *widths)
        self.stages = nn.ModuleList(conv_block(chans[i], chans[i + 1]) for i in range(len(widths)))
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.to_latent = nn.Conv2d(widths[-1], latent_channels, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, EncoderTrace]:
        trace = EncoderTrace([], [])
        for stage in self.stages:
            x = stage(x)
            trace.skips.append(x)
            x, idx = self.pool(x)
            trace.indices.append(idx)
        return self.to_latent(x), trace


class Decoder(nn.Module):
    """The mirror of :class:`Encoder`.

    SegNet (``skips=False``, ``unpool=True``): every stage up-samples by max-unpooling with the encoder's indices
    of that stage (the values land where the encoder's maxima were, zeros elsewhere), then a conv block; nothing
    else passes from encoder to decoder. ``unpool=False`` up-samples with a learned 2×2 transposed convolution
    instead, so only the code passes. U-Net (``skips=True``): every stage up-samples with a learned 2×2
    transposed convolution and concatenates the encoder's pre-pooling features of that stage before its conv
    block. Same depth and widths in all three.

    ``forward(z, trace)`` maps ``(B, latent_channels, h, w)`` to ``(B, out_channels, h·2^n, w·2^n)`` (linear
    output, no squashing).
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        latent_channels: int,
        out_channels: int = 1,
        skips: bool = False,
        unpool: bool = True,
    ) -> None:
        super().__init__()
        self.use_skips = skips
        self.use_indices = unpool and not skips
        n = len(widths)
        self.from_latent = nn.Sequential(*_conv_bn_relu(latent_channels, widths[-1], kernel=1))
        self.up = nn.ModuleList(
            nn.MaxUnpool2d(2, 2) if self.use_indices else nn.ConvTranspose2d(widths[i], widths[i], 2, stride=2)
            for i in reversed(range(n))
        )
        self.stages = nn.ModuleList(
            conv_block(widths[i] * (2 if skips else 1), widths[max(i - 1, 0)]) for i in reversed(range(n))
        )
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, z: Tensor, trace: EncoderTrace) -> Tensor:
        x = self.from_latent(z)
        for up, stage, idx, skip in zip(self.up, self.stages, reversed(trace.indices), reversed(trace.skips)):
            if self.use_indices:
                x = up(x, idx, output_size=skip.shape[-2:])
            else:
                x = up(x)
                if self.use_skips:
                    x = torch.cat([x, skip], dim=1)
            x = stage(x)
        return self.head(x)


class Critic(nn.Module):
    """The Wasserstein critic: a small MLP on a latent code, no normalisation layers (WGAN-GP forbids them).

    The code ``(B, C, h, w)`` is average-pooled to at most ``grid × grid`` positions (so the MLP stays small
    whatever the latent resolution), flattened, and mapped to one score per example: Linear - LeakyReLU(0.2)
    - Linear - LeakyReLU(0.2) - Linear. Output ``(B,)``.
    """

    def __init__(self, latent_channels: int, latent_hw: tuple[int, int], hidden: int, grid: int = 8) -> None:
        super().__init__()
        self.grid = (min(grid, latent_hw[0]), min(grid, latent_hw[1]))
        d = latent_channels * self.grid[0] * self.grid[1]
        self.net = nn.Sequential(
            nn.Linear(d, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1)
        )

    def forward(self, z: Tensor) -> Tensor:
        if tuple(z.shape[-2:]) != self.grid:
            z = nn.functional.adaptive_avg_pool2d(z, self.grid)
        return self.net(z.flatten(1)).squeeze(1)


def wasserstein_estimate(critic: nn.Module, z_a: Tensor, z_b: Tensor) -> Tensor:
    """The critic's estimate of the Kantorovich dual ``E[D(z_a)] - E[D(z_b)]`` (report eq. 1), a scalar."""
    return critic(z_a).mean() - critic(z_b).mean()


def critic_loss(critic: nn.Module, z_a: Tensor, z_b: Tensor, lipschitz: str, gp_weight: float) -> tuple[Tensor, Tensor]:
    """What the critic minimises, ``L_disc = -W + gp_weight · GP`` (GP only when ``lipschitz == "gp"``), and ``W``.

    Gradients reach ``z_a``/``z_b`` only through ``-W`` (the penalty uses detached copies).
    """
    w = wasserstein_estimate(critic, z_a, z_b)
    loss = -w
    if lipschitz == "gp":
        loss = loss + gp_weight * gradient_penalty(critic, z_a, z_b)
    return loss, w


@torch.no_grad()
def clip_weights(critic: nn.Module, c: float) -> None:
    """Clamp every critic parameter into ``[-c, c]`` (the original WGAN's Lipschitz constraint)."""
    for p in critic.parameters():
        p.clamp_(-c, c)


def critic_update(
    critic: nn.Module,
    opt: torch.optim.Optimizer,
    z_a: Tensor,
    z_b: Tensor,
    lipschitz: str,
    gp_weight: float,
    clip: float,
) -> None:
    """One critic-only step on detached codes (then clipping when ``lipschitz == "clip"``)."""
    opt.zero_grad(set_to_none=True)
    loss, _ = critic_loss(critic, z_a.detach(), z_b.detach(), lipschitz, gp_weight)
    loss.backward()
    opt.step()
    if lipschitz == "clip":
        clip_weights(critic, clip)


class AutoEncoders(nn.Module):
    """The two domains' encoder-decoders: ``enc["x"]``, ``dec["x"]`` (``domain_x``) and ``enc["y"]``, ``dec["y"]``.

    ``shared_encoder=True`` puts one :class:`Encoder` under both keys (one set of weights and batch-norm
    statistics, one code space for both domains); each domain keeps its own decoder.
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        latent_channels: int,
        skips: bool,
        shared_encoder: bool = False,
        unpool: bool = True,
    ) -> None:
        super().__init__()
        self.shared_encoder = shared_encoder
        encoders = [Encoder(widths, latent_channels)] * len(SIDES) if shared_encoder else [
            Encoder(widths, latent_channels) for _ in SIDES]
        self.enc = nn.ModuleDict(dict(zip(SIDES, encoders)))
        self.dec = nn.ModuleDict({k: Decoder(widths, latent_channels, skips=skips, unpool=unpool) for k in SIDES})

    def encode(self, x: Mapping[str, Tensor]) -> dict[str, tuple[Tensor, EncoderTrace]]:
        """Both sides' batches ``{"x": (B, 1, F, T), "y": (B', 1, F, T)}`` through their encoders.

        A shared encoder encodes the two batches as one (its batch norm normalises both domains with the same
        statistics in training, as in evaluation), then splits the code and trace back per side.
        """
        if not self.shared_encoder:
            return {side: self.enc[side](x[side]) for side in SIDES}
        sizes = [len(x[side]) for side in SIDES]
        z, trace = self.enc["x"](torch.cat([x[side] for side in SIDES]))
        parts = [t.split(sizes) for t in (z, *trace.indices, *trace.skips)]
        n = len(trace.indices)
        return {
            side: (p[0], EncoderTrace(list(p[1 : 1 + n]), list(p[1 + n :])))
            for side, p in zip(SIDES, zip(*parts))
        }

    def transfer(self, x: Tensor, src: str, dst: str) -> Tensor:
        """Encode ``(B, 1, F, T)`` with ``src``'s encoder, decode with ``dst``'s decoder (same side: reconstruct)."""
        return self.dec[dst](*self.enc[src](x))
