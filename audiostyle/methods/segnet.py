"""``segnet`` and ``unet``: two autoencoders with a shared, critic-aligned latent space (report 000, docs/reports.md).

One encoder and one decoder per domain (sides ``x`` = ``config.domain_x`` and ``y`` = ``config.domain_y``), trained
like two independent autoencoders plus one extra objective: a Wasserstein critic on the two encoders' latent codes,
trained through a gradient-reversal layer, pushes the codes of both domains towards one distribution.

Networks
    :class:`~audiostyle.methods.nets.Encoder`: ``n_down`` SegNet stages (3×3 conv-BN-ReLU ×2, 2×2 max-pool keeping its indices), widths
    ``base_channels · 2^i`` capped at ``max_channels``, then a linear 1×1 projection to ``latent_channels``: a
    ``(1, n_mels, patch_frames)`` patch becomes a ``(latent_channels, n_mels/2^n_down, patch_frames/2^n_down)``
    code. :class:`~audiostyle.methods.nets.Decoder` mirrors it. ``segnet``: the decoder up-samples by max-unpooling with the max-pool
    indices of the encoder whose code it decodes; no feature maps pass from encoder to decoder. ``unet``: the
    same depth and widths, learned 2×2 transposed-conv up-sampling and skip connections (concatenation) from the
    encoder's pre-pooling features. For a transfer x→y, y's decoder gets x's code *and* x's max-pool indices
    (``segnet``) or x's skip features (``unet``): the only paths there are. The skips carry the input almost
    unchanged, so ``unet`` reconstructs nearly perfectly but transfers nearly the identity (the report's finding;
    visible in the metrics as low ``recon_*`` with ``target_prob`` no better than ``target_prob_input``).
    ``shared_encoder=True`` uses one encoder for both domains: the report's two encoders, aligned only in
    distribution by the critic, give the other decoder codes it reads as no melody at all (issue 28).
:class:`~audiostyle.methods.nets.Critic`
    A small MLP on the (average-pooled to ≤ 8×8) code, no normalisation layers, kept K-Lipschitz by a gradient
    penalty (``lipschitz="gp"``, WGAN-GP, ``gp_weight`` 10) or weight clipping (``"clip"``, ``clip_value`` 0.01).

Losses (the report's section 6)
    ``L_recon = (1/B) Σ_b Σ_ij |X − X̂|`` (per-example pixel sum, batch mean, as the report writes it; ``"l2"``
    squares the error instead), summed over both autoencoders. ``L_disc = −W + gp_weight·GP`` with
    ``W = E[D(z_x)] − E[D(z_y)]`` (report eq. 1); the codes reach the critic through :func:`~audiostyle.methods.nets.grad_reverse`, so one
    backward pass of ``L_recon + L_disc`` trains the critic to minimise ``L_disc`` while the encoders get
    ``L_enc = L_recon − λ·L_disc`` (``λ = critic_weight``) and the decoders ``L_dec = L_recon``. Because the
    reconstruction is a pixel *sum*, ``λ`` is relative to patch area: the report's ``λ = 1`` at 256×256 equals
    ``1/65536`` on a per-pixel mean. ``critic_steps > 1`` adds critic-only updates on fresh batches (encoders
    frozen) before each joint step. Adam for both: autoencoders ``lr`` (report silent: Adam's default 1e-3),
    critic ``critic_lr`` 1e-4 with betas (0.5, 0.9) (WGAN-GP practice).

Inputs and normalisation
    Audio at ``sr`` 22.05 kHz, mel power spectrogram with 256 bands (``n_fft`` 2048, hop 512: 256 frames ≈ 5.9 s),
    cut into 256×256 patches (training: random crops; inference: half-overlapping patches cross-faded back by
    :func:`audiostyle.methods.spectrogram.translate_spectrogram`, so clips of any length work). Each clip is
    normalised on its own: ``x = clip(1 + (dB − ref)/top_db, 0, 1)`` with ``dB = 10·log10(mel)``, ``ref`` the clip's
    loudest bin (at least ``−100 + top_db`` dB, so silence maps to 0) and ``top_db`` 80: 1 = the clip's peak, 0 = 80 dB
    below.
    ``recon_mse``/``recon_mae`` are per-pixel means on this [0, 1] scale over fixed validation patches of both
    domains. The report gives no normalisation for its table (SegNet MSE 0.07 / MAE 0.10, U-Net 0.01 / 0.06 "on
    normalised spectrograms"); a [0, 1] scale is the natural reading, so the numbers are comparable in kind but not
    to the digit: an MAE of 0.10 here is 8 dB.
Transfer (:meth:`SegNet.transfer`, :meth:`SegNet.render` = ``x2y``, and the validation metrics)
    The source side's encoder, the other side's decoder, de-normalised with the input's own ``ref``, inverted by
    :func:`audiostyle.audio.mel_to_audio` (batched torch NNLS to a linear magnitude, then ``griffin_lim_iters``
    Griffin-Lim iterations, on the model's device); output length = input length.

Metrics: the common columns of :mod:`audiostyle.metrics` for both directions (``x2y``, ``y2x``) on up to
``val_clips`` validation clips per side (``lsd_db`` against their renderings in the other domain when the data is
paired), averaged by :func:`audiostyle.methods.domain_pair.mean_over_directions` (or one direction's, ``scored``),
plus ``recon_mse``, ``recon_mae`` and ``target_prob_input`` (the classifier's probability of the other domain for
the untouched inputs: what a transfer that does nothing scores as ``target_prob``). Losses reported: ``loss_recon``,
``loss_critic`` (= ``L_disc``) and ``wasserstein`` (W).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from audiostyle import audio as A
from audiostyle import metrics
from audiostyle.data.dataset import AudioDataset
from audiostyle.errors import AudiostyleError, check_choice, check_positive, check_range
from audiostyle.methods.examples import Example, write_examples
from audiostyle.metrics import HEADLINE_OBJECTIVE, Objective
from audiostyle.methods.nets import SIDES, AutoEncoders, Critic, clip_weights, critic_loss, critic_update, grad_reverse
from audiostyle.methods.space import Choice, Float, Int, Space
from audiostyle.methods.domain_pair import DIRECTIONS, DomainPairConfig, DomainPairMethod, mean_over_directions
from audiostyle.methods.spectrogram import StftFields, check_griffin_lim_iters, translate_spectrogram
from audiostyle.methods.trained import Amp, Parts

log = logging.getLogger(__name__)

SILENCE_DB = -100.0
"""Floor of the dB scale (power 1e-10)."""


# -- normalisation ------------------------------------------------------------------------------------
def normalise_mel(power: np.ndarray, top_db: float) -> tuple[np.ndarray, float]:
    """A mel power spectrogram ``(F, T)`` → ``(x, ref_db)``: ``x = clip(1 + (dB - ref_db)/top_db, 0, 1)`` float32.

    ``ref_db`` is the clip's loudest bin in dB, at least ``SILENCE_DB + top_db`` (silence maps to 0).
    """
    db = 10.0 * np.log10(np.maximum(power, 10.0 ** (SILENCE_DB / 10)))
    ref = max(float(db.max()), SILENCE_DB + top_db)
    return np.clip(1.0 + (db - ref) / top_db, 0.0, 1.0).astype(np.float32), ref


def denormalise_mel(x: np.ndarray, ref_db: float, top_db: float) -> np.ndarray:
    """Inverse of :func:`normalise_mel` (``x`` clipped to [0, 1] first): mel power ``(F, T)``, float32."""
    return (10.0 ** ((ref_db + (np.clip(x, 0.0, 1.0) - 1.0) * top_db) / 10.0)).astype(np.float32)


# -- config and data ------------------------------------------------------------------------------------
@dataclass
class SegNetConfig(DomainPairConfig, StftFields):
    """Hyper-parameters of ``segnet``/``unet``; defaults from report 000 where it gives them (see module doc).

    Attributes
    ----------
    domain_x, domain_y : str
        The two domains (report: GTZAN classical ↔ jazz; defaults: the demo set's piano ↔ guitar, as cyclegan).
    sr : int
        Sample rate the model works at, Hz (data and rendered audio are resampled to it).
    n_mels, n_fft, hop_length : int
        Mel bands (patch height), FFT size and hop, samples (256, 2048, 512: 256 frames ≈ 5.9 s).
    patch_frames : int
        Patch width, frames (256). ``n_mels`` and ``patch_frames`` must be multiples of ``2**n_down``.
    top_db : float
        Dynamic range of the normalised spectrogram, dB (80).
    base_channels, max_channels : int
        Encoder widths: ``min(base_channels·2^i, max_channels)`` for stage ``i`` (report silent: 32, 256).
    n_down : int
        Down-sampling stages (latent resolution ``n_mels/2^n_down × patch_frames/2^n_down``; 4 → 16×16).
    latent_channels : int
        Channels of the latent code (64); the report proposes a larger latent against SegNet's "tinny" output.
    shared_encoder : bool
        One encoder for both domains (False: the report's one encoder per domain). Two encoders whose codes the
        critic only aligns in distribution keep no content across decoders (``benchmarks/results/segnet_learning.md``):
        a shared encoder gives a note the same code in both domains, so the other domain's decoder keeps the melody.
    unpool : bool
        ``segnet``'s decoders up-sample with the encoder's max-pool indices (True, the report's SegNet) or with
        learned transposed convolutions, so that only the critic-aligned code crosses to the other decoder (False).
        Ignored by ``unet`` (always transposed convolutions and skips).
    critic_hidden : int
        Hidden width of the critic MLP (256).
    recon_loss : str
        ``"l1"`` (the report's choice) or ``"l2"``.
    critic_weight : float
        λ, the gradient-reversal scale (report: 1 on its pixel-sum reconstruction loss).
    critic_lr : float
        Critic learning rate (1e-4).
    critic_steps : int
        Critic updates per autoencoder update (1 = only the joint step).
    lipschitz : str
        ``"gp"`` (gradient penalty) or ``"clip"`` (weight clipping).
    gp_weight, clip_value : float
        Gradient-penalty weight (10) and clipping bound c (0.01).
    val_clips : int
        Clips of ``split`` per domain transferred at each report (training clips when a domain has no ``val`` split).
    griffin_lim_iters : int
        Griffin-Lim iterations of the mel inversion.

    Inherited from :class:`~audiostyle.methods.domain_pair.DomainPairConfig`: ``split`` (the scored clips' split,
    ``"val"``), ``scored`` (the direction(s) the metrics describe, ``"both"``), ``steps``, ``batch_size`` (8; the
    report gives none), ``lr`` (the autoencoders' Adam learning rate, 1e-3: the report gives none), ``report_every``,
    ``checkpoint_every``, ``amp``, ``grad_clip``, ``seed``.
    """

    domain_x: str = "piano"
    domain_y: str = "guitar"
    sr: int = 22050
    n_mels: int = 256
    n_fft: int = 2048
    hop_length: int = 512
    patch_frames: int = 256
    top_db: float = 80.0
    base_channels: int = 32
    max_channels: int = 256
    n_down: int = 4
    latent_channels: int = 64
    shared_encoder: bool = False
    unpool: bool = True
    critic_hidden: int = 256
    recon_loss: str = "l1"
    critic_weight: float = 1.0
    critic_lr: float = 1e-4
    critic_steps: int = 1
    lipschitz: str = "gp"
    gp_weight: float = 10.0
    clip_value: float = 0.01
    val_clips: int = 4
    griffin_lim_iters: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("sr", self.sr, 1000, 192_000)
        check_range("n_mels", self.n_mels, 8, 1024)
        self.check_stft()
        check_range("patch_frames", self.patch_frames, 8, 4096)
        check_range("top_db", self.top_db, 10.0, 200.0)
        check_range("base_channels", self.base_channels, 1, 1024)
        check_range("max_channels", self.max_channels, self.base_channels, 4096,
                    fix="max_channels caps the widths, so it must be ≥ base_channels.")
        check_range("n_down", self.n_down, 1, 8)
        check_range("latent_channels", self.latent_channels, 1, 4096)
        check_range("critic_hidden", self.critic_hidden, 1, 65_536)
        check_choice("recon_loss", self.recon_loss, ("l1", "l2"))
        check_range("critic_weight", self.critic_weight, 0.0, 1e6)
        check_range("critic_lr", self.critic_lr, 0.0, 1.0)
        check_positive("critic_lr", self.critic_lr)
        check_range("critic_steps", self.critic_steps, 1, 100)
        check_choice("lipschitz", self.lipschitz, ("gp", "clip"))
        check_range("gp_weight", self.gp_weight, 0.0, 1e6)
        check_range("clip_value", self.clip_value, 1e-6, 10.0)
        check_range("val_clips", self.val_clips, 1, 1000)
        check_griffin_lim_iters("griffin_lim_iters", self.griffin_lim_iters)
        stride = 2**self.n_down
        if self.n_mels % stride or self.patch_frames % stride:
            raise AudiostyleError(
                f"n_mels={self.n_mels} and patch_frames={self.patch_frames} must both be multiples of "
                f"2**n_down={stride} (n_down={self.n_down} halvings): change n_down or the patch size."
            )
        if self.domain_x == self.domain_y:
            raise AudiostyleError(f"domain_x and domain_y are both {self.domain_x!r}: pick two different domains.")

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels of each encoder stage."""
        return tuple(min(self.base_channels * 2**i, self.max_channels) for i in range(self.n_down))

    def domain(self, side: str) -> str:
        """The domain name of side ``"x"`` or ``"y"``."""
        return self.domain_x if side == "x" else self.domain_y


@dataclass
class SegNetData:
    """What :meth:`SegNet.prepare` shares with every trial (numpy, picklable). Keys are the sides ``"x"``/``"y"``.

    Attributes
    ----------
    train : dict of str to list of np.ndarray
        Normalised log-mels of the training clips, each ``(n_mels, ≥ patch_frames)``.
    val_patches : dict of str to np.ndarray
        The first patch of each validation clip, ``(N, n_mels, patch_frames)`` (for ``recon_*``).
    val_audio : dict of str to list of np.ndarray
        The validation clips at ``config.sr``, ``(samples,)`` each: the contents of the evaluated transfers.
    val_targets : dict of str to list of np.ndarray or None
        Their renderings in the other domain (paired data), else None.
    reference : metrics.Reference
        The dataset's metrics reference (classifier, domain statistics).
    target_prob_input : float
        The classifier's probability of the other domain for the untouched validation clips, mean of both sides.
    """

    train: dict[str, list[np.ndarray]]
    val_patches: dict[str, np.ndarray]
    val_audio: dict[str, list[np.ndarray]]
    val_targets: dict[str, list[np.ndarray | None]]
    reference: metrics.Reference
    target_prob_input: float


def _logmel(y: np.ndarray, config: SegNetConfig) -> tuple[np.ndarray, float]:
    """Normalised log-mel ``(n_mels, T)`` of a waveform at ``config.sr``, and its ``ref_db``."""
    return normalise_mel(A.mel(y, config.sr, n_mels=config.n_mels, params=config.stft), config.top_db)


def _pad_frames(x: np.ndarray, n: int) -> np.ndarray:
    """``x (F, T)`` padded with silence (0) to at least ``n`` frames."""
    return np.pad(x, ((0, 0), (0, n - x.shape[1]))) if x.shape[1] < n else x


def _crops(mels: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random ``size``-frame crops of random clips: ``(n, 1, F, size)`` float32."""
    out = np.empty((n, 1, mels[0].shape[0], size), dtype=np.float32)
    for j, i in enumerate(rng.integers(0, len(mels), n)):
        start = int(rng.integers(0, mels[i].shape[1] - size + 1))
        out[j, 0] = mels[i][:, start : start + size]
    return out


def _recon(rec: Tensor, x: Tensor, kind: str) -> Tensor:
    """The report's reconstruction loss: per-example sum of |error| (``l1``) or error² (``l2``), batch mean."""
    err = (rec.float() - x).abs() if kind == "l1" else (rec.float() - x).square()
    return err.flatten(1).sum(1).mean()


def transfer_audio(
    ae: AutoEncoders, config: SegNetConfig, y: np.ndarray, direction: str, device: torch.device | str
) -> np.ndarray:
    """Transfer a whole clip ``(samples,)`` at ``config.sr`` (any length) in ``direction`` (``"x2y"``/``"y2x"``).

    Normalised log-mel → half-overlapping patches through the source encoder and the target decoder
    (:func:`audiostyle.methods.spectrogram.translate_spectrogram`) → de-normalised with the input's own reference →
    :func:`audiostyle.audio.mel_to_audio` on ``device``. Returns float32 ``(len(y),)``. ``ae`` must be in eval mode.
    """
    src, dst = direction[0], direction[-1]
    x, ref = _logmel(y, config)
    out = translate_spectrogram(lambda t: ae.transfer(t, src, dst), x, config.patch_frames, device,
                                batch=config.batch_size)
    power = denormalise_mel(out, ref, config.top_db)
    return A.mel_to_audio(power, config.sr, config.stft, n_iter=config.griffin_lim_iters, length=len(y), device=device)


# -- the methods ---------------------------------------------------------------------------------------
CPU_NETWORK: dict[str, Any] = {
    "n_mels": 64, "n_fft": 1024, "hop_length": 256, "patch_frames": 64, "base_channels": 16, "max_channels": 64,
    "n_down": 2, "latent_channels": 32, "critic_hidden": 64, "batch_size": 8, "griffin_lim_iters": 32,
    "steps": 1500, "report_every": 250, "checkpoint_every": 0, "val_clips": 3,
}
"""The ``cpu`` preset's fields shared by ``segnet`` and ``unet`` (:meth:`SegNet.presets`)."""


class SegNet(DomainPairMethod):
    """Two SegNet autoencoders whose latents a Wasserstein critic aligns through gradient reversal (see module doc)."""

    name: ClassVar[str] = "segnet"
    Config: ClassVar[type] = SegNetConfig
    headline: ClassVar[Objective] = HEADLINE_OBJECTIVE
    skips: ClassVar[bool] = False
    """True for the U-Net variant (skip connections instead of max-unpooling)."""

    @classmethod
    def default_space(cls) -> Space:
        """Latent size (channels, stages), critic weight, lr, steps and Lipschitz method, recon loss, lr."""
        return {
            "latent_channels": Int(8, 256, log=True),
            "n_down": Int(2, 5),
            "critic_weight": Float(0.1, 1000.0, log=True),
            "critic_lr": Float(1e-5, 1e-3, log=True),
            "critic_steps": Int(1, 5),
            "lipschitz": Choice(("gp", "clip")),
            "recon_loss": Choice(("l1", "l2")),
            "lr": Float(1e-4, 3e-3, log=True),
        }

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """``"cpu"``: the quality table's 64-mel network (widths 16-32, latent 32 × 16 × 16, 64-frame patches ≈ 0.74 s,
        batch 8) for 1500 steps, about 5 minutes of training on 2 idle cores plus 6 reports, with a shared encoder
        (see :class:`SegNetConfig`). With the report's two encoders neither keeps the melody: the other decoder reads
        a piano's code (and U-Net's skips) as something else (U-Net at 1500 steps: transfers 32 dB from their input).
        With one, SegNet's transfers keep the melody (violin → piano moves toward the target, piano → violin does
        not: the critic leaves the codes telling the domains apart), and U-Net shows the report's identity finding:
        reconstruction near perfect (MSE 0.000, MAE 0.013), transfers that keep the melody (pitch 0.95) at
        copy-content's distance from the target (lsd_rel 1.06) and target probability (0). Measured:
        ``benchmarks/results/segnet_learning.md``."""
        return {"cpu": {**CPU_NETWORK, "shared_encoder": True}}

    @classmethod
    def best_known(cls) -> list[dict[str, Any]]:
        """The report's choices: L1 reconstruction, critic weight 1."""
        return [{"recon_loss": "l1", "critic_weight": 1.0}]

    @classmethod
    def smoke_overrides(cls) -> dict[str, Any]:
        """The smoke sweep's network and data size (see :meth:`~audiostyle.methods.base.Method.smoke_overrides`)."""
        return {"report_every": 2, "checkpoint_every": 2, "batch_size": 2, "n_mels": 64, "n_fft": 1024,
                "patch_frames": 32, "base_channels": 8, "max_channels": 32, "n_down": 2,
                "latent_channels": 16, "critic_hidden": 32, "val_clips": 1, "griffin_lim_iters": 4}

    # -- data --------------------------------------------------------------------------------------
    def prepare(self, dataset: AudioDataset, config: SegNetConfig) -> SegNetData:
        """Normalised log-mels of both domains' training clips, fixed validation patches and clips, the metrics
        reference. Unknown or empty domains raise :class:`AudiostyleError`."""
        train, val_patches, val_audio, val_targets = {}, {}, {}, {}
        for side in SIDES:
            domain, other = config.domain(side), config.domain("y" if side == "x" else "x")
            clips = dataset.select(domain, "train") or dataset.select(domain)
            if not clips:
                raise AudiostyleError(
                    f"{self.name}: domain {domain!r} has no clips in {dataset.source or 'the dataset'}; "
                    "pick a domain that has audio."
                )
            train[side] = [_pad_frames(_logmel(A.resample(c.audio, c.sr, config.sr), config)[0], config.patch_frames)
                           for c in clips]
            held = self.scored_clips(dataset, config, domain, other, clips)
            val_audio[side] = [A.resample(c.audio, c.sr, config.sr) for c in held]
            val_patches[side] = np.stack([
                A.to_patches(_logmel(y, config)[0], config.patch_frames, hop=config.patch_frames)[0]
                for y in val_audio[side]
            ])
            twins = [dataset.counterpart(c, other) for c in held]
            val_targets[side] = [
                None if t is None else A.fit_length(A.resample(t.audio, t.sr, config.sr), len(y))
                for t, y in zip(twins, val_audio[side])
            ]
        reference = metrics.build_reference(dataset)
        tp_input = float(np.mean([
            metrics.target_probability(y, reference, config.domain("y" if side == "x" else "x"), config.sr)
            for side in SIDES for y in val_audio[side]
        ]))
        log.info("%s: %d/%d training clips (%s/%s), %d validation clips per side, target_prob of the inputs %.3f",
                 self.name, len(train["x"]), len(train["y"]), config.domain_x, config.domain_y, len(val_audio["x"]),
                 tp_input)
        return SegNetData(train, val_patches, val_audio, val_targets, reference, tp_input)

    def sample(self, config: SegNetConfig, data: SegNetData, rng: np.random.Generator) -> dict[str, Any]:
        """``batch_size · critic_steps`` random patch crops per side (``(n, 1, n_mels, patch_frames)``).

        The batch also carries ``config`` (the loop's ``train_step`` has no config argument).
        """
        n = config.batch_size * config.critic_steps
        return {side: _crops(data.train[side], n, config.patch_frames, rng) for side in SIDES} | {"config": config}

    # -- training ----------------------------------------------------------------------------------
    def build(self, config: SegNetConfig, data: SegNetData | None, device: torch.device) -> Parts:
        """Both autoencoders and the critic (torch's default init), an Adam optimiser for each."""
        ae = AutoEncoders(
            config.widths, config.latent_channels, self.skips, config.shared_encoder, config.unpool
        ).to(device)
        latent_hw = (config.n_mels >> config.n_down, config.patch_frames >> config.n_down)
        critic = Critic(config.latent_channels, latent_hw, config.critic_hidden).to(device)
        if config.lipschitz == "clip":
            clip_weights(critic, config.clip_value)
        return Parts(
            modules={"autoencoders": ae, "critic": critic},
            optimizers={
                "autoencoders": torch.optim.Adam(ae.parameters(), lr=config.lr),
                "critic": torch.optim.Adam(critic.parameters(), lr=config.critic_lr, betas=(0.5, 0.9)),
            },
        )

    def train_step(self, parts: Parts, batch: Mapping[str, Any], step: int, amp: Amp) -> dict[str, Tensor]:
        """``critic_steps - 1`` critic-only updates on fresh crops, then one joint update through the GRL.

        The critic runs in float32 outside autocast (its gradient penalty differentiates twice); the critic-only
        updates are plain float32 steps (no loss scaling, no ``grad_clip``).
        """
        cfg: SegNetConfig = batch["config"]
        ae: AutoEncoders = parts.modules["autoencoders"]  # type: ignore[assignment]
        critic = parts.modules["critic"]
        opt_ae, opt_c = parts.optimizers["autoencoders"], parts.optimizers["critic"]
        chunks = {side: batch[side].split(cfg.batch_size) for side in SIDES}
        for i in range(1, cfg.critic_steps):
            with torch.no_grad(), amp.autocast():
                codes = ae.encode({side: chunks[side][i] for side in SIDES})
                z_x, z_y = (codes[side][0].float() for side in SIDES)
            critic_update(critic, opt_c, z_x, z_y, cfg.lipschitz, cfg.gp_weight, cfg.clip_value)

        x = {side: chunks[side][0] for side in SIDES}
        opt_ae.zero_grad(set_to_none=True)
        opt_c.zero_grad(set_to_none=True)
        with amp.autocast():
            codes = ae.encode(x)
            loss_recon = sum(_recon(ae.dec[side](*codes[side]), x[side], cfg.recon_loss) for side in SIDES)
        z_x, z_y = (grad_reverse(codes[side][0].float(), cfg.critic_weight) for side in SIDES)
        loss_critic, w = critic_loss(critic, z_x, z_y, cfg.lipschitz, cfg.gp_weight)
        amp.backward(loss_recon + loss_critic)
        amp.step(opt_ae)
        amp.step(opt_c)
        if cfg.lipschitz == "clip":
            clip_weights(critic, cfg.clip_value)
        return {"loss_recon": loss_recon.detach(), "loss_critic": loss_critic.detach(), "wasserstein": w.detach()}

    def evaluate(self, parts: Parts, config: SegNetConfig, data: SegNetData, device: torch.device) -> dict[str, float]:
        """Common metrics of both directions (:func:`~audiostyle.methods.domain_pair.mean_over_directions`), ``recon_mse``,
        ``recon_mae`` (per pixel, both autoencoders) and ``target_prob_input``."""
        ae: AutoEncoders = parts.modules["autoencoders"]  # type: ignore[assignment]
        errors = []
        for side in SIDES:
            x = torch.tensor(data.val_patches[side])[:, None].to(device)  # a copy: Ray's shared arrays are read-only
            errors.append((ae.transfer(x, side, side).float() - x).flatten())
        err = torch.cat(errors)
        per_direction = {}
        for direction in DIRECTIONS:
            side = direction[0]
            outputs = [transfer_audio(ae, config, y, direction, device) for y in data.val_audio[side]]
            per_direction[direction] = metrics.evaluate(
                outputs, data.val_audio[side], config.sr, data.reference, config.domain(direction[-1]),
                true_targets=data.val_targets[side],
            )
        return {
            **mean_over_directions(per_direction, config.scored),
            "recon_mse": float(err.square().mean()),
            "recon_mae": float(err.abs().mean()),
            "target_prob_input": data.target_prob_input,
        }

    def write_artifacts(self, parts: Parts, config: SegNetConfig, data: SegNetData, out_dir: Path) -> None:
        """``x2y_*.wav`` and ``y2x_*.wav`` (content, output, true target on paired data) of the first validation
        clip of each side, and ``spectrogram.png`` (:mod:`audiostyle.methods.examples`)."""
        ae: AutoEncoders = parts.modules["autoencoders"]  # type: ignore[assignment]
        device = next(ae.parameters()).device
        examples = []
        for direction in DIRECTIONS:
            y = data.val_audio[direction[0]][0]
            targets = data.val_targets[direction[0]]
            examples.append(Example.of(direction, transfer_audio(ae, config, y, direction, device), content=y,
                                       target=None if targets is None else targets[0]))
        write_examples(out_dir, examples, config.sr, f"{self.name}: {config.domain('x')} ↔ {config.domain('y')}")

    # -- inference ---------------------------------------------------------------------------------
    def translate(self, modules: Mapping[str, nn.Module], config: SegNetConfig, y: np.ndarray,
                  direction: str) -> np.ndarray:
        """``y`` at ``config.sr`` through the source domain's encoder and the target domain's decoder."""
        ae: AutoEncoders = modules["autoencoders"]  # type: ignore[assignment]
        return transfer_audio(ae, config, y, direction, next(ae.parameters()).device)


class UNet(SegNet):
    """The report's first attempt: the same autoencoders with U-Net skip connections (learns the identity)."""

    name: ClassVar[str] = "unet"
    skips: ClassVar[bool] = True
