"""cyclegan on the demo set: tiny networks, 64 × 64 patches, real data, real training loop."""

from __future__ import annotations

import copy
import importlib.util
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch

from audiostyle import audio as A
from audiostyle import methods, metrics
from audiostyle.errors import AudiostyleError
from audiostyle.methods import cyclegan
from audiostyle.methods.base import DIVERGED, TrialContext
from audiostyle.methods.cyclegan import CycleGAN, denormalise, normalise
from audiostyle.methods.precision import trial_amp
from audiostyle.methods.trained import AMP_METRIC, D_WINS_LOSS, Amp

TINY = dict(
    ngf=8, ndf=8, n_blocks=1, n_down=2, d_layers=2, n_fft=127, hop_length=64, patch_frames=64, sr=22050,
    val_clips=1, pool_size=4, channels_last=False, steps=30, report_every=10, checkpoint_every=10, lr=1e-3,
)


@pytest.fixture(scope="module")
def method() -> CycleGAN:
    m = methods.get("cyclegan")
    assert isinstance(m, CycleGAN)
    return m


@pytest.fixture(scope="module")
def config(method):
    return method.make_config(TINY)


@pytest.fixture(scope="module")
def data(method, config, demo):
    return method.prepare(demo, config)


class Run:
    def __init__(self, method, config, data, resume=None, artifact_dir=None):
        self.states: dict[int, Any] = {}
        self.ctx = TrialContext(report=self._report, resume_state=resume, artifact_dir=artifact_dir)
        self.final = method.train(config, data, self.ctx)

    def _report(self, step, metrics, state=None):
        if state is not None:
            buf = io.BytesIO()  # what the sweep does: torch.save, later torch.load
            torch.save(state, buf)
            buf.seek(0)
            self.states[step] = torch.load(buf, weights_only=True)


@pytest.fixture(scope="module")
def run(method, config, data, tmp_path_factory) -> Run:
    return Run(method, config, data, artifact_dir=tmp_path_factory.mktemp("artifacts"))


def test_training_lowers_cycle_loss_and_reports_every_metric(run, config):
    steps = [h["step"] for h in run.ctx.history]
    assert steps == [10, 20, 30] and sorted(run.states) == [10, 20, 30]
    first, last = run.ctx.history[0], run.ctx.history[-1]
    assert last["cycle_fwd"] < 0.7 * first["cycle_fwd"]
    assert last["cycle_bwd"] < 0.7 * first["cycle_bwd"]
    assert last["cycle_rel_fwd_x_train"] < first["cycle_rel_fwd_x_train"]
    expected = {*metrics.COMMON_METRICS, "transfer_score_x2y",
                "transfer_score_y2x", "cycle_rel_fwd_x_train", "cycle_rel_fwd_x_val", "cycle_rel_fwd_y_train",
                "cycle_rel_fwd_y_val", "g_adv_xy", "g_adv_yx", "cycle_fwd", "cycle_bwd", "idt_x", "idt_y", "d_x", "d_y",
                AMP_METRIC, DIVERGED}
    assert last[DIVERGED] == float(min(last["d_x"], last["d_y"]) < D_WINS_LOSS)  # its discriminators are judged
    assert set(run.final) == expected
    # amp="auto" trains cyclegan in bf16 where this machine multiplies it natively (benchmarks/results/amp_quality.md)
    native = trial_amp(config, "bf16", torch.device("cpu")) == "bf16"
    assert run.final[AMP_METRIC] == float(native)
    assert all(np.isfinite(v) for v in run.final.values())  # demo data is paired: lsd_db is defined
    assert 0.0 <= run.final["transfer_score"] <= 1.0


def test_artifacts_are_decodable_audio_and_figures(run, config):
    out = run.ctx.artifact_dir
    for direction in ("x2y", "y2x"):
        y, sr = sf.read(out / f"{direction}_output.wav")
        assert sr == config.sr and len(y) == 3 * 22050 and np.abs(y).max() > 1e-3
        heard, _ = sf.read(out / f"{direction}_content.wav")  # the input, to listen side by side
        assert heard.shape == y.shape and not np.allclose(heard, y, atol=1e-3)
        target, _ = sf.read(out / f"{direction}_target.wav")  # demo data is paired: the true rendering too
        assert target.shape == y.shape
    assert (out / "spectrogram.png").stat().st_size > 1000


def test_checkpoint_restored_mid_training_continues_bit_identically(method, config, data, run):
    resumed = Run(method, config, data, resume=run.states[10])
    assert [h["step"] for h in resumed.ctx.history] == [20, 30]
    assert resumed.ctx.history == run.ctx.history[1:]
    for name, tensor in run.states[30]["modules"]["G_xy"].items():
        assert torch.equal(tensor, resumed.states[30]["modules"]["G_xy"][name]), name
    pools = [r.states[30]["stateful"]["pool_y"]["images"] for r in (run, resumed)]
    assert torch.equal(*pools)


