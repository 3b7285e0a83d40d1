"""A GAN that generates mel spectrograms (report 002, docs/reports.md): ``spec_gan``.

The generator maps ``noise_dim``-d Gaussian noise through dense layers to a small ``(channels, h, w)`` map and
through transposed convolutions (each doubling both axes) to a log-mel spectrogram of the data's shape
``(n_mels, frames)``, scaled to [-1, 1]. The discriminator is a dense network on the flattened spectrogram
(real vs fake), as in the report. Losses: BCE (the report's; non-saturating for the generator), least squares, or
Wasserstein with gradient penalty. Samples are inverted to audio by NNLS mel inversion and Griffin-Lim
(:func:`audiostyle.audio.mel_to_audio`).

Data: :mod:`audiostyle.methods.generative` (one domain, 3150 Hz, 29 s clips in halves); each example becomes a
log-mel spectrogram (dB, ``n_fft`` 2048 and hop 256 as the report's 1025 × 179 STFT of a 14.5 s half at 3150 Hz;
128 mel bands by default), floored ``top_db`` below the training set's peak and scaled to [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from audiostyle import audio as A
from audiostyle.data.dataset import AudioDataset
from audiostyle.errors import AudiostyleError, check_choice, check_positive, check_range
from audiostyle.methods.generative import (
    EVAL_NOISE_SEED,
    ClipGeometry,
    DomainClips,
    DomainConfig,
    GenerativeMethod,
    fixed_noise,
    for_config,
    prepare_domain_clips,
    render_in_chunks,
    sample_metrics,
    stored_length,
)
from audiostyle.methods.nets import gradient_penalty
from audiostyle.methods.space import Choice, Float, Int, Space
from audiostyle.methods.spectrogram import StftFields, check_griffin_lim_iters
from audiostyle.methods.trained import Amp, Parts


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
        # Recorded in the checkpoint so that render() can rebuild and invert without the data:
        self.register_buffer("clip_length", torch.tensor(0))  # waveform samples per example
        self.register_buffer("db_max", torch.tensor(0.0))  # dB of the training set's loudest mel bin
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


# -- the method -------------------------------------------------------------------------------------
@dataclass
class SpecGANConfig(DomainConfig, StftFields):
    """``spec_gan``: defaults from report 002 (noise 1024, Adam, weight decay 1e-5, batch 10, ~100 epochs).

    Attributes
    ----------
    steps : int
        2000 = the report's 100 epochs of 200 halves (100 GTZAN clips) at batch 10.
    lr, lr_d : float
        Adam learning rates of the generator and the discriminator.
    beta1 : float
        Adam β₁ of both.
    weight_decay : float
        Adam weight decay of both (the report: 1e-5).
    noise_dim : int
        Generator input noise dimensions (the report: 1024).
    g_hidden, g_channels, g_layers : int
        Generator dense width, channels of its coarsest map, transposed-conv layers.
    d_hidden, d_layers : int
        Discriminator first hidden width (halved per layer) and hidden layers.
    loss : str
        ``"bce"`` (the report), ``"lsgan"`` (least squares) or ``"wgan_gp"`` (Wasserstein, gradient penalty).
    gp_weight : float
        Gradient-penalty weight of ``"wgan_gp"``.
    d_steps : int
        Discriminator updates per generator update (new noise each, same real batch).
    n_mels, n_fft, hop_length : int
        Mel spectrogram of each example (frames = 1 + samples // hop_length).
    top_db : float
        Dynamic range kept below the training set's peak, dB.
    griffin_lim_iters : int
        Griffin-Lim iterations when samples are turned into audio.
    """

    steps: int = 2000
    batch_size: int = 10
    lr: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    weight_decay: float = 1e-5
    report_every: int = 200
    checkpoint_every: int = 1000
    noise_dim: int = 1024
    g_hidden: int = 512
    g_channels: int = 128
    g_layers: int = 4
    d_hidden: int = 512
    d_layers: int = 2
    loss: str = "bce"
    gp_weight: float = 10.0
    d_steps: int = 1
    n_mels: int = 128
    n_fft: int = 2048
    hop_length: int = 256
    top_db: float = 80.0
    griffin_lim_iters: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("lr_d", self.lr_d, fix="Use a positive learning rate, e.g. 2e-4.")
        check_range("beta1", self.beta1, 0.0, 0.999)
        check_range("weight_decay", self.weight_decay, 0.0, 1.0)
        check_range("noise_dim", self.noise_dim, 1, 65_536)
        check_range("g_hidden", self.g_hidden, 1, 65_536)
        check_range("g_channels", self.g_channels, 1, 4096)
        check_range("g_layers", self.g_layers, 1, 8)
        check_range("d_hidden", self.d_hidden, 1, 65_536)
        check_range("d_layers", self.d_layers, 1, 8)
        check_choice("loss", self.loss, ("bce", "lsgan", "wgan_gp"))
        check_range("gp_weight", self.gp_weight, 0.0, 1e4)
        check_range("d_steps", self.d_steps, 1, 100)
        self.check_stft()
        check_range("n_mels", self.n_mels, 2, self.n_fft // 2 + 1, fix="Use at most n_fft // 2 + 1 mel bands.")
        check_range("top_db", self.top_db, 1.0, 200.0)
        check_griffin_lim_iters("griffin_lim_iters", self.griffin_lim_iters)



MEL_FIELDS = ("n_mels", "n_fft", "hop_length", "top_db")
"""Config fields the spectrograms depend on (beyond the clips' :data:`~audiostyle.methods.generative.DATA_FIELDS`)."""


@dataclass
class SpecGANData:
    """What :meth:`SpecGAN.prepare` returns (picklable).

    Attributes
    ----------
    clips : DomainClips
        The waveforms, the metrics reference and the real-clip baseline.
    specs : np.ndarray
        Training spectrograms scaled to [-1, 1], float32 ``(n, n_mels, frames)``.
    db_max : float
        The training set's loudest mel bin, dB (0 dB = power 1); the top of the [-1, 1] scale.
    key : dict
        The :data:`MEL_FIELDS` values the spectrograms were made with.
    """

    clips: DomainClips
    specs: np.ndarray
    db_max: float
    key: dict[str, Any]

    @property
    def length(self) -> int:
        """Waveform samples per example."""
        return self.clips.length


def _log_mel(y: np.ndarray, config: SpecGANConfig) -> np.ndarray:
    """Log-mel power of one waveform, dB, ``(n_mels, frames)``."""
    return 10.0 * np.log10(np.maximum(A.mel(y, config.sr, config.n_mels, config.stft), 1e-10))


def spectrograms(clips: DomainClips, config: SpecGANConfig) -> SpecGANData:
    """The clips' log-mel spectrograms, floored ``top_db`` below the training peak and scaled to [-1, 1]."""
    db = np.stack([_log_mel(y, config) for y in clips.train])
    db_max = float(db.max())
    specs = np.clip((db - db_max) / config.top_db * 2.0 + 1.0, -1.0, 1.0).astype(np.float32)
    return SpecGANData(clips, specs, db_max, {f: getattr(config, f) for f in MEL_FIELDS})


def frames_of(length: int, config: SpecGANConfig) -> int:
    """Spectrogram frames of a ``length``-sample example."""
    return config.stft.n_frames(length)


def _adv(logits: torch.Tensor, real: bool, loss: str) -> torch.Tensor:
    """Adversarial loss of discriminator outputs against the label ``real`` (BCE or least squares)."""
    if loss == "bce":
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        return nn.functional.binary_cross_entropy_with_logits(logits, target)
    return 0.5 * (logits - (1.0 if real else 0.0)).pow(2).mean()


class SpecGAN(GenerativeMethod):
    """``spec_gan``: a dense/transposed-conv generator of log-mel spectrograms and a dense discriminator.

    Reports the common generator metrics of ``eval_samples`` samples from fixed noise, inverted to audio
    (:func:`~audiostyle.methods.generative.sample_metrics`), plus ``diversity``: the mean pairwise L1 distance
    between generated spectrograms over that between real validation spectrograms (near 0 = mode collapse).
    Training losses appear as ``loss_g`` and ``loss_d``.
    """

    name = "spec_gan"
    Config = SpecGANConfig

    @classmethod
    def default_space(cls) -> Space:
        """Learning rates, β₁, network widths and depths, noise size, loss, discriminator steps and batch."""
        return {
            "lr": Float(2e-5, 1e-3, log=True),
            "lr_d": Float(2e-5, 1e-3, log=True),
            "beta1": Choice((0.0, 0.5, 0.9)),
            "noise_dim": Choice((128, 512, 1024)),
            "g_hidden": Choice((256, 512, 1024)),
            "g_channels": Choice((64, 128, 256)),
            "g_layers": Int(3, 5),
            "d_hidden": Choice((128, 256, 512, 1024)),
            "d_layers": Int(1, 3),
            "loss": Choice(("bce", "lsgan", "wgan_gp")),
            "d_steps": Choice((1, 2, 5)),
            "batch_size": Choice((5, 10, 20)),
        }

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """``"cpu"``: the report's loss and batch with 64 mel bands, a 128-d noise and narrower networks, 100 steps: on
        the bench set's violin its samples' ``fad`` is lowest there (0.72x the untrained generator's); by step 200 the
        generator collapses (diversity 0.31 to 0.04) and ``fad`` climbs back (``benchmarks/results/generators_learning.md``)."""
        return {"cpu": {"noise_dim": 128, "g_hidden": 256, "g_channels": 64, "d_hidden": 256, "n_mels": 64,
                        "griffin_lim_iters": 16, "steps": 100, "report_every": 50, "checkpoint_every": 100}}

    @classmethod
    def best_known(cls) -> list[dict[str, Any]]:
        """The report's setting: noise 1024, BCE, batch 10, weight decay 1e-5 (its lr is not given: 2e-4)."""
        return [{"noise_dim": 1024, "loss": "bce", "batch_size": 10, "lr": 2e-4, "lr_d": 2e-4, "beta1": 0.5,
                 "d_steps": 1}]

    @classmethod
    def smoke_overrides(cls) -> dict[str, Any]:
        """The smoke sweep's network and data size (see :meth:`~audiostyle.methods.base.Method.smoke_overrides`)."""
        return {"report_every": 2, "checkpoint_every": 2, "batch_size": 2, "eval_samples": 2, "clip_s": 3.0,
                "noise_dim": 32, "g_hidden": 32, "g_channels": 8, "d_hidden": 32, "n_mels": 32,
                "griffin_lim_iters": 4}

    # -- data -----------------------------------------------------------------------------------------
    def prepare(self, dataset: AudioDataset, config: SpecGANConfig) -> SpecGANData:
        """The domain's examples (:func:`~audiostyle.methods.generative.prepare_domain_clips`) as spectrograms."""
        return spectrograms(prepare_domain_clips(dataset, config), config)

    def adapt(self, data: SpecGANData, config: SpecGANConfig) -> SpecGANData:
        """Re-derive clips and spectrograms when the trial changed a data or mel field."""
        clips = for_config(data.clips, config)
        if clips is data.clips and data.key == {f: getattr(config, f) for f in MEL_FIELDS}:
            return data
        return spectrograms(clips, config)

    def sample(self, config: SpecGANConfig, data: SpecGANData, rng: np.random.Generator) -> np.ndarray:
        """``(batch, 1, n_mels, frames)`` real spectrograms drawn with replacement."""
        return data.specs[rng.integers(0, len(data.specs), config.batch_size)][:, None]

    # -- networks -------------------------------------------------------------------------------------
    def build(self, config: SpecGANConfig, data: SpecGANData | ClipGeometry | None, device: torch.device) -> Parts:
        """Generator ``G``, discriminator ``D`` and their Adam optimisers (weight decay ``config.weight_decay``)."""
        if data is None:
            raise AudiostyleError(f"{self.name}: build needs the data (or its ClipGeometry) for the example length.")
        shape = (config.n_mels, frames_of(data.length, config))
        gen = SpecGenerator(shape, config.noise_dim, config.g_hidden, config.g_channels, config.g_layers)
        gen.clip_length.fill_(data.length)
        if isinstance(data, SpecGANData):
            gen.db_max.fill_(data.db_max)
        disc = DenseDiscriminator(shape, config.d_hidden, config.d_layers)
        gen, disc = gen.to(device), disc.to(device)
        betas = (config.beta1, 0.999)
        return Parts(
            modules={"G": gen, "D": disc},
            optimizers={
                "G": torch.optim.Adam(gen.parameters(), lr=config.lr, betas=betas, weight_decay=config.weight_decay),
                "D": torch.optim.Adam(disc.parameters(), lr=config.lr_d, betas=betas,
                                      weight_decay=config.weight_decay),
            },
        )

    # -- training -------------------------------------------------------------------------------------
    def train_step(self, parts: Parts, real: torch.Tensor, step: int, amp: Amp) -> dict[str, Any]:
        """``d_steps`` discriminator updates, then one generator update."""
        cfg: SpecGANConfig = parts.config
        gen, disc = parts.modules["G"], parts.modules["D"]
        opt_g, opt_d = parts.optimizers["G"], parts.optimizers["D"]
        n = real.shape[0]
        for _ in range(cfg.d_steps):
            with torch.no_grad(), amp.autocast():
                fake = gen(torch.randn(n, cfg.noise_dim, device=real.device))
            opt_d.zero_grad(set_to_none=True)
            with amp.autocast():
                d_real, d_fake = disc(real).float(), disc(fake).float()
            if cfg.loss == "wgan_gp":
                loss_d = d_fake.mean() - d_real.mean() + cfg.gp_weight * gradient_penalty(disc, real, fake)
            else:
                loss_d = _adv(d_real, True, cfg.loss) + _adv(d_fake, False, cfg.loss)
            amp.backward(loss_d)
            amp.step(opt_d)
        for p in disc.parameters():
            p.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with amp.autocast():
            d_gen = disc(gen(torch.randn(n, cfg.noise_dim, device=real.device))).float()
        loss_g = -d_gen.mean() if cfg.loss == "wgan_gp" else _adv(d_gen, True, cfg.loss)
        amp.backward(loss_g)
        amp.step(opt_g)
        for p in disc.parameters():
            p.requires_grad_(True)
        return {"loss_g": loss_g.detach(), "loss_d": loss_d.detach()}

    def discriminator_losses(self, config: SpecGANConfig) -> tuple[str, ...]:
        """The discriminator's BCE or least-squares loss (floor 0); a Wasserstein critic's has none."""
        return () if config.loss == "wgan_gp" else ("loss_d",)

    # -- samples --------------------------------------------------------------------------------------
    @staticmethod
    def _spectrograms(gen: SpecGenerator, n: int, seed: int) -> np.ndarray:
        """``n`` generated spectrograms in [-1, 1], ``(n, n_mels, frames)``, from noise drawn with ``seed``."""
        device = next(gen.parameters()).device
        with torch.no_grad():
            return gen(fixed_noise(n, gen.noise_dim, device, seed))[:, 0].float().cpu().numpy()

    def generate(
        self, modules: Mapping[str, nn.Module], config: SpecGANConfig, n: int, seed: int = EVAL_NOISE_SEED
    ) -> np.ndarray:
        """``n`` spectrograms from noise, un-scaled to mel power and inverted (NNLS + Griffin-Lim) to waveforms."""
        gen = modules["G"]
        length, db_max = int(gen.clip_length), float(gen.db_max)
        x = self._spectrograms(gen, n, seed)
        power = 10.0 ** (((x + 1.0) / 2.0 * config.top_db + db_max - config.top_db) / 10.0)
        y = A.mel_to_audio(power, config.sr, config.stft, n_iter=config.griffin_lim_iters, length=length,
                           device=next(gen.parameters()).device)  # the whole batch in one call
        return np.nan_to_num(y).astype(np.float32)

    def evaluate(self, parts: Parts, config: SpecGANConfig, data: SpecGANData, device: torch.device) -> dict[str, float]:
        """Samples from fixed noise against the domain, and their spectrograms' diversity."""
        out = sample_metrics(list(self.generate(parts.modules, config, config.eval_samples)), data.clips)
        fake = self._spectrograms(parts.modules["G"], config.eval_samples, EVAL_NOISE_SEED)
        real = data.specs[: config.eval_samples]
        out["diversity"] = _pairwise_l1(fake) / max(_pairwise_l1(real), 1e-12)
        return out

    def render(
        self,
        config: SpecGANConfig,
        state: Mapping[str, Any] | None,
        audio: np.ndarray,
        sr: int,
        *,
        style: np.ndarray | None = None,
        device: str = "cpu",
    ) -> np.ndarray:
        """A new sample as long as ``audio`` (whose content is ignored), at ``sr``.

        Consecutive samples (noise seeded by ``config.seed``) are generated at ``config.sr``, concatenated to
        ``len(audio)`` samples' worth, and resampled to ``sr``; ``style`` is ignored.
        """
        geometry = stored_length(state, "G", self.name)
        modules = self.restore_modules(config, state, device, data=geometry)
        return render_in_chunks(audio, sr, config.sr, geometry.length,
                                lambda x: self.generate(modules, config, len(x), seed=config.seed))


def _pairwise_l1(x: np.ndarray) -> float:
    """Mean L1 distance between all pairs of ``x``'s rows (0 for fewer than two)."""
    flat = x.reshape(len(x), -1)
    if len(flat) < 2:
        return 0.0
    d = np.abs(flat[:, None] - flat[None]).mean(axis=2)
    return float(d.sum() / (len(flat) * (len(flat) - 1)))
