"""The shared training loop of every trained method (cyclegan, segnet/unet, spec_gan, wave_vae).

A trained method subclasses :class:`TrainedMethod` and supplies only its parts and its step; the loop
here does everything else once: seeding, device placement, mixed precision, the step loop, NaN/inf
checks, reports with the common metrics, checkpoints (models, optimisers, schedulers, pools, step and
every RNG state) and exact resume.

How a method plugs in
---------------------
::

    from dataclasses import dataclass
    import torch
    from audiostyle.methods.trained import Amp, Parts, TrainConfig, TrainedMethod

    @dataclass
    class MyConfig(TrainConfig):           # inherits steps, batch_size, lr, report_every,
        batch_size: int = 16               # checkpoint_every, amp, grad_clip, seed
        lr: float = 1e-3                   # (redeclare a field to change its default)
        hidden: int = 64

        def __post_init__(self) -> None:
            super().__post_init__()        # validates the shared fields
            check_range("hidden", self.hidden, 1, 4096)

    class MyMethod(TrainedMethod):
        name = "my_method"
        Config = MyConfig
        headline = HEADLINE_OBJECTIVE           # audiostyle.metrics

        def prepare(self, dataset, config):            # once per sweep: arrays, picklable
            ...
        def build(self, config, data, device) -> Parts:
            # ``data`` is None when render() rebuilds the modules: take shapes from ``config``.
            net = Net(config.hidden).to(device)
            return Parts(modules={"net": net},
                         optimizers={"opt": torch.optim.Adam(net.parameters(), lr=config.lr)})
        def sample(self, config, data, rng):           # one batch; ALL randomness from ``rng``
            idx = rng.integers(0, len(data.x), config.batch_size)
            return data.x[idx]                         # ndarray/tensor (or tuple/list/dict of them):
                                                       # the loop moves it to the device
        def train_step(self, parts, batch, step, amp):     # parts.config is the trial's config
            net, opt = parts.modules["net"], parts.optimizers["opt"]
            opt.zero_grad(set_to_none=True)
            with amp.autocast():
                loss = (net(batch) - batch).abs().mean()
            amp.backward(loss)
            amp.step(opt)                              # unscale (fp16), clip (grad_clip), step
            return {"loss": loss.detach()}             # floats or 0-d tensors (one sync per step)
        def evaluate(self, parts, config, data, device):
            # runs under torch.no_grad(), modules in eval() mode, RNG forked (does not perturb
            # training); use a FIXED validation batch; return the common metrics + extras
            return {**audiostyle.metrics.evaluate(...), "recon_mae": ...}
        def render(self, config, state, audio, sr, *, style=None, device="cpu"):
            net = self.restore_modules(config, state, device)["net"]
            ...

    final = MyMethod().train(config, data, TrialContext(report=print))

Contract of the loop
--------------------
- Seeds: ``numpy.random.SeedSequence([config.seed, ctx.seed])`` seeds torch (CPU and CUDA), numpy's and
  Python's global generators and the batch generator passed to :meth:`TrainedMethod.sample`.
- Device: ``ctx.device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``); batches are moved there (ndarrays become
  tensors). On CUDA ``torch.backends.cudnn.benchmark`` is switched on.
- Mixed precision: ``config.amp`` is ``"auto"``, ``"none"``, ``"bf16"`` (autocast, CUDA or CPU) or ``"fp16"``
  (autocast plus a ``GradScaler``; CUDA only, ignored elsewhere with a log line). ``"auto"`` is resolved first
  (:func:`~audiostyle.methods.precision.trial_amp`), so ``parts.config.amp`` and the checkpoint hold the precision
  used, and every report carries it as the metric :data:`AMP_METRIC`. Steps use
  :class:`~audiostyle.methods.precision.Amp`.
- Compilation: ``config.compile`` (``"auto"``, ``"on"``, ``"off"``) compiles the modules for training with
  ``torch.compile`` (see :func:`~audiostyle.methods.precision.compile_modules`); evaluation and rendering stay eager.
- Steps ``1 … config.steps``; after each :meth:`TrainedMethod.train_step` the loop steps every scheduler
  of :class:`~audiostyle.methods.checkpoint.Parts` once and checks every returned loss: a NaN or infinite one raises
  ``FloatingPointError("<method>: loss 'g_adv' became nan at step 123 …; lower lr … or set grad_clip …")``.
  Before each report the parameters are checked too (a step can leave NaN weights behind finite losses): the
  error then names the parameter. The last reported state stays valid (reports carry CPU copies).
- Every ``config.report_every`` steps and at the last step: ``ctx.report(step, metrics)`` with the
  :meth:`TrainedMethod.evaluate` metrics plus the mean of each loss since the last report (under the
  loss's own name, so loss names must not clash with metric names). Every ``config.checkpoint_every``
  steps (a multiple of ``report_every``; 0 = only at the end) and at the last step the report carries
  ``state`` (see :func:`~audiostyle.methods.checkpoint.capture_state`): torch-saveable with ``weights_only=True``.
- Resume: ``ctx.resume_state`` restores everything and the run continues to bit-identical losses on
  CPU. When the config changed since the checkpoint (PBT exploit/explore), the freshly built optimisers'
  hyper-parameters (lr, betas, …) replace the checkpoint's.
- Artifacts: with every checkpoint (so also at the end), when ``ctx.artifact_dir`` is set,
  ``write_artifacts(parts, config, data, ctx.artifact_dir)`` runs (under :func:`evaluation`) just before the
  report, so a trial the scheduler stops early keeps its latest samples. ``train`` returns the final report's
  metrics.

The loop's parts live beside it, one job a module: :mod:`~audiostyle.methods.precision` (mixed precision, the CPU
features it needs, compilation), :mod:`~audiostyle.methods.checkpoint` (:class:`Parts`, checkpoint and RNG state),
:mod:`~audiostyle.methods.domain_pair` (the base of the methods that translate between two domains, and
:func:`~audiostyle.methods.domain_pair.mean_over_directions`: their directions' metrics as one row),
:mod:`~audiostyle.methods.spectrogram` (:func:`~audiostyle.methods.spectrogram.translate_spectrogram`: a
patch-to-patch network over a spectrogram of any length) and :func:`audiostyle.methods.examples.write_examples`
(each output beside its inputs, one figure).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from audiostyle.errors import AudiostyleError, check_choice, check_positive, check_range
from audiostyle.methods.base import DIVERGED, PRESET_NONE, Method, TrialContext
from audiostyle.methods.checkpoint import Parts, capture_state, check_state, restore_state
from audiostyle.methods.precision import AMP_MODES, Amp, compile_modules, trial_amp

log = logging.getLogger(__name__)

AMP_METRIC = "amp_bf16"
"""Metric every report carries: 1.0 when the trial's forward passes ran under bf16 autocast, 0.0 in float32 (or
fp16, which only an explicit ``amp="fp16"`` selects); the store's trial row keeps it as ``metric.amp_bf16``."""