def _reference_model_class():
    """``RefCycleGANModel`` of benchmarks/bench_cyclegan.py (junyanz/pytorch-CycleGAN-and-pix2pix, re-implemented)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cyclegan.py"
    spec = importlib.util.spec_from_file_location("bench_cyclegan", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._reference_classes()


def test_step_has_the_reference_losses_and_gradients(method):
    """One ``train_step`` from the reference's weights gives its eight losses and every network's gradient.

    The reference's networks are loaded as checkpoints (``load_state_dict``): they hold a bias ahead of every
    instance norm, which ours drop (the norm cancels them; ``audiostyle/methods/nets.py``).
    """
    torch.manual_seed(0)
    ref = _reference_model_class()(ngf=8, n_blocks=1, device=torch.device("cpu"))  # ndf 64, 3 layers, pool 50
    config = method.make_config({"ngf": 8, "ndf": 64, "n_blocks": 1, "n_down": 2, "d_layers": 3, "n_fft": 63,
                                 "hop_length": 16, "patch_frames": 32, "lambda_id": 4.0, "amp": "none"})
    parts = method.build(config, None, torch.device("cpu"))
    parts.config = config
    pairs = {"G_xy": ref.netG_A, "G_yx": ref.netG_B, "D_y": ref.netD_A, "D_x": ref.netD_B}

    def our_name(key: str) -> str:  # the reference's name of a parameter → ours
        return key.replace(".conv_block.", ".block.")

    for name, theirs in pairs.items():  # strict: only the cancelled biases are dropped
        parts.modules[name].load_state_dict({our_name(k): v for k, v in theirs.state_dict().items()})
    x, y = (torch.rand(2, 1, 32, 32) * 2 - 1 for _ in range(2))
    losses = method.train_step(parts, (x, y), 1, Amp("none", torch.device("cpu")))

    ref.set_input(x, y)
    ref.forward()
    ref.set_requires_grad([ref.netD_A, ref.netD_B], False)
    ref.backward_G()
    ref.set_requires_grad([ref.netD_A, ref.netD_B], True)
    ref.backward_D_A()
    ref.backward_D_B()
    expected = {"g_adv_xy": ref.loss_G_A, "g_adv_yx": ref.loss_G_B, "cycle_fwd": ref.loss_cycle_A / 10,
                "cycle_bwd": ref.loss_cycle_B / 10, "idt_y": ref.loss_idt_A / 4, "idt_x": ref.loss_idt_B / 4,
                "d_y": ref.loss_D_A, "d_x": ref.loss_D_B}
    for name, value in expected.items():
        torch.testing.assert_close(losses[name], value.detach(), rtol=1e-5, atol=1e-7, msg=name)
    for name, theirs in pairs.items():
        ref_params = {our_name(k): p for k, p in theirs.named_parameters()}
        dropped = set(ref_params) - {n for n, _ in parts.modules[name].named_parameters()}
        assert dropped and all(n.endswith(".bias") for n in dropped)
        scale = max(float(p.grad.abs().max()) for p in theirs.parameters())
        # what the reference computes for them is rounding noise: the norm after them cancels a bias exactly
        assert max(float(ref_params[n].grad.abs().max()) for n in dropped) < 1e-6 * scale
        for pname, ours in parts.modules[name].named_parameters():
            torch.testing.assert_close(ours.grad, ref_params[pname].grad, rtol=1e-4, atol=1e-5 * scale,
                                       msg=f"{name}.{pname}")


@pytest.mark.parametrize("channels_last", [False, True])
def test_cpu_generator_is_accurate_on_near_silent_patches(method, channels_last):
    """A near-silent patch (-1 plus 1e-4 detail) through a generator in the CPU's layout agrees with float64 to
    3 % of its output range. There each channel's mean dwarfs its spread, and PyTorch's channels-last GroupNorm
    loses the spread (its error was 0.17 here, NCHW's 0.006), so the CPU keeps NCHW even when channels-last is
    asked for (``memory_format``). Without the silence gate, which would pass such a patch through untouched."""
    config = method.make_config({**TINY, "ngf": 16, "n_blocks": 2, "channels_last": channels_last, "silence_db": None})
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    g = method.build(config, None, cpu).modules["G_xy"]
    silent = -1.0 + 1e-4 * torch.randn(2, 1, config.n_bins, config.patch_frames)
    with torch.no_grad():
        out = g(silent.contiguous(memory_format=cyclegan.memory_format(config, cpu)))
        exact = copy.deepcopy(g).double().to(memory_format=torch.contiguous_format)(silent.double())
    assert float((out.double() - exact).abs().max()) < 0.03


def test_cpu_bf16_trains_without_overflow_on_silent_patches(method, data):
    """Channels-last bf16 kernels overflowed to NaN by step 3-5 here (seeds 1, 2): asked for, the CPU keeps NCHW."""
    config = method.make_config({**TINY, "ngf": 16, "ndf": 16, "n_blocks": 3, "channels_last": True, "amp": "bf16",
                                 "steps": 12, "report_every": 12, "checkpoint_every": 0})
    for seed in (1, 2):
        ctx = TrialContext(seed=seed)
        final = method.train(config, data, ctx)
        assert math.isfinite(final["cycle_fwd"]) and math.isfinite(final["g_adv_xy"])


@pytest.mark.slow
def test_compiled_bf16_training_lowers_cycle_loss_and_renders_eagerly(method, data, demo):
    """The default of long runs on a bf16 CPU (bf16 autocast and torch.compile, BENCHMARKS.md) trains the same way."""
    config = method.make_config({**TINY, "amp": "bf16", "compile": "on"})
    fast = Run(method, config, data)
    first, last = fast.ctx.history[0], fast.ctx.history[-1]
    assert last["cycle_fwd"] < 0.7 * first["cycle_fwd"] and last["cycle_bwd"] < 0.7 * first["cycle_bwd"]
    clip = demo.select("piano")[0].audio
    out = method.transfer(config, fast.states[30], clip, 22050, "x2y")  # a fresh, uncompiled generator
    assert out.shape == clip.shape and np.isfinite(out).all() and np.abs(out).max() > 1e-3


def test_exploding_lr_fails_with_a_clear_reason(method, data):
    config = method.make_config({**TINY, "lr": 1e30, "steps": 10, "report_every": 1, "checkpoint_every": 1})
    ctx = TrialContext()
    with pytest.raises(FloatingPointError, match=r"cyclegan: .*step \d+.*(loss|parameter|output).* became .*lower lr"):
        method.train(config, data, ctx)
    # nothing non-finite was reported or checkpointed before the failure
    assert all(np.isfinite(v) for h in ctx.history for v in h.values())
    assert ctx.last_state is None or all(torch.isfinite(t).all() for t in ctx.last_state["modules"]["G_xy"].values())


def test_transfer_of_a_long_clip_keeps_its_length(method, config, run, demo):
    piano = [c.audio for c in demo.select("piano")[:3]]
    long = np.concatenate(piano)[: int(7.3 * 22050)]  # ~110 patches' worth of frames at hop 64, odd length
    state = run.states[30]
    for direction in ("x2y", "y2x"):
        out = method.transfer(config, state, long, 22050, direction)
        assert out.shape == long.shape and out.dtype == np.float32
        assert np.isfinite(out).all() and np.abs(out).max() > 1e-3
    at_16k = method.render(config, state, long[: 16000 * 5], 16000)  # other sample rate: resampled both ways
    assert at_16k.shape == (16000 * 5,)
    with pytest.raises(AudiostyleError, match="direction='sideways'"):
        method.transfer(config, state, long, 22050, "sideways")


def test_spectrogram_scaling_keeps_full_scale_audio_in_range_and_round_trips(config, demo):
    t = np.arange(22050) / 22050
    loudest = [np.sign(np.sin(2 * np.pi * 440 * t)), np.ones(22050), demo.clips[0].audio]  # square, DC, a clip
    for y in loudest:
        mag = np.abs(A.stft(y.astype(np.float32), config.stft))
        x = normalise(mag, config)
        assert x.min() >= -1 and x.max() <= 1
        np.testing.assert_allclose(denormalise(x, config), mag, rtol=1e-3, atol=1e-3)
    assert normalise(np.zeros((2, 2)), config).max() == -1.0  # silence


def test_split_test_scores_the_test_melodies_of_both_domains(method, demo):
    scored = {}
    for split in ("val", "test"):
        data = method.prepare(demo, method.make_config({**TINY, "split": split, "val_clips": 100}))
        scored[split] = {c.name for side in ("x", "y") for c in data.val[side]}
        assert scored[split] == {c.name for d in ("piano", "guitar") for c in demo.select(d, split)}
    assert not scored["val"] & scored["test"]
    with pytest.raises(AudiostyleError, match="split"):
        method.make_config({"split": "train"})


def test_config_rejects_shapes_the_generator_cannot_take(method):
    with pytest.raises(AudiostyleError, match="divisible by 2\\*\\*n_down=4"):
        method.make_config({"n_fft": 101, "hop_length": 25})
    with pytest.raises(AudiostyleError, match="two different domains"):
        method.make_config({"domain_x": "piano", "domain_y": "piano"})
    assert set(method.default_space()) >= {"lambda_adv", "lambda_fwd", "lambda_bwd", "lambda_id", "lr", "n_blocks",
                                          "pool_size", "ngf"}
    for known in method.best_known():
        method.make_config(known)
