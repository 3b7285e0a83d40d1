"""spec_gan: networks, training on the demo set, samples of the data's shape that decode to audio, failures."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audiostyle import methods
from audiostyle.errors import AudiostyleError
from audiostyle.methods.base import DIVERGED, TrialContext
from audiostyle.methods.spec_gan import DenseDiscriminator, SpecGenerator
from audiostyle.methods.trained import D_WINS_LOSS
from audiostyle.metrics import COMMON_METRICS
from tests.ladder_generators import train_on_one_batch, untrained_metrics

TINY = {
    "noise_dim": 32, "g_hidden": 64, "g_channels": 32, "g_layers": 2, "d_hidden": 64, "d_layers": 2,
    "n_mels": 32, "n_fft": 256, "hop_length": 64, "eval_samples": 2, "griffin_lim_iters": 8, "clip_s": 1.0,
    "checkpoint_every": 0,
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: faster on one thread than on two busy ones


@pytest.fixture(scope="module")
def method():
    return methods.get("spec_gan")


@pytest.fixture(scope="module")
def prepared(demo, method):
    return method.prepare(demo, method.make_config(TINY))


@pytest.mark.parametrize("shape, layers", [((128, 179), 4), ((32, 13), 2), ((17, 5), 3)])
def test_networks_produce_the_data_shape(shape, layers):
    gen = SpecGenerator(shape, noise_dim=16, hidden=32, channels=16, layers=layers)
    x = gen(torch.randn(3, 16))
    assert x.shape == (3, 1, *shape) and x.abs().max() <= 1
    assert DenseDiscriminator(shape, hidden=32, layers=2)(x).shape == (3,)


def test_prepare_scales_log_mels_of_the_halves(prepared):
    half = int(round(1.0 * 3150)) // 2
    assert prepared.length == half
    assert prepared.specs.shape == (len(prepared.clips.train), 32, 1 + half // 64)
    assert prepared.specs.max() == 1.0 and prepared.specs.min() >= -1.0


@pytest.mark.slow
def test_compiled_bf16_training_reports_finite_losses(method, prepared):
    config = method.make_config({**TINY, "steps": 4, "report_every": 2, "compile": "on", "amp": "bf16"})
    final = method.train(config, prepared, TrialContext(seed=3))
    assert math.isfinite(final["loss_g"]) and math.isfinite(final["loss_d"]) and final["fad"] > 0


def test_trains_and_samples_decode_to_audio(demo, method, prepared, tmp_path):
    config = method.make_config({**TINY, "steps": 30, "report_every": 15})
    ctx = TrialContext(artifact_dir=tmp_path, seed=3)
    final = method.train(config, prepared, ctx)

    assert [h["step"] for h in ctx.history] == [15.0, 30.0]
    assert set(COMMON_METRICS) | {"diversity", "fad_real", "loss_g", "loss_d", DIVERGED} <= set(final)
    assert final[DIVERGED] == float(final["loss_d"] < D_WINS_LOSS)  # its discriminator is judged
    assert math.isnan(final["melody"]) and final["fad"] > 0 and 0 <= final["target_prob"] <= 1

    modules = method.restore_modules(config, ctx.last_state, data=prepared)
    with torch.no_grad():
        specs = modules["G"](torch.randn(4, config.noise_dim))
    assert specs.shape[1:] == (1, *prepared.specs.shape[1:])  # the data's shape
    samples = method.generate(modules, config, 2)
    assert samples.shape == (2, prepared.length) and np.all(np.isfinite(samples)) and samples.std() > 0
    y, sr = sf.read(tmp_path / "sample0_output.wav")
    assert sr == 3150 and y.shape == (prepared.length,) and np.abs(y).max() > 0
    assert (tmp_path / "spectrogram.png").stat().st_size > 0

    audio = demo.clips[0].audio[: int(0.7 * 22050)]
    out = method.render(config, ctx.last_state, audio, 22050)
    assert out.shape == audio.shape and out.dtype == np.float32 and np.all(np.isfinite(out)) and out.std() > 0


@pytest.mark.parametrize("loss", ["lsgan", "wgan_gp"])
def test_other_losses_train(method, prepared, loss):
    config = method.make_config({**TINY, "steps": 4, "report_every": 4, "loss": loss, "d_steps": 2})
    ctx = TrialContext()
    final = method.train(config, prepared, ctx)
    assert math.isfinite(final["loss_d"]) and math.isfinite(final["fad"])


def test_nan_in_the_data_fails_with_a_clear_reason(method, prepared):
    specs = prepared.specs.copy()
    specs[:, 0, 0] = np.nan
    config = method.make_config({**TINY, "steps": 3, "report_every": 3})
    with pytest.raises(FloatingPointError, match=r"spec_gan: loss 'loss_\w' became nan at step 1"):
        method.train(config, dataclasses.replace(prepared, specs=specs), TrialContext())


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"loss": "hinge"}, "loss='hinge'"),
        ({"n_mels": 200, "n_fft": 256}, "n_mels=200"),
        ({"hop_length": 4096}, "hop_length=4096"),
        ({"noise_dim": 0}, "noise_dim=0"),
        ({"weight_decay": -1e-5}, "weight_decay"),
        ({"clip_s": 0}, "clip_s=0"),
    ],
)
def test_bad_config_raises_audiostyle_error(method, overrides, match):
    with pytest.raises(AudiostyleError, match=match):
        method.make_config(overrides)


def test_a_trial_cannot_change_the_domain(method, prepared):
    config = method.make_config({**TINY, "domain": "flute", "steps": 1})
    with pytest.raises(AudiostyleError, match="domain is chosen per sweep"):
        method.train(config, prepared, TrialContext())
    with pytest.raises(AudiostyleError, match="render needs the trained state"):
        method.render(config, {"modules": {}}, np.zeros(100, np.float32), 22050)


@pytest.mark.parametrize("d_steps", [2, 5])
def test_fp16_loss_scaling_steps_each_critic_update_once_per_scale_update(method, prepared, d_steps):
    """Several critic steps per training step under a real (CPU) GradScaler: each optimiser step is unscaled by
    the factor its loss was scaled with, and the scale is updated between steps of the same optimiser."""
    from audiostyle.methods.trained import Amp

    config = method.make_config({**TINY, "d_steps": d_steps, "loss": "wgan_gp"})
    parts = method.build(config, prepared, torch.device("cpu"))
    parts.config = config
    amp = Amp("none", torch.device("cpu"))
    amp.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1)  # grows at every update
    updates = []
    update = amp.scaler.update
    amp.scaler.update = lambda *a: (updates.append(amp.scaler.get_scale()), update(*a))[1]
    rng = np.random.default_rng(0)
    before = {k: p.detach().clone() for k, p in parts.modules["D"].named_parameters()}
    for step in (1, 2):
        losses = method.train_step(parts, torch.from_numpy(method.sample(config, prepared, rng)), step, amp)
        amp.update()  # what the loop does after every step
        assert all(math.isfinite(float(v)) for v in losses.values())
    # d_steps critic updates and one generator update per step, each followed by one scale update
    assert len(updates) == 2 * (d_steps + 1)
    assert updates == [2.0**10 * 2**i for i in range(len(updates))]
    assert any(not torch.equal(before[k], p) for k, p in parts.modules["D"].named_parameters())


# -- the sanity ladder (issue 28): each network fits one batch; samples move toward the data --------------------
@pytest.mark.parametrize("learner, loss, lrs, steps", [("D", "loss_d", (1e-9, 1e-3), 30),
                                                       ("G", "loss_g", (1e-3, 1e-9), 60)])
def test_ladder_each_network_fits_one_batch_against_the_other_frozen(method, prepared, learner, loss, lrs, steps):
    """The discriminator separates one real batch from a frozen generator's; the generator fools a frozen
    discriminator (least squares, whose loss has a floor of 0): each loss falls at least 10×."""
    config = method.make_config({**TINY, "loss": "lsgan", "batch_size": 4, "lr": lrs[0], "lr_d": lrs[1]})
    _, _, losses = train_on_one_batch(method, config, prepared, steps)
    last = np.mean([step[loss] for step in losses[-5:]])
    assert last <= losses[0][loss] / 10, (learner, losses[0][loss], last)


def test_ladder_samples_move_toward_the_data(method, prepared):
    """60 steps take the samples' fad to 0.69x the untrained generator's (seeds 1, 2: 0.90x, 0.83x); a generator
    trained toward the "fake" label (a planted bug) moves it away, to 1.08x (seeds 1, 2: 1.58x, 1.55x)."""
    config = method.make_config({**TINY, "eval_samples": 4, "steps": 60, "report_every": 60})
    before = untrained_metrics(method, config, prepared)
    after = method.train(config, prepared, TrialContext(seed=0))
    assert after["fad"] <= 0.85 * before["fad"], (before["fad"], after["fad"])