D_WINS_LOSS = 0.02
"""A discriminator loss (BCE or least squares, floor 0) whose mean over a report interval is below this wins outright:
its outputs sit within about a tenth of their labels on real and generated batches alike (:data:`DIVERGED`)."""

Batch = Any
"""A tensor or ndarray, or a tuple/list/dict of them (nested), as returned by ``sample``."""


# -- config --------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """Fields every trained method shares (subclass it; redeclare a field to change its default).

    Attributes
    ----------
    steps : int
        Optimiser steps (iterations) in total.
    batch_size : int
        Examples per step.
    lr : float
        Base learning rate (methods with several optimisers may add their own fields).
    report_every : int
        Steps between reports with the evaluation metrics.
    checkpoint_every : int
        Steps between reports that carry the checkpoint ``state``; a multiple of ``report_every``,
        0 = only at the last step.
    amp : str
        ``"auto"`` (default), ``"none"``, ``"bf16"`` or ``"fp16"`` mixed precision. bf16 runs on CUDA and on the
        CPU (twice the convolution speed on CPUs with AVX512-BF16 or AMX); fp16 runs on CUDA only (float32
        elsewhere). ``"auto"`` is bf16 where the hardware runs it natively and the method's
        :attr:`TrainedMethod.auto_amp` allows it, else float32 (:func:`~audiostyle.methods.precision.resolve_amp`;
        the loop resolves it per trial).
    compile : str
        ``"on"``: compile the modules with ``torch.compile`` for training (fused kernels: with bf16 a cyclegan
        step on the CPU takes 0.9× the eager time and 0.7× the memory; in float32 only the memory drops);
        ``"off"``: eager; ``"auto"``: on for runs of at least
        :data:`~audiostyle.methods.precision.COMPILE_AUTO_STEPS` steps on CUDA or with mixed precision, where a
        compiler is available (compiling costs one to two minutes once per trial), else off. Evaluation always
        runs eagerly.
    grad_clip : float
        Clip each optimiser's gradient norm to this value; 0 = no clipping.
    seed : int
        Seed of the trial (combined with the context's seed).
    preset : str
        The named preset (:meth:`~audiostyle.methods.base.Method.presets`) the config was built from, ``"none"``
        for the reports' defaults; recorded with the trial as ``config.preset``.
    """

    steps: int = 10_000
    batch_size: int = 8
    lr: float = 1e-3
    report_every: int = 500
    checkpoint_every: int = 500
    amp: str = "auto"
    compile: str = "auto"
    grad_clip: float = 0.0
    seed: int = 0
    preset: str = PRESET_NONE

    def __post_init__(self) -> None:
        check_range("steps", self.steps, 1, 10**9)
        check_range("batch_size", self.batch_size, 1, 65_536)
        check_positive("lr", self.lr, fix="Use a positive learning rate, e.g. 2e-4.")
        check_range("report_every", self.report_every, 1, 10**9)
        check_range("checkpoint_every", self.checkpoint_every, 0, 10**9)
        if self.checkpoint_every % self.report_every:
            raise AudiostyleError(
                f"checkpoint_every={self.checkpoint_every} is not a multiple of report_every={self.report_every}: "
                "checkpoints ride on reports; use e.g. checkpoint_every=report_every or 0 (only at the end)."
            )
        check_choice("amp", self.amp, AMP_MODES)
        check_choice("compile", self.compile, ("auto", "on", "off"))
        check_range("grad_clip", self.grad_clip, 0.0, math.inf, fix="Use 0 for no clipping.")


# -- helpers -------------------------------------------------------------------------------------
def seed(config_seed: int, ctx_seed: int) -> np.random.Generator:
    """Seed torch (CPU and CUDA), numpy's and Python's global generators from
    ``numpy.random.SeedSequence([config_seed, ctx_seed])``; return the batch generator, seeded from the same
    sequence."""
    seeds = np.random.SeedSequence([int(config_seed), int(ctx_seed)]).generate_state(4)
    torch.manual_seed(int(seeds[0]))
    np.random.seed(int(seeds[1]))
    random.seed(int(seeds[2]))
    return np.random.default_rng(int(seeds[3]))


def resolve_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``; a CUDA device that is not available raises :class:`AudiostyleError`."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AudiostyleError(f"device={str(device)!r} but CUDA is not available here: use device='cpu'.")
    return dev


def to_device(batch: Batch, device: torch.device) -> Batch:
    """``batch`` with every ndarray/tensor (nested in tuples, lists, dicts) on ``device``."""
    if isinstance(batch, np.ndarray):
        batch = torch.from_numpy(batch)
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _finite_losses(losses: Mapping[str, Any], step: int, who: str, config: Any) -> dict[str, float]:
    """Losses as floats (one device sync); raise FloatingPointError naming the first non-finite one."""
    names = list(losses)
    tensors = [v.detach().float().reshape(()) if isinstance(v, torch.Tensor) else None for v in losses.values()]
    on_device = [t for t in tensors if t is not None]
    values = torch.stack(on_device).tolist() if on_device else []
    it = iter(values)
    out = {n: (next(it) if t is not None else float(v)) for n, t, v in zip(names, tensors, losses.values())}
    for name, value in out.items():
        if not math.isfinite(value):
            raise FloatingPointError(
                f"{who}: loss {name!r} became {value} at step {step} (lr={getattr(config, 'lr', '?')}, "
                f"grad_clip={getattr(config, 'grad_clip', '?')}); lower lr or enable gradient clipping "
                "(grad_clip=1.0), or check the input data for NaNs."
            )
    return out


def _check_finite_modules(parts: Parts, step: int, who: str, config: Any) -> None:
    """Raise FloatingPointError naming the first parameter that is NaN or infinite (before evaluating or saving)."""
    for mname, module in parts.modules.items():
        for pname, p in module.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise FloatingPointError(
                    f"{who}: parameter '{mname}.{pname}' became non-finite (nan/inf) by step {step} "
                    f"(lr={getattr(config, 'lr', '?')}, grad_clip={getattr(config, 'grad_clip', '?')}); "
                    "lower lr or enable gradient clipping (grad_clip=1.0)."
                )


@contextlib.contextmanager
def evaluation(parts: Parts, device: torch.device) -> Iterator[None]:
    """Modules in eval mode, eager (not compiled), no grad, every RNG forked (restored on exit), train mode restored."""
    modes = {k: m.training for k, m in parts.modules.items()}
    np_state, py_state = np.random.get_state(), random.getstate()
    devices = [device] if device.type == "cuda" else []
    try:
        # eager: a compiled training graph would recompile for every evaluation shape
        with torch.random.fork_rng(devices=devices), torch.no_grad(), torch.compiler.set_stance("force_eager"):
            for m in parts.modules.values():
                m.eval()
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        for k, m in parts.modules.items():
            m.train(modes[k])


# -- the method base -----------------------------------------------------------------------------
class TrainedMethod(Method):
    """A method trained by gradient steps; :meth:`train` is the shared loop (see the module docstring).

    Subclasses implement :meth:`prepare`, :meth:`build`, :meth:`sample`, :meth:`train_step`,
    :meth:`evaluate`, :meth:`render` and optionally :meth:`write_artifacts`.
    """

    Config: ClassVar[type] = TrainConfig
    auto_amp: ClassVar[str] = "none"
    """What ``amp="auto"`` becomes on hardware with native bf16: ``"bf16"`` once ``benchmarks/bench_amp_quality.py``
    shows bf16 training reaches float32's quality for this method and is faster, else ``"none"``
    (``benchmarks/results/amp_quality.md``: cyclegan is bf16, the others float32)."""

    # -- hooks ---------------------------------------------------------------------------------
    @abstractmethod
    def build(self, config: Any, data: Any | None, device: torch.device) -> Parts:
        """Networks (on ``device``), optimisers, schedulers and stateful helpers for ``config``.

        ``data`` is the output of :meth:`prepare`, or None when :meth:`restore_modules` rebuilds the
        networks for rendering: every shape must then follow from ``config``. Initialise weights from
        torch's global generator (the loop seeds it).
        """

    @abstractmethod
    def sample(self, config: Any, data: Any, rng: np.random.Generator) -> Batch:
        """One training batch; every random choice from ``rng`` (checkpointed, so resume is exact)."""

    @abstractmethod
    def train_step(self, parts: Parts, batch: Batch, step: int, amp: Amp) -> Mapping[str, Any]:
        """One optimisation step: zero grads, forward under ``amp.autocast()``, ``amp.backward(loss)``,
        ``amp.step(optimizer)`` for each optimiser. Returns named losses (floats or 0-d tensors)."""

    @abstractmethod
    def evaluate(self, parts: Parts, config: Any, data: Any, device: torch.device) -> dict[str, float]:
        """Metrics on a FIXED validation batch: the common columns of :mod:`audiostyle.metrics` + extras.

        Runs under :func:`evaluation` (no grad, eval mode, forked RNG).
        """

    def discriminator_losses(self, config: Any) -> tuple[str, ...]:
        """Names of the losses :meth:`train_step` returns that are discriminator losses with a floor of 0 (BCE,
        least squares; not a Wasserstein critic's): one below :data:`D_WINS_LOSS` flags the report
        :data:`DIVERGED`. None by default."""
        return ()

    def write_artifacts(self, parts: Parts, config: Any, data: Any, out_dir: Path) -> None:
        """Write audio samples (wav) and figures (png) of the model to ``out_dir`` (optional).

        Called with every checkpoint, before its report (files of the same name are overwritten), under
        :func:`evaluation`. :func:`audiostyle.methods.examples.write_examples` writes the wavs and the figure.
        """

    # -- the loop ------------------------------------------------------------------------------
    def train(self, config: Any, data: Any, ctx: TrialContext) -> dict[str, float]:
        """Train ``config`` on ``data``; report through ``ctx``; return the final metrics.

        The loop's steps, in order: resolve the device and the precision, :func:`seed`, set up (:meth:`_set_up`:
        build, compile, resume), then per step :meth:`_step` and every ``report_every`` steps :meth:`_report`.

        Raises
        ------
        FloatingPointError
            A loss became NaN or infinite (the message names the loss, the step and the fix).
        AudiostyleError
            A bad device or an incompatible ``ctx.resume_state``.
        """
        device = resolve_device(ctx.device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        config = dataclasses.replace(config, amp=trial_amp(config, self.auto_amp, device))  # "auto" resolved
        batch_rng = seed(config.seed, ctx.seed)
        parts, amp, start = self._set_up(config, data, device, ctx.resume_state, batch_rng)

        sums: dict[str, float] = {}
        count = 0
        metrics: dict[str, float] = {}
        for step in range(start + 1, config.steps + 1):
            for name, value in self._step(parts, config, data, step, amp, batch_rng).items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            if step % config.report_every == 0 or step == config.steps:
                means = {k: v / count for k, v in sums.items()}
                metrics = self._report(parts, config, data, ctx, step, amp, batch_rng, means)
                sums, count = {}, 0
        if start >= config.steps:  # resumed from a finished run: report its final state again
            metrics = self._report(parts, config, data, ctx, start, amp, batch_rng, {})
        return metrics

    def _set_up(
        self, config: Any, data: Any, device: torch.device, resume_state: Mapping[str, Any] | None,
        batch_rng: np.random.Generator,
    ) -> tuple[Parts, Amp, int]:
        """The trial's parts (built, in training mode, compiled per ``config.compile``) and :class:`Amp`, restored
        from ``resume_state`` when given; with the step the loop continues after (0 for a fresh run)."""
        parts = self.build(config, data, device)
        parts.config = config
        for m in parts.modules.values():
            m.train()
        compile_modules(parts.modules, config, device, self.name)
        amp = Amp(config.amp, device, config.grad_clip)
        if resume_state is None:
            return parts, amp, 0
        start = restore_state(resume_state, parts, config, amp, batch_rng, self.name)
        log.info("%s: resumed at step %d of %d", self.name, start, config.steps)
        return parts, amp, start

    def _step(
        self, parts: Parts, config: Any, data: Any, step: int, amp: Amp, batch_rng: np.random.Generator
    ) -> dict[str, float]:
        """One training step: a batch from :meth:`sample` on the device, :meth:`train_step`, the loss scale's
        update and every scheduler's step. Returns the step's losses as floats (a non-finite one raises)."""
        batch = to_device(self.sample(config, data, batch_rng), amp.device)
        losses = self.train_step(parts, batch, step, amp)
        amp.update()
        for s in parts.schedulers.values():
            s.step()
        return _finite_losses(losses, step, self.name, config)

    def _report(
        self, parts: Parts, config: Any, data: Any, ctx: TrialContext, step: int, amp: Amp,
        batch_rng: np.random.Generator, losses: Mapping[str, float],
    ) -> dict[str, float]:
        """Evaluate after ``step`` and report the metrics with ``losses`` (each loss's mean since the last report),
        the precision and the divergence flag; with the checkpoint and the artifacts when one is due. Returns the
        metrics."""
        _check_finite_modules(parts, step, self.name, config)
        try:
            with evaluation(parts, amp.device):
                metrics = {k: float(v) for k, v in self.evaluate(parts, config, data, amp.device).items()}
        except FloatingPointError as exc:  # e.g. translate_spectrogram saw a non-finite output
            raise FloatingPointError(f"{self.name}: evaluating step {step}: {exc}") from exc
        metrics.update(losses)
        metrics[AMP_METRIC] = float(config.amp == "bf16")
        judged = [metrics[name] for name in self.discriminator_losses(config) if name in metrics]
        if judged:
            metrics[DIVERGED] = float(min(judged) < D_WINS_LOSS)
        final = step == config.steps
        due = final or (config.checkpoint_every > 0 and step % config.checkpoint_every == 0)
        state = capture_state(parts, step, config, amp, batch_rng) if due else None
        if due and ctx.artifact_dir is not None:  # before the report, so an early-stopped trial keeps samples
            out = Path(ctx.artifact_dir)
            out.mkdir(parents=True, exist_ok=True)
            with evaluation(parts, amp.device):
                self.write_artifacts(parts, config, data, out)
        ctx.report(step, metrics, state)
        return metrics

    # -- rendering -----------------------------------------------------------------------------
    def restore_modules(
        self, config: Any, state: Mapping[str, Any] | None, device: str | torch.device = "cpu", data: Any = None
    ) -> dict[str, nn.Module]:
        """The trained networks of ``state`` (a reported checkpoint) on ``device``, in eval mode.

        ``data`` is passed to :meth:`build` (default None): a method whose shapes depend on the data, not only
        on ``config``, passes what it recorded in ``state`` (e.g. the generators' clip length).
        Raises :class:`AudiostyleError` when ``state`` is None or belongs to another method.
        """
        if state is None:
            raise AudiostyleError(
                f"{self.name}: render needs the trained state (the trial's checkpoint); got None. "
                "Pass the state a trial reported (store column artifact.checkpoint)."
            )
        dev = resolve_device(device)
        parts = self.build(config, data, dev)
        check_state(state, parts, self.name)
        for k, m in parts.modules.items():
            m.load_state_dict(state["modules"][k])
            m.eval()
        return parts.modules
