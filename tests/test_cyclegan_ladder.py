"""cyclegan's sanity ladder (issue 28): one batch overfits, cycle and identity losses fall, the generators learn a
fixed spectral tilt between two synthetic domains, and a trained generator keeps a pause silent.

Real code paths throughout (:meth:`CycleGAN.build`, :meth:`CycleGAN.train_step`, :meth:`CycleGAN.translate`) on tiny
networks and 32 × 32 normalised spectrogram patches (``n_fft`` 63), so each test takes seconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from audiostyle.methods.cyclegan import CycleGAN, GatedGenerator, analyse, frame_level_db
from audiostyle.methods.trained import Amp

LADDER = dict(ngf=8, ndf=8, n_blocks=1, n_down=2, d_layers=2, n_fft=63, hop_length=16, patch_frames=32, sr=8000,
              pool_size=0, lr=1e-3, amp="none", channels_last=False)
TILT = 0.6
"""Domain y is domain x plus a ramp from -TILT/2 (lowest bin) to +TILT/2 (highest), in normalised units."""
CPU = torch.device("cpu")


def _ramp(n_bins: int) -> np.ndarray:
    return np.linspace(-0.5, 0.5, n_bins, dtype=np.float32)


def domain_batch(rng: np.random.Generator, n: int, n_bins: int, frames: int, tilt: float) -> torch.Tensor:
    """``(n, 1, n_bins, frames)`` normalised spectrograms: a random spectral ripple held over time, per-frame level
    jitter and noise, plus ``tilt`` times the ramp of :func:`_ramp` (frames around -12 dBFS: the gate is open)."""
    f = np.arange(n_bins, dtype=np.float32)[:, None]
    out = np.empty((n, 1, n_bins, frames), np.float32)
    for i in range(n):
        k, phase, depth = rng.uniform(1.5, 4.0), rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.25)
        ripple = depth * np.cos(2 * np.pi * k * f / n_bins + phase)
        jitter = rng.normal(0.0, 0.05, (1, frames)) + rng.normal(0.0, 0.03, (n_bins, frames))
        out[i, 0] = -0.4 + ripple + jitter + tilt * _ramp(n_bins)[:, None]
    return torch.from_numpy(out)


def build(method: CycleGAN, **overrides):
    config = method.make_config({**LADDER, **overrides})
    torch.manual_seed(0)
    parts = method.build(config, None, CPU)
    parts.config = config
    return config, parts


def train(method: CycleGAN, parts, batches, steps: int) -> list[dict[str, float]]:
    """``steps`` training steps on ``batches(step) -> (x, y)``; the losses of every step."""
    amp = Amp("none", CPU)
    history = []
    for step in range(1, steps + 1):
        losses = method.train_step(parts, batches(step), step, amp)
        history.append({k: float(v) for k, v in losses.items()})
    return history


def mean_loss(history: list[dict[str, float]], names: tuple[str, ...], window: slice) -> float:
    return float(np.mean([sum(h[n] for n in names) for h in history[window]]))


def error_to_truth(g: torch.nn.Module, source: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean absolute difference of ``g(source)`` from ``truth`` (normalised units)."""
    with torch.no_grad():
        return float((g(source) - truth).abs().mean())


@pytest.fixture(scope="module")
def method() -> CycleGAN:
    return CycleGAN()


@pytest.fixture(scope="module")
def tilt_run(method):
    """CycleGAN trained 400 steps on fresh batches of the two tilted domains.

    Returns the config, the parts, the per-step losses, and the generators' mean error to the true counterparts of
    16 held-out patches before training (``{"G_xy": …, "G_yx": …}``), with those patches ``(x, y = x + tilt)``.
    """
    config, parts = build(method)
    rng = np.random.default_rng(0)
    x = domain_batch(np.random.default_rng(1), 16, config.n_bins, config.patch_frames, 0.0)
    y = x + TILT * torch.from_numpy(_ramp(config.n_bins))[:, None]
    before = {"G_xy": error_to_truth(parts.modules["G_xy"], x, y), "G_yx": error_to_truth(parts.modules["G_yx"], y, x)}

    def batches(step):
        return tuple(domain_batch(rng, config.batch_size, config.n_bins, config.patch_frames, t) for t in (0.0, TILT))

    history = train(method, parts, batches, 400)
    return config, parts, history, before, (x, y)


