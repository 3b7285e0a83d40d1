"""``cyclegan``: unpaired instrument translation on magnitude spectrograms (report 001, docs/reports.md, Zhu et al. 2017).

Audio is resampled to ``sr`` (25 kHz in the report) and cut by an STFT with a Hann window of ``n_fft`` = 511
samples (256 frequency bins; hop 127, librosa's default for that window, which the report used). Only the
magnitude is translated: ``log1p(|S|)`` scaled to [-1, 1] by the largest magnitude a full-scale signal can reach
(``n_fft / 2``), so silence is -1 and no data statistics are needed at render time. The input's phase is put back
to invert (:func:`audiostyle.audio.istft_with_phase`).

Two ResNet generators ``G_xy``, ``G_yx`` and two PatchGAN discriminators ``D_x``, ``D_y``
(:mod:`audiostyle.methods.nets`) train on random ``(F, patch_frames)`` crops with the least-squares GAN loss:

- generators: ``λ_adv (adv_xy + adv_yx) + λ_fwd ‖G_yx(G_xy(x)) − x‖₁ + λ_bwd ‖G_xy(G_yx(y)) − y‖₁
  + λ_id (‖G_xy(y) − y‖₁ + ‖G_yx(x) − x‖₁)``; defaults 1, 10, 10, 4 (report; the paper's rule is 5);
- discriminators: ``d_scale · (LS(D(real), 1) + LS(D(pool(fake)), 0))`` with ``d_scale`` 0.5 and a history pool
  of 50 generated spectrograms; Adam lr 2e-4, β₁ 0.5, batch 2.

The step computes exactly the reference's losses and gradients (junyanz/pytorch-CycleGAN-and-pix2pix
``optimize_parameters``) with less memory and time: the generator loss is back-propagated in two pieces, one per
direction (``G_xy``'s adversarial, forward-cycle and identity terms, then ``G_yx``'s), each freeing its graph before
the next is built (the sum of the pieces' gradients is the gradient of the sum); each discriminator sees its real
and pooled fake batch in one forward (instance norm is per sample, so batching is exact); discriminator parameters
are frozen while the generators train; Adam is fused. Two departures compute the same function as the reference:
instance norm is ``GroupNorm(C, C)`` after convolutions without bias (the norm cancels a bias;
:mod:`audiostyle.methods.nets`), and tensors are contiguous NCHW on the CPU, channels-last on CUDA (the CPU's
channels-last instance norm is inaccurate, :func:`memory_format`). Translation and identity take separate
forwards: on AVX-512 CPUs two batch-2 convolutions are faster than one batch-4. ``amp="auto"`` trains in bf16 where
the hardware multiplies it natively (CUDA, AVX-512 BF16 or AMX CPUs), since bf16 reaches float32's losses and
metrics here (``benchmarks/results/amp_quality.md``), and long runs compile the networks (``compile``, see
:class:`~audiostyle.methods.trained.TrainConfig`); BENCHMARKS.md gives the step's time against the reference's.

Metrics (every report, on FIXED clips): the common columns of :mod:`audiostyle.metrics`, averaged over the two
directions (or those of the direction ``scored`` names, :class:`~audiostyle.methods.domain_pair.DomainPairConfig`),
the per-direction ``transfer_score_x2y`` / ``transfer_score_y2x``, and the report's mean relative forward-cycle loss
``‖G_yx(G_xy(x)) − x‖₁ / ‖x‖₁`` on log1p magnitudes per direction and split: ``cycle_rel_fwd_x_train``,
``cycle_rel_fwd_x_val``, ``cycle_rel_fwd_y_train``, ``cycle_rel_fwd_y_val`` (report after 27 h: piano 0.031/0.028,
guitar 0.010/0.010).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from audiostyle import audio as A
from audiostyle import metrics
from audiostyle.data.dataset import AudioDataset, Clip
from audiostyle.errors import AudiostyleError, check_range
from audiostyle.methods.examples import Example, write_examples
from audiostyle.metrics import HEADLINE_OBJECTIVE
from audiostyle.methods.nets import (
    ImagePool,
    PatchDiscriminator,
    ResnetGenerator,
    init_weights,
    lsgan_loss,
    set_requires_grad,
)
from audiostyle.methods.space import Choice, Float, Int, Space
from audiostyle.methods.domain_pair import DomainPairConfig, DomainPairMethod, mean_over_directions
from audiostyle.methods.spectrogram import StftFields, translate_spectrogram
from audiostyle.methods.trained import Amp, Parts

log = logging.getLogger(__name__)



@dataclass
class CycleGANConfig(DomainPairConfig, StftFields):
    """CycleGAN hyper-parameters; defaults from report 001 and the reference implementation.

    Attributes
    ----------
    steps : int
        Iterations (the report trained 27 h at 5–10 s an iteration, ≈ 15 000).
    batch_size : int
        Spectrogram patches per domain and step (2 in the report).
    lr : float
        Adam learning rate of generators and discriminators (2e-4).
    beta1 : float
        Adam β₁ (0.5).
    lambda_adv, lambda_fwd, lambda_bwd, lambda_id : float
        Weights of the adversarial, forward-cycle, backward-cycle and identity L1 terms (1, 10, 10, 4).
    d_scale : float
        Factor on the discriminator loss (0.5: discriminators learn slower than generators).
    pool_size : int
        Generated spectrograms kept for the discriminators (50; 0 = no pool).
    n_blocks : int
        Residual blocks per generator (9 in the reference at 256 × 256).
    ngf, ndf : int
        Filters of the first generator / discriminator layer (64 / 64).
    n_down : int
        Stride-2 downsamplings per generator (2 in the reference; the report adapted depth to the input size).
    d_layers : int
        Stride-2 layers of the PatchGAN (3: 70 × 70 receptive field).
    sr : int
        Sample rate audio is translated at, Hz (25 000).
    n_fft : int
        STFT window (Hann) and FFT size, samples; ``n_fft // 2 + 1`` bins (511 → 256).
    hop_length : int
        STFT hop, samples (127 = ``n_fft // 4``, librosa's default).
    patch_frames : int
        Width of a training patch, frames (256; height is the number of bins).
    domain_x, domain_y : str
        The two domains (report: IRMAS piano ↔ electric guitar; demo set: piano ↔ guitar).
    val_clips : int
        Clips of ``split`` per direction that the metrics use (the first ones by name: fixed). ``split``
        (``"val"``; ``"test"`` for a final table) and ``scored`` (``"both"`` directions, or ``"x2y"`` / ``"y2x"``)
        are inherited from :class:`~audiostyle.methods.domain_pair.DomainPairConfig`.
    channels_last : bool
        Channels-last memory format on CUDA (faster cuDNN convolutions). The CPU always uses NCHW: its
        channels-last instance norm is inaccurate (see :func:`memory_format`).
    silence_db : float or None
        Frames whose input level is below this (RMS, dBFS) leave the generators unchanged; frames
        :data:`GATE_WIDTH_DB` louder are fully translated, with a linear cross-fade between (:class:`GatedGenerator`:
        instance norm makes the generator blind to a patch's level, so it filled silence with sound). None: no
        gate, the reference's generator.
    """

    steps: int = 15_000
    batch_size: int = 2
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_adv: float = 1.0
    lambda_fwd: float = 10.0
    lambda_bwd: float = 10.0
    lambda_id: float = 4.0
    d_scale: float = 0.5
    pool_size: int = 50
    n_blocks: int = 9
    ngf: int = 64
    ndf: int = 64
    n_down: int = 2
    d_layers: int = 3
    sr: int = 25_000
    n_fft: int = 511
    hop_length: int = 127
    patch_frames: int = 256
    domain_x: str = "piano"
    domain_y: str = "guitar"
    val_clips: int = 4
    channels_last: bool = True
    silence_db: float | None = -60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("beta1", self.beta1, 0.0, 0.999)
        for name in ("lambda_adv", "lambda_fwd", "lambda_bwd", "lambda_id", "d_scale"):
            check_range(name, getattr(self, name), 0.0, 1e4)
        check_range("pool_size", self.pool_size, 0, 10_000)
        check_range("n_blocks", self.n_blocks, 0, 64)
        check_range("ngf", self.ngf, 1, 1024)
        check_range("ndf", self.ndf, 1, 1024)
        check_range("n_down", self.n_down, 0, 6)
        check_range("d_layers", self.d_layers, 1, 6)
        check_range("sr", self.sr, 1000, 192_000)
        self.check_stft()
        check_range("val_clips", self.val_clips, 1, 1000)
        if self.silence_db is not None:
            check_range("silence_db", self.silence_db, -140.0, 0.0, fix="Use e.g. -60, or none for no gate.")
        multiple = 2**self.n_down
        if self.n_bins % multiple or self.patch_frames % multiple:
            raise AudiostyleError(
                f"n_fft={self.n_fft} gives {self.n_bins} frequency bins and patch_frames={self.patch_frames}; "
                f"both must be divisible by 2**n_down={multiple}: pick n_fft = k·{multiple}·2 − 1 (e.g. 511) "
                f"and patch_frames a multiple of {multiple}, or lower n_down."
            )
        if self.domain_x == self.domain_y:
            raise AudiostyleError(f"domain_x and domain_y are both {self.domain_x!r}: pick two different domains.")

    @property
    def n_bins(self) -> int:
        """Frequency bins of the STFT, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1



# -- spectrogram features --------------------------------------------------------------------------
def _log_ceiling(config: CycleGANConfig) -> float:
    """``log1p`` of the largest STFT magnitude of a signal in [-1, 1] (sum of the Hann window ≈ n_fft / 2)."""
    return math.log1p(config.n_fft / 2)


def normalise(mag: np.ndarray, config: CycleGANConfig) -> np.ndarray:
    """Magnitude ``(F, T)`` → ``2 log1p(mag) / ceiling − 1`` in [-1, 1], float32 (silence is -1)."""
    return (2.0 * A.log_compress(mag) / _log_ceiling(config) - 1.0).astype(np.float32)


def denormalise(x: np.ndarray, config: CycleGANConfig) -> np.ndarray:
    """Inverse of :func:`normalise`: values in [-1, 1] → magnitude ``(F, T)``, float32."""
    return A.log_expand((np.asarray(x, np.float64) + 1.0) * 0.5 * _log_ceiling(config)).astype(np.float32)


def analyse(y: np.ndarray, config: CycleGANConfig) -> tuple[np.ndarray, np.ndarray]:
    """Waveform at ``config.sr`` → (normalised log-magnitude, phase), both ``(n_bins, frames)`` float32."""
    mag, phase = A.magphase(A.stft(y, config.stft))
    return normalise(mag, config), phase


GATE_WIDTH_DB = 10.0
"""Level range (dB) over which :class:`GatedGenerator` cross-fades from passing a frame to translating it."""


def frame_level_db(x: torch.Tensor, config: CycleGANConfig) -> torch.Tensor:
    """RMS level (dBFS, full scale = RMS 1) of each frame of normalised spectrograms ``x (B, 1, F, T)``.

    Returns ``(B, 1, 1, T)`` float32. By Parseval, a Hann-windowed frame of RMS ``r`` has
    ``Σ_k |S_k|² ≈ r² · n_fft · Σw² / 2`` over the one-sided bins, and ``Σw² = 3 n_fft / 8``. Digital silence reads
    -200 dBFS.
    """
    mag = torch.expm1((x.float() + 1.0) * (0.5 * _log_ceiling(config))).clamp_min(0.0)
    power = mag.square().sum(dim=-2, keepdim=True) * (2.0 / (0.375 * config.n_fft**2))
    return 10.0 * torch.log10(power + 1e-20)


class GatedGenerator(ResnetGenerator):
    """:class:`~audiostyle.methods.nets.ResnetGenerator` on normalised spectrograms that leaves silent frames alone.

    Why: instance norm rescales every channel of a patch to unit variance, so the generator cannot tell a
    near-silent patch from a loud one. A patch of -91 dBFS noise floor comes out as if it were playing, and a patch
    of digital silence (every activation normalised to 0) as ``tanh`` of the last layer's bias in every bin: trained
    generators filled the pauses and release tails of whole files with sound
    (``benchmarks/results/cyclegan_learning.md`` measures a pause with and without the gate).

    The output is ``lerp(x, G(x), g)`` with a per-frame gate ``g = clip((level(x) − silence_db) / GATE_WIDTH_DB, 0,
    1)`` (:func:`frame_level_db` of the input, no gradient): frames below ``silence_db`` pass unchanged, frames
    ``GATE_WIDTH_DB`` above it are the generator's. The gate has no parameters: checkpoints of the plain generator
    load. Input and output ``(B, 1, F, T)`` in [-1, 1]; the output is float32.
    """

    def __init__(self, config: CycleGANConfig) -> None:
        super().__init__(1, 1, config.ngf, config.n_blocks, config.n_down)
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        if self.config.silence_db is None:
            return out
        with torch.no_grad():
            gate = ((frame_level_db(x, self.config) - self.config.silence_db) / GATE_WIDTH_DB).clamp(0.0, 1.0)
        return torch.lerp(x.float(), out.float(), gate)  # exact at both ends: g = 0 returns x, g = 1 returns G(x)


# -- prepared data ----------------------------------------------------------------------------------
@dataclass
class ValClip:
    """A fixed evaluation clip: ``audio`` at ``config.sr`` ``(samples,)``, its normalised spectrogram and phase
    ``(F, T)``, and the true rendering in the other domain (paired data) or None."""

    name: str
    audio: np.ndarray
    spec: np.ndarray
    phase: np.ndarray
    target: np.ndarray | None


@dataclass
class CycleGANData:
    """What :meth:`CycleGAN.prepare` returns (picklable).

    Attributes
    ----------
    train : dict
        ``"x"``/``"y"`` → list of normalised log-magnitudes ``(F, T_i)`` with ``T_i ≥ patch_frames``.
    val : dict
        ``"x"``/``"y"`` → list of :class:`ValClip` (validation split; training clips when there is none).
    train_probe : dict
        ``"x"``/``"y"`` → ``(n, F, patch_frames)`` first patches of the first training clips (train-split cycle loss).
    reference : metrics.Reference
        The dataset's metrics reference.
    """

    train: dict[str, list[np.ndarray]]
    val: dict[str, list[ValClip]]
    train_probe: dict[str, np.ndarray]
    reference: metrics.Reference


def _pad_frames(x: np.ndarray, n: int) -> np.ndarray:
    """``x (F, T)`` padded with silence (-1) to at least ``n`` frames."""
    return np.pad(x, ((0, 0), (0, n - x.shape[1])), constant_values=-1.0) if x.shape[1] < n else x


def memory_format(config: CycleGANConfig, device: torch.device) -> torch.memory_format:
    """The networks' memory format: channels-last on CUDA when ``config.channels_last``, contiguous NCHW otherwise.

    On the CPU, PyTorch's channels-last ``GroupNorm`` kernel loses the variance to cancellation when a channel's
    mean dwarfs its spread (the error grows with mean / spread), as after the first convolution of a spectrogram
    whose silence is -1: on a channel of mean 10 and std 0.01 its float32 output is off by 10 (NCHW: 1e-4), a
    trained generator's output on a near-silent patch was off by 0.97, and bf16 turned NaN within a few steps. The
    NCHW kernel is accurate and, on the E2 CPU, no slower for a 256 × 256 step (``benchmarks/results/cyclegan.md``,
    ``amp_quality.md``); ``tests/test_cyclegan.py`` checks the CPU layout against float64.
    """
    if config.channels_last and device.type == "cuda":
        return torch.channels_last
    return torch.contiguous_format


# -- the method -------------------------------------------------------------------------------------
class CycleGAN(DomainPairMethod):
    """CycleGAN on log-magnitude spectrograms (see the module docstring)."""

    name = "cyclegan"
    Config = CycleGANConfig
    headline = HEADLINE_OBJECTIVE
    kind = "transfer"
    auto_amp = "bf16"  # trains as well as float32 in bf16, and faster (benchmarks/results/amp_quality.md)

    @classmethod
    def default_space(cls) -> Space:
        """Loss weights, lr, β₁, generator size, pool size, discriminator depth and patch width."""
        return {
            "lambda_adv": Float(0.1, 10.0, log=True),
            "lambda_fwd": Float(1.0, 30.0, log=True),
            "lambda_bwd": Float(1.0, 30.0, log=True),
            "lambda_id": Float(0.0, 10.0),
            "lr": Float(2e-5, 1e-3, log=True),
            "beta1": Choice((0.5, 0.9)),
            "n_blocks": Int(3, 9),
            "ngf": Choice((16, 32, 64)),
            "pool_size": Choice((0, 10, 50)),
            "d_layers": Choice((2, 3, 4)),
            "patch_frames": Choice((64, 128, 256)),
        }

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """``"cpu"``: a 3-block, 16-filter network on 64-frame patches that learns piano → violin on ``--data bench``
        within 15 minutes of training on 2 cores (``benchmarks/results/cyclegan_learning.md``)."""
        return {"cpu": {"n_blocks": 3, "ngf": 16, "ndf": 16, "d_layers": 2, "patch_frames": 64, "steps": 400,
                        "report_every": 100, "checkpoint_every": 200, "val_clips": 2}}

    @classmethod
    def best_known(cls) -> list[dict[str, Any]]:
        """The report's setting (1, 10, 10, 4; lr 2e-4; 9 blocks; pool 50) and the paper's identity rule (5)."""
        base = {"lambda_adv": 1.0, "lambda_fwd": 10.0, "lambda_bwd": 10.0, "lr": 2e-4, "beta1": 0.5,
                "n_blocks": 9, "ngf": 64, "pool_size": 50, "d_layers": 3, "patch_frames": 256}
        return [{**base, "lambda_id": 4.0}, {**base, "lambda_id": 5.0}]

    @classmethod
    def smoke_overrides(cls) -> dict[str, Any]:
        """The smoke sweep's network and data size (see :meth:`~audiostyle.methods.base.Method.smoke_overrides`)."""
        return {"report_every": 2, "checkpoint_every": 2, "n_blocks": 1, "ngf": 8, "ndf": 8, "d_layers": 2,
                "patch_frames": 32, "val_clips": 1}

    # -- data ---------------------------------------------------------------------------------------
    def prepare(self, dataset: AudioDataset, config: CycleGANConfig) -> CycleGANData:
        """Spectrograms of both domains at ``config.sr``, fixed validation clips and the metrics reference."""
        sides = {"x": config.domain_x, "y": config.domain_y}
        train: dict[str, list[np.ndarray]] = {}
        val: dict[str, list[ValClip]] = {}
        probe: dict[str, np.ndarray] = {}
        for side, domain in sides.items():
            other = sides["y" if side == "x" else "x"]
            clips = dataset.select(domain, "train") or dataset.select(domain)
            if not clips:
                raise AudiostyleError(f"cyclegan: domain {domain!r} has no clips in {dataset.source or 'the dataset'}.")
            specs = [_pad_frames(analyse(A.resample(c.audio, c.sr, config.sr), config)[0], config.patch_frames)
                     for c in clips]
            train[side] = specs
            probe[side] = np.stack([s[:, : config.patch_frames] for s in specs[: config.val_clips]])
            val[side] = [self._val_clip(dataset, c, other, config)
                         for c in self.scored_clips(dataset, config, domain, other, clips)]
        log.info("cyclegan: %d/%d training clips (%s/%s), %d validation clips per side",
                 len(train["x"]), len(train["y"]), config.domain_x, config.domain_y, len(val["x"]))
        return CycleGANData(train, val, probe, metrics.build_reference(dataset))

    @staticmethod
    def _val_clip(dataset: AudioDataset, clip: Clip, other: str, config: CycleGANConfig) -> ValClip:
        y = A.resample(clip.audio, clip.sr, config.sr)
        spec, phase = analyse(y, config)
        twin = dataset.counterpart(clip, other)
        target = A.fit_length(A.resample(twin.audio, twin.sr, config.sr), len(y)) if twin is not None else None
        return ValClip(clip.name, y, spec, phase, target)

    def sample(self, config: CycleGANConfig, data: CycleGANData, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """Random crops ``(B, 1, F, patch_frames)`` of random training clips of each domain."""
        out = []
        for side in ("x", "y"):
            specs = data.train[side]
            crops = []
            for i in rng.integers(0, len(specs), config.batch_size):
                s = specs[i]
                t = int(rng.integers(0, s.shape[1] - config.patch_frames + 1))
                crops.append(s[None, :, t : t + config.patch_frames])
            out.append(np.stack(crops))
        return tuple(out)

    # -- networks -------------------------------------------------------------------------------------
    def build(self, config: CycleGANConfig, data: CycleGANData | None, device: torch.device) -> Parts:
        """``G_xy``, ``G_yx`` (:class:`GatedGenerator`), ``D_x``, ``D_y`` (normal(0, 0.02) init), Adam for G and D,
        two image pools."""
        fmt = memory_format(config, device)

        def gen() -> nn.Module:
            return init_weights(GatedGenerator(config)).to(device=device, memory_format=fmt)

        def disc() -> nn.Module:
            return init_weights(PatchDiscriminator(1, config.ndf, config.d_layers)).to(device=device, memory_format=fmt)

        mods = {"G_xy": gen(), "G_yx": gen(), "D_x": disc(), "D_y": disc()}
        # fused Adam: one kernel per step, no full-size temporaries (same update as the reference's Adam)
        adam = dict(lr=config.lr, betas=(config.beta1, 0.999), fused=device.type in ("cpu", "cuda"))
        opt_g = torch.optim.Adam([*mods["G_xy"].parameters(), *mods["G_yx"].parameters()], **adam)
        opt_d = torch.optim.Adam([*mods["D_x"].parameters(), *mods["D_y"].parameters()], **adam)
        return Parts(
            modules=mods,
            optimizers={"G": opt_g, "D": opt_d},
            stateful={"pool_x": ImagePool(config.pool_size), "pool_y": ImagePool(config.pool_size)},
        )

    # -- training -------------------------------------------------------------------------------------
    def train_step(self, parts: Parts, batch: tuple[torch.Tensor, ...], step: int, amp: Amp) -> dict[str, Any]:
        """One reference step: generators (one back-propagated piece per direction), then both discriminators."""
        cfg: CycleGANConfig = parts.config
        m = parts.modules
        g_xy, g_yx, d_x, d_y = m["G_xy"], m["G_yx"], m["D_x"], m["D_y"]
        opt_g, opt_d = parts.optimizers["G"], parts.optimizers["D"]
        fmt = memory_format(cfg, batch[0].device)
        real_x, real_y = (t.contiguous(memory_format=fmt) for t in batch)

        set_requires_grad([d_x, d_y], False)
        opt_g.zero_grad(set_to_none=True)
        losses: dict[str, torch.Tensor] = {}
        fakes = {}
        for fwd, back, d_out, real, other, lam, names in (
            (g_xy, g_yx, d_y, real_x, real_y, cfg.lambda_fwd, ("g_adv_xy", "cycle_fwd", "idt_y")),
            (g_yx, g_xy, d_x, real_y, real_x, cfg.lambda_bwd, ("g_adv_yx", "cycle_bwd", "idt_x")),
        ):
            with amp.autocast():
                fake = fwd(real)
                adv = lsgan_loss(d_out(fake), True)
                cyc = (back(fake).float() - real).abs().mean()
                idt = (fwd(other).float() - other).abs().mean() if cfg.lambda_id > 0 else fake.new_zeros(())
            amp.backward(cfg.lambda_adv * adv + lam * cyc + cfg.lambda_id * idt)  # frees this direction's graph
            fakes[names[0]] = fake.detach()
            losses[names[0]], losses[names[1]], losses[names[2]] = adv.detach(), cyc.detach(), idt.detach()
        amp.step(opt_g)

        set_requires_grad([d_x, d_y], True)
        opt_d.zero_grad(set_to_none=True)
        d_total = 0.0
        for name, d, real, fake, pool in (
            ("d_y", d_y, real_y, fakes["g_adv_xy"], parts.stateful["pool_y"]),
            ("d_x", d_x, real_x, fakes["g_adv_yx"], parts.stateful["pool_x"]),
        ):
            both = torch.cat([real, pool.query(fake)]).contiguous(memory_format=fmt)
            with amp.autocast():
                pred = d(both)
            n = real.shape[0]
            loss = cfg.d_scale * (lsgan_loss(pred[:n], True) + lsgan_loss(pred[n:], False))
            d_total = d_total + loss
            losses[name] = loss.detach()
        amp.backward(d_total)
        amp.step(opt_d)
        return losses

    def discriminator_losses(self, config: CycleGANConfig) -> tuple[str, ...]:
        """Both least-squares discriminators' losses (floor 0)."""
        return ("d_x", "d_y")

    # -- evaluation -----------------------------------------------------------------------------------
    def evaluate(
        self, parts: Parts, config: CycleGANConfig, data: CycleGANData, device: torch.device
    ) -> dict[str, float]:
        """Common metrics of both directions on the fixed validation clips, plus relative forward-cycle losses."""
        m = parts.modules
        gens = {"x2y": m["G_xy"], "y2x": m["G_yx"]}
        per_direction = {}
        for direction, side, target in (("x2y", "x", config.domain_y), ("y2x", "y", config.domain_x)):
            clips = data.val[side]
            outputs = [self._translate(gens[direction], c.spec, c.phase, len(c.audio), config, device) for c in clips]
            targets = [c.target for c in clips]
            per_direction[direction] = metrics.evaluate(
                outputs, [c.audio for c in clips], config.sr, data.reference, target,
                true_targets=targets,
            )
        out = mean_over_directions(per_direction, config.scored)
        for side, (fwd, back) in (("x", (m["G_xy"], m["G_yx"])), ("y", (m["G_yx"], m["G_xy"]))):
            for split, specs in (("train", list(data.train_probe[side])), ("val", [c.spec for c in data.val[side]])):
                out[f"cycle_rel_fwd_{side}_{split}"] = self._cycle_rel(fwd, back, specs, config, device)
        return out

    @staticmethod
    def _cycle_rel(fwd: nn.Module, back: nn.Module, specs: list[np.ndarray], config: CycleGANConfig,
                   device: torch.device) -> float:
        """Mean over clips of ``‖back(fwd(x)) − x‖₁ / ‖x‖₁`` on log1p magnitudes (disjoint patches)."""
        ceiling = _log_ceiling(config)
        fmt = memory_format(config, device)
        rel = []
        for s in specs:
            patches = A.to_patches(s, size=config.patch_frames, hop=config.patch_frames, pad_value=-1.0)
            x = torch.from_numpy(patches)[:, None].to(device).contiguous(memory_format=fmt)
            r = back(fwd(x)).float()
            x, r = (x + 1.0) * (0.5 * ceiling), (r + 1.0) * (0.5 * ceiling)
            rel.append(float((r - x).abs().sum() / x.abs().sum().clamp_min(1e-12)))
        return float(np.mean(rel))

    @staticmethod
    def _translate(g: nn.Module, spec: np.ndarray, phase: np.ndarray, length: int, config: CycleGANConfig,
                   device: torch.device) -> np.ndarray:
        """Normalised spectrogram ``(F, T)`` + phase → translated waveform ``(length,)`` at ``config.sr``."""
        channels_last = memory_format(config, device) == torch.channels_last
        out = translate_spectrogram(g, spec, config.patch_frames, device, channels_last=channels_last, pad_value=-1.0)
        return A.istft_with_phase(denormalise(out, config), phase, config.stft, length=length)

    def write_artifacts(self, parts: Parts, config: CycleGANConfig, data: CycleGANData, out_dir: Path) -> None:
        """``x2y_*.wav`` and ``y2x_*.wav`` (content, output, true target on paired data) of the first validation
        clip of each side, and ``spectrogram.png`` (:mod:`audiostyle.methods.examples`)."""
        device = next(parts.modules["G_xy"].parameters()).device
        examples = []
        for direction, side, g in (("x2y", "x", parts.modules["G_xy"]), ("y2x", "y", parts.modules["G_yx"])):
            c = data.val[side][0]
            out = self._translate(g, c.spec, c.phase, len(c.audio), config, device)
            examples.append(Example.of(direction, out, content=c.audio, target=c.target, clips={"content": c.name}))
        write_examples(out_dir, examples, config.sr, f"{self.name}: {config.domain_x} ↔ {config.domain_y}")

    # -- inference ------------------------------------------------------------------------------------
    def translate(self, modules: Mapping[str, nn.Module], config: CycleGANConfig, y: np.ndarray,
                  direction: str) -> np.ndarray:
        """``y`` at ``config.sr`` through ``G_xy`` (``"x2y"``) or ``G_yx``: magnitude translated in overlapping,
        cross-faded patches (no seams), the input's phase reused."""
        g = modules["G_xy" if direction == "x2y" else "G_yx"]
        spec, phase = analyse(y, config)
        return self._translate(g, spec, phase, len(y), config, next(g.parameters()).device)
