"""The shared training loop (audiostyle.methods.trained) driven by a small real method: a dropout MLP autoencoder."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from audiostyle.errors import AudiostyleError
from audiostyle.methods.base import TrialContext
from audiostyle.metrics import Objective
from audiostyle.methods.domain_pair import mean_over_directions
from audiostyle.methods.precision import NATIVE_BF16_CPU_FLAGS, compile_modules, resolve_amp, trial_amp
from audiostyle.methods.spectrogram import translate_spectrogram
from audiostyle.methods.trained import AMP_METRIC, Amp, Parts, TrainConfig, TrainedMethod


@dataclass
class MlpToyConfig(TrainConfig):
    steps: int = 12
    batch_size: int = 4
    lr: float = 1e-2
    report_every: int = 3
    checkpoint_every: int = 6
    nan_at: int = 0  # poison the batch at this step (0 = never)


class Counter:
    """A stateful helper the checkpoint must carry."""

    def __init__(self) -> None:
        self.n = 0

    def state_dict(self) -> dict[str, Any]:
        return {"n": self.n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n = state["n"]


class MlpToy(TrainedMethod):
    name = "mlp_toy"  # not registered: the sweep tests register tests.toy_method.Toy as "toy"
    Config = MlpToyConfig
    headline = Objective("val_mse", "min")

    @classmethod
    def default_space(cls):
        return {}

    def prepare(self, dataset, config):
        return np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)

    def build(self, config, data, device):
        net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Dropout(0.2), torch.nn.Linear(16, 8)).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=config.lr)
        return Parts(
            modules={"net": net},
            optimizers={"opt": opt},
            schedulers={"sched": torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)},
            stateful={"counter": Counter()},
        )

    def sample(self, config, data, rng):
        return data[rng.integers(0, len(data), config.batch_size)]

    def train_step(self, parts, batch, step, amp):
        cfg = parts.config
        if cfg.nan_at and step == cfg.nan_at:
            batch = batch * float("nan")
        parts.stateful["counter"].n += 1
        opt = parts.optimizers["opt"]
        opt.zero_grad(set_to_none=True)
        with amp.autocast():
            loss = (parts.modules["net"](batch) - batch).square().mean()
        amp.backward(loss)
        amp.step(opt)
        return {"recon": loss.detach(), "count": float(parts.stateful["counter"].n)}

    def evaluate(self, parts, config, data, device):
        torch.rand(7)  # evaluation randomness must not perturb training
        np.random.rand(3)
        x = torch.from_numpy(data[:16]).to(device)
        return {"val_mse": float((parts.modules["net"](x) - x).square().mean())}

    def write_artifacts(self, parts, config, data, out_dir):
        (out_dir / "sample.txt").write_text(str(parts.stateful["counter"].n))

    def render(self, config, state, audio, sr, *, style=None, device="cpu"):
        self.restore_modules(config, state, device)  # the checkpoint must load
        return audio


def _run(config: MlpToyConfig, resume: Any = None) -> tuple[TrialContext, dict[int, Any], dict[str, float]]:
    states: dict[int, Any] = {}

    def report(step, metrics, state=None):
        if state is not None:
            states[step] = state

    ctx = TrialContext(report=report, resume_state=resume)
    final = MlpToy().train(config, MlpToy().prepare(None, config), ctx)
    return ctx, states, final


def _roundtrip(state: Any) -> Any:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_reports_at_cadence_with_checkpoints_and_final_metrics():
    ctx, states, final = _run(MlpToy.make_config())
    assert [h["step"] for h in ctx.history] == [3, 6, 9, 12]
    assert sorted(states) == [6, 12]
    assert final == {k: v for k, v in ctx.history[-1].items() if k != "step"}
    assert set(final) == {"val_mse", "recon", "count", AMP_METRIC}
    # losses are means over the steps since the last report: the counter went 1..3, 4..6, ...
    assert [h["count"] for h in ctx.history] == [2.0, 5.0, 8.0, 11.0]
    assert states[12]["step"] == 12 and states[12]["stateful"]["counter"]["n"] == 12
    assert ctx.history[-1]["val_mse"] < ctx.history[0]["val_mse"]


def test_resume_continues_to_bit_identical_losses():
    config = MlpToy.make_config()
    ctx_full, states, _ = _run(config)
    ctx_resumed, states2, _ = _run(config, resume=_roundtrip(states[6]))
    assert [h["step"] for h in ctx_resumed.history] == [9, 12]
    assert ctx_resumed.history == ctx_full.history[2:]
    for name, tensor in states[12]["modules"]["net"].items():
        assert torch.equal(tensor, states2[12]["modules"]["net"][name])
    assert states2[12]["schedulers"]["sched"] == states[12]["schedulers"]["sched"]


def test_artifacts_are_written_before_each_checkpoint_report(tmp_path):
    seen = []

    def report(step, metrics, state=None):
        seen.append((step, state is not None, (tmp_path / "sample.txt").read_text() if state else None))

    MlpToy().train(MlpToy.make_config(), MlpToy().prepare(None, None), TrialContext(report=report, artifact_dir=tmp_path))
    assert seen == [(3, False, None), (6, True, "6"), (9, False, None), (12, True, "12")]


def test_evaluation_does_not_perturb_training():
    _, a, _ = _run(MlpToy.make_config({"report_every": 1, "checkpoint_every": 0}))
    _, b, _ = _run(MlpToy.make_config({"report_every": 6, "checkpoint_every": 0}))
    for name, tensor in a[12]["modules"]["net"].items():
        assert torch.equal(tensor, b[12]["modules"]["net"][name])


def test_changed_config_on_resume_takes_new_optimizer_hyperparameters():
    _, states, _ = _run(MlpToy.make_config())
    parts_lr = []

    class Spy(MlpToy):
        def train_step(self, parts, batch, step, amp):
            parts_lr.append(parts.optimizers["opt"].param_groups[0]["initial_lr"])
            return super().train_step(parts, batch, step, amp)

    Spy().train(MlpToy.make_config({"lr": 0.5}), MlpToy().prepare(None, None), TrialContext(resume_state=states[6]))
    assert parts_lr and all(lr == 0.5 for lr in parts_lr)


def test_nan_loss_fails_with_clear_reason_and_keeps_last_state():
    config = MlpToy.make_config({"nan_at": 8})
    ctx = TrialContext()
    with pytest.raises(FloatingPointError, match=r"loss 'recon' became nan at step 8 .*lower lr or enable gradient"):
        MlpToy().train(config, MlpToy().prepare(None, config), ctx)
    assert [h["step"] for h in ctx.history] == [3, 6]
    assert ctx.last_state["step"] == 6
    assert all(torch.isfinite(t).all() for t in ctx.last_state["modules"]["net"].values())


def test_state_is_weights_only_loadable_and_renders():
    _, states, _ = _run(MlpToy.make_config())
    state = _roundtrip(states[12])
    modules = MlpToy().restore_modules(MlpToy.make_config(), state)
    assert not modules["net"].training
    with pytest.raises(AudiostyleError, match="render needs the trained state"):
        MlpToy().restore_modules(MlpToy.make_config(), None)
    broken = {**state, "modules": {}}
    with pytest.raises(AudiostyleError, match="lacks module"):
        MlpToy().restore_modules(MlpToy.make_config(), broken)


def test_config_validation_names_the_fix():
    with pytest.raises(AudiostyleError, match="checkpoint_every=5 is not a multiple of report_every=3"):
        MlpToy.make_config({"checkpoint_every": 5})
    with pytest.raises(AudiostyleError, match="amp='int8'"):
        MlpToy.make_config({"amp": "int8"})
    with pytest.raises(AudiostyleError, match="unknown config key"):
        MlpToy.make_config({"stepz": 3})


def test_fp16_is_ignored_on_cpu_with_a_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="audiostyle.methods.precision"):
        amp = Amp("fp16", torch.device("cpu"))
    assert amp.mode == "none" and amp.scaler is None
    assert "ignored on cpu" in caplog.text


def test_bf16_autocasts_on_cpu_and_trains():
    amp = Amp("bf16", torch.device("cpu"))
    with amp.autocast():
        out = torch.nn.Linear(8, 8)(torch.ones(2, 8))
    assert out.dtype == torch.bfloat16
    _, _, final = _run(MlpToy.make_config({"amp": "bf16", "steps": 30, "report_every": 10, "checkpoint_every": 30}))
    _, _, first = _run(MlpToy.make_config({"amp": "bf16", "steps": 1, "report_every": 1, "checkpoint_every": 1}))
    assert final["val_mse"] < 0.7 * first["val_mse"]


def test_amp_auto_is_bf16_only_on_native_hardware_for_methods_that_allow_it():
    avx512_bf16, amx, plain = {"avx2", "avx512f", "avx512_bf16"}, {"amx_bf16", "amx_tile"}, {"avx2", "avx512f"}
    assert resolve_amp("auto", "bf16", "cpu", avx512_bf16, False) == "bf16"
    assert resolve_amp("auto", "bf16", "cpu", amx, False) == "bf16"
    assert resolve_amp("auto", "bf16", "cpu", plain, False) == "none"  # emulated bf16 is slower than float32
    assert resolve_amp("auto", "bf16", "cuda", plain, True) == "bf16"
    assert resolve_amp("auto", "bf16", "cuda", avx512_bf16, False) == "none"  # the GPU decides on CUDA
    assert resolve_amp("auto", "none", "cpu", avx512_bf16, False) == "none"  # the method keeps float32
    for explicit in ("none", "bf16", "fp16"):
        assert resolve_amp(explicit, "none", "cpu", plain, False) == explicit


def test_amp_auto_on_this_cpu_follows_its_flags():
    flags = next((set(line.split(":", 1)[1].split()) for line in open("/proc/cpuinfo") if line.startswith("flags")),
                 set())
    native = bool(flags & NATIVE_BF16_CPU_FLAGS)
    config = MlpToy.make_config({})
    assert config.amp == "auto"
    assert trial_amp(config, "bf16", torch.device("cpu")) == ("bf16" if native else "none")
    assert trial_amp(config, "none", torch.device("cpu")) == "none"
    if native:  # torch's own check agrees with the flags
        assert torch.ops.mkldnn._is_mkldnn_bf16_supported()


class AutoBf16Toy(MlpToy):
    auto_amp = "bf16"


def test_the_resolved_precision_reaches_the_checkpoint_and_every_report(tmp_path):
    """Every report carries AMP_METRIC (so the store row has it as a metric column) and the checkpoint the value."""
    expected = trial_amp(MlpToy.make_config({}), "bf16", torch.device("cpu"))
    states: dict[int, Any] = {}
    ctx = TrialContext(report=lambda step, metrics, state=None: states.setdefault(step, state))
    config = AutoBf16Toy.make_config({"steps": 3, "report_every": 3, "checkpoint_every": 3})
    final = AutoBf16Toy().train(config, MlpToy().prepare(None, config), ctx)
    assert final[AMP_METRIC] == float(expected == "bf16")
    assert all(h[AMP_METRIC] == final[AMP_METRIC] for h in ctx.history)
    assert states[3]["config"]["amp"] == expected


class Traced(torch.nn.Linear):
    """Records, per forward, whether torch.compile is tracing it (True) or it runs eagerly (False)."""

    seen: list[tuple[bool, bool]] = []  # (training, compiling)

    def forward(self, x):
        Traced.seen.append((self.training, torch.compiler.is_compiling()))
        return super().forward(x)


class CompiledToy(MlpToy):
    def build(self, config, data, device):
        parts = super().build(config, data, device)
        net = torch.nn.Sequential(Traced(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8)).to(device)
        parts.modules["net"] = net
        parts.optimizers["opt"] = torch.optim.Adam(net.parameters(), lr=config.lr)
        parts.schedulers = {}
        return parts


@pytest.mark.slow
def test_compile_on_trains_compiled_and_evaluates_eagerly():
    Traced.seen.clear()
    states: dict[int, Any] = {}
    ctx = TrialContext(report=lambda step, metrics, state=None: states.setdefault(step, state))
    config = MlpToy.make_config({"compile": "on", "steps": 6})
    CompiledToy().train(config, MlpToy().prepare(None, config), ctx)
    assert (True, True) in Traced.seen  # training forward traced by dynamo
    assert (False, True) not in Traced.seen and (False, False) in Traced.seen  # evaluation eager
    eager_keys = set(CompiledToy().build(config, None, torch.device("cpu")).modules["net"].state_dict())
    assert set(states[6]["modules"]["net"]) == eager_keys  # checkpoints load into uncompiled modules


def test_compile_auto_skips_short_runs_and_on_without_compiler_names_the_fix(monkeypatch):
    Traced.seen.clear()
    config = MlpToy.make_config({"compile": "auto", "steps": 3})
    CompiledToy().train(config, MlpToy().prepare(None, config), TrialContext(report=lambda *a, **k: None))
    assert Traced.seen and not any(compiling for _, compiling in Traced.seen)
    cpu = torch.device("cpu")
    long_fp32, long_bf16 = (MlpToy.make_config({"compile": "auto", "steps": 2000, "amp": a}) for a in ("none", "bf16"))
    assert not compile_modules(MlpToy().build(long_fp32, None, cpu).modules, long_fp32, cpu, "toy")  # fp32 CPU: no time gain
    assert compile_modules(MlpToy().build(long_bf16, None, cpu).modules, long_bf16, cpu, "toy")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(AudiostyleError, match="compile='on' needs a C\\+\\+ compiler"):
        _run(MlpToy.make_config({"compile": "on"}))


def test_grad_clip_bounds_the_update():
    net = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    (net(torch.full((2, 4), 1e3)).sum()).backward()
    before = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
    Amp("none", torch.device("cpu"), grad_clip=0.5).step(opt)
    after = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert torch.linalg.vector_norm(after - before) == pytest.approx(0.5, rel=1e-4)


def test_translate_spectrogram_stitches_any_length_without_change_for_identity():
    spec = np.random.default_rng(1).normal(size=(16, 150)).astype(np.float32)
    out = translate_spectrogram(lambda t: t, spec, 32, channels_last=True, pad_value=-1.0, batch=3)
    assert out.shape == spec.shape
    np.testing.assert_allclose(out, spec, atol=1e-6)


def test_mean_over_directions_averages_every_column_and_keeps_each_score():
    from audiostyle import metrics

    common = {name: 0.5 for name in metrics.COMMON_METRICS}
    common.update(melody=0.8, timbre_dist=2.0, lsd_db=float("nan"), fad=4.0, transfer_score=0.6)
    other = {**common, "melody": 0.4, "timbre_dist": 4.0, "fad": 6.0, "lsd_db": 10.0, "transfer_score": 0.2}
    row = mean_over_directions({"x2y": common, "y2x": other})
    assert row["fad"] == 5.0 and row["lsd_db"] == 10.0 and row["melody"] == pytest.approx(0.6)
    assert row["transfer_score"] == pytest.approx(0.4)
    assert row["transfer_score_x2y"] == 0.6 and row["transfer_score_y2x"] == 0.2
    one = mean_over_directions({"x2y": common, "y2x": other}, scored="y2x")  # the sweep optimises y2x alone
    assert one["transfer_score"] == 0.2 and one["melody"] == 0.4 and one["fad"] == 6.0 and one["lsd_db"] == 10.0
    assert one["transfer_score_x2y"] == 0.6 and one["transfer_score_y2x"] == 0.2


@dataclass
class TinyGANConfig(TrainConfig):
    steps: int = 150
    batch_size: int = 32
    lr: float = 1e-6  # the generator's: it barely moves
    lr_d: float = 0.05
    report_every: int = 10
    checkpoint_every: int = 0


class TinyGAN(TrainedMethod):
    """A 1-D least-squares GAN whose generator is too slow to follow its discriminator: the discriminator wins."""

    name = "tiny_gan"
    Config = TinyGANConfig
    headline = Objective("fad", "min")

    @classmethod
    def default_space(cls):
        return {}

    def prepare(self, dataset, config):
        return np.random.default_rng(0).normal(3.0, 0.5, (512, 1)).astype(np.float32)

    def build(self, config, data, device):
        g, d = torch.nn.Linear(2, 1), torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        return Parts(modules={"g": g, "d": d}, optimizers={"g": torch.optim.Adam(g.parameters(), lr=config.lr),
                                                           "d": torch.optim.Adam(d.parameters(), lr=config.lr_d)})

    def sample(self, config, data, rng):
        return data[rng.integers(0, len(data), config.batch_size)], rng.normal(size=(config.batch_size, 2)).astype(np.float32)

    def discriminator_losses(self, config):
        return ("loss_d",)

    def train_step(self, parts, batch, step, amp):
        real, noise = batch
        g, d = parts.modules["g"], parts.modules["d"]
        fake = g(noise)
        parts.optimizers["g"].zero_grad()
        loss_g = (d(fake) - 1).square().mean()
        loss_g.backward()
        parts.optimizers["g"].step()
        parts.optimizers["d"].zero_grad()
        loss_d = 0.5 * ((d(real) - 1).square().mean() + d(fake.detach()).square().mean())
        loss_d.backward()
        parts.optimizers["d"].step()
        return {"loss_g": loss_g.detach(), "loss_d": loss_d.detach()}

    def evaluate(self, parts, config, data, device):
        return {"fad": 1.0}

    def render(self, config, state, audio, sr, *, style=None, device="cpu"):
        return audio


def test_a_discriminator_that_wins_outright_flags_the_reports_diverged():
    from audiostyle.methods.base import DIVERGED
    from audiostyle.methods.trained import D_WINS_LOSS

    ctx = TrialContext()
    TinyGAN().train(TinyGAN.make_config(), TinyGAN().prepare(None, None), ctx)
    first, last = ctx.history[0], ctx.history[-1]
    assert first["loss_d"] > D_WINS_LOSS and first[DIVERGED] == 0.0  # step 10: still learning to tell them apart
    assert last["loss_d"] < D_WINS_LOSS and last[DIVERGED] == 1.0
    assert DIVERGED not in _run(MlpToy.make_config())[0].history[-1]  # no discriminator: no flag