def test_one_batch_overfits(method):
    """On one fixed batch the generators' L1 terms (both cycles and both identities) fall at least 10× in 200 steps.

    Without the adversarial term (``lambda_adv=0``): the discriminators' moving target is not something to overfit,
    the step's reconstruction path is.
    """
    config, parts = build(method, lambda_adv=0.0)
    rng = np.random.default_rng(0)
    batch = tuple(domain_batch(rng, 2, config.n_bins, config.patch_frames, t) for t in (0.0, TILT))
    history = train(method, parts, lambda step: batch, 200)
    terms = ("cycle_fwd", "cycle_bwd", "idt_x", "idt_y")
    assert mean_loss(history, terms, slice(-5, None)) < mean_loss(history, terms, slice(0, 5)) / 10


def test_cycle_and_identity_losses_fall(tilt_run):
    """Over 400 steps on the two domains each cycle and identity loss falls at least 2× (first 10 against last 50)."""
    *_, history, _, _ = tilt_run
    for name in ("cycle_fwd", "cycle_bwd", "idt_x", "idt_y"):
        first, last = mean_loss(history, (name,), slice(0, 10)), mean_loss(history, (name,), slice(-50, None))
        assert last < first / 2, (name, first, last)


def test_generators_learn_the_spectral_tilt_between_the_domains(tilt_run):
    """Unpaired training finds the pairing: G_xy(x) lands at most 0.7 × copy-content's distance from the true
    counterpart x + tilt (copying x is TILT · mean|ramp| = 0.15 off), G_yx(y) as close to x; untrained, both are
    further off than copying (0.56 against 0.15; after 400 steps G_xy reads 0.09)."""
    config, parts, _, before, (x, y) = tilt_run
    copy = float((y - x).abs().mean())
    after = {name: error_to_truth(parts.modules[name], source, truth) for name, source, truth in (("G_xy", x, y),
                                                                                                   ("G_yx", y, x))}
    for name in after:
        assert before[name] > copy and after[name] < 0.7 * copy, (before, after, copy)


def test_trained_generator_keeps_a_pause_silent(method, tilt_run):
    """A signal with a 1 s pause at the 16-bit noise floor (-91 dBFS) through the trained G_xy: in the pause's
    frames the output stays within 3 dB of the input; the same weights without the silence gate fill it with sound
    at least 30 dB louder (instance norm hides the level of a near-silent patch from the generator)."""
    config, parts, *_ = tilt_run
    t = np.arange(config.sr) / config.sr
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1320 * t)).astype(np.float32)
    floor = (np.random.default_rng(0).standard_normal(config.sr) * 10 ** (-91 / 20)).astype(np.float32)
    y = np.concatenate([tone, floor, tone])
    plain = dataclasses.replace(config, silence_db=None)
    ungated = GatedGenerator(plain)
    ungated.load_state_dict(parts.modules["G_xy"].state_dict())  # the same weights without the gate

    def levels(g: torch.nn.Module) -> np.ndarray:
        with torch.no_grad():
            out = method.translate({"G_xy": g.eval()}, config, y, "x2y")
        return frame_level_db(torch.from_numpy(analyse(out, config)[0])[None, None], config)[0, 0, 0].numpy()

    spec_in = torch.from_numpy(analyse(y, config)[0])[None, None]
    level_in = frame_level_db(spec_in, config)[0, 0, 0].numpy()
    pause = np.zeros_like(level_in, dtype=bool)
    hop = config.hop_length
    pause[(config.sr + 2 * config.n_fft) // hop : (2 * config.sr - 2 * config.n_fft) // hop] = True  # past the tones
    assert level_in[pause].max() < -85
    gated, ungated = levels(parts.modules["G_xy"]), levels(ungated)
    excess = np.abs(gated[pause] - level_in[pause]).max(), np.median(ungated[pause] - level_in[pause])
    assert excess[0] < 3.0 and excess[1] > 30.0, excess
    assert gated[~pause].mean() > -40  # the tones are still translated, not gated away
