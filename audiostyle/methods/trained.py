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
  (:func:`trial_amp`), so ``parts.config.amp`` and the checkpoint hold the precision used, and every report
  carries it as the metric :data:`AMP_METRIC`. Steps use :class:`Amp`.
- Compilation: ``config.compile`` (``"auto"``, ``"on"``, ``"off"``) compiles the modules for training with
  ``torch.compile`` (see :func:`compile_modules`); evaluation and rendering stay eager.
- Steps ``1 … config.steps``; after each :meth:`TrainedMethod.train_step` the loop steps every scheduler
  of :class:`Parts` once and checks every returned loss: a NaN or infinite one raises
  ``FloatingPointError("<method>: loss 'g_adv' became nan at step 123 …; lower lr … or set grad_clip …")``.
  Before each report the parameters are checked too (a step can leave NaN weights behind finite losses): the
  error then names the parameter. The last reported state stays valid (reports carry CPU copies).
- Every ``config.report_every`` steps and at the last step: ``ctx.report(step, metrics)`` with the
  :meth:`TrainedMethod.evaluate` metrics plus the mean of each loss since the last report (under the
  loss's own name, so loss names must not clash with metric names). Every ``config.checkpoint_every``
  steps (a multiple of ``report_every``; 0 = only at the end) and at the last step the report carries
  ``state`` (see :func:`capture_state`): torch-saveable with ``weights_only=True``.
- Resume: ``ctx.resume_state`` restores everything and the run continues to bit-identical losses on
  CPU. When the config changed since the checkpoint (PBT exploit/explore), the freshly built optimisers'
  hyper-parameters (lr, betas, …) replace the checkpoint's.
- Artifacts: with every checkpoint (so also at the end), when ``ctx.artifact_dir`` is set,
  ``write_artifacts(parts, config, data, ctx.artifact_dir)`` runs (under :func:`evaluation`) just before the
  report, so a trial the scheduler stops early keeps its latest samples. ``train`` returns the final report's
  metrics.

Helpers for spectrogram methods, so segnet/spec_gan do not rewrite them: :func:`translate_spectrogram` (apply a
patch-to-patch network to a spectrogram of any length: overlapping patches in, cross-faded out),
:func:`mean_over_directions` (the common metrics of several transfer directions as one row), :func:`resample` and
:func:`audiostyle.methods.examples.write_examples` (each output beside its inputs, one figure).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import math
import os
import random
import shutil
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping, Protocol

import numpy as np
import torch
from torch import nn

from audiostyle import audio as A
from audiostyle.errors import AudiostyleError, check_choice, check_positive, check_range
from audiostyle.methods.base import DIVERGED, PRESET_NONE, Method, TrialContext

log = logging.getLogger(__name__)

COMPILE_AUTO_STEPS = 2000
"""``compile="auto"`` compiles runs of at least this many steps (where compiling's minute or two is noise)
on CUDA or with mixed precision (on the CPU in float32 compiling saves memory, not time)."""

AMP_MODES = ("auto", "none", "bf16", "fp16")
"""``TrainConfig.amp`` values; ``"auto"`` is resolved per trial by :func:`resolve_amp`."""

NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""``/proc/cpuinfo`` flags of CPUs that multiply bfloat16 natively (AVX-512 BF16, AMX)."""

AMP_METRIC = "amp_bf16"
"""Metric every report carries: 1.0 when the trial's forward passes ran under bf16 autocast, 0.0 in float32 (or
fp16, which only an explicit ``amp="fp16"`` selects); the store's trial row keeps it as ``metric.amp_bf16``."""

D_WINS_LOSS = 0.02
"""A discriminator loss (BCE or least squares, floor 0) whose mean over a report interval is below this wins outright:
its outputs sit within about a tenth of their labels on real and generated batches alike (:data:`DIVERGED`)."""

STATE_FORMAT = 1
"""Version of the checkpoint dict layout written by :func:`capture_state`."""

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
        :attr:`TrainedMethod.auto_amp` allows it, else float32 (:func:`resolve_amp`; the loop resolves it per trial).
    compile : str
        ``"on"``: compile the modules with ``torch.compile`` for training (fused kernels: with bf16 a cyclegan
        step on the CPU takes 0.9× the eager time and 0.7× the memory; in float32 only the memory drops);
        ``"off"``: eager; ``"auto"``: on for runs of at least :data:`COMPILE_AUTO_STEPS` steps on CUDA or
        with mixed precision, where a compiler is available (compiling costs one to two minutes once per
        trial), else off. Evaluation always runs eagerly.
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


# -- parts ---------------------------------------------------------------------------------------
class Stateful(Protocol):
    """Anything with ``state_dict()``/``load_state_dict()`` (an image pool, an EMA, …)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@dataclass
class Parts:
    """What :meth:`TrainedMethod.build` returns: everything the step uses and a checkpoint holds.

    Attributes
    ----------
    modules : dict of str to nn.Module
        Named networks, already on the device.
    optimizers : dict of str to torch.optim.Optimizer
    schedulers : dict of str to LR scheduler
        Stepped once per training step by the loop, after ``train_step``.
    stateful : dict of str to Stateful
        Other objects whose state the checkpoint must hold (image pools, …). Their randomness should come
        from torch's global generator (checkpointed) or live in their own state.
    config : Any
        The trial's config; set by the loop after :meth:`TrainedMethod.build`, so ``train_step`` can read
        its hyper-parameters as ``parts.config``.
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    schedulers: dict[str, Any] = field(default_factory=dict)
    stateful: dict[str, Stateful] = field(default_factory=dict)
    config: Any = None


class Amp:
    """Mixed precision and optimiser stepping for one trial; ``train_step`` receives it.

    Parameters
    ----------
    mode : str
        ``"none"``, ``"bf16"`` (CUDA or CPU) or ``"fp16"`` (CUDA; ``"none"`` on other devices).
    device : torch.device
    grad_clip : float
        Max gradient norm per optimiser step; 0 = off.
    """

    def __init__(self, mode: str, device: torch.device, grad_clip: float = 0.0) -> None:
        if mode == "bf16" and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            log.warning("amp='bf16' on a CPU without native bfloat16 (AVX512-BF16 or AMX): it will be slower "
                        "than float32; use amp='none' here.")
        if mode == "fp16" and device.type != "cuda":
            log.info("amp='fp16' ignored on %s: fp16 runs on CUDA only; training in float32.", device)
            mode = "none"
        self.mode = mode
        self.device = device
        self.grad_clip = grad_clip
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        self.scaler = torch.amp.GradScaler("cuda") if mode == "fp16" else None
        self._stepped = False  # an optimiser stepped since the scale was last updated

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context for forward passes: ``torch.autocast`` when amp is on, else a no-op."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, scaled when fp16.

        A backward pass after an optimiser step (spec_gan's ``d_steps`` critic updates, the generator's after the
        critic's) first updates the loss scale: a ``GradScaler`` steps each optimiser at most once per update,
        and the gradients of this loss are then scaled and unscaled by the same factor.
        """
        if self._stepped:
            self.update()
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Unscale (fp16), clip to ``grad_clip`` (if set) and step ``optimizer``."""
        if self.grad_clip > 0:
            if self.scaler is not None:
                self.scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self._stepped = True
        else:
            optimizer.step()

    def update(self) -> None:
        """End of a training step (the loop calls it): updates the fp16 loss scale after the step's optimiser steps."""
        if self.scaler is not None and self._stepped:
            self.scaler.update()
            self._stepped = False


def resolve_amp(requested: str, method_auto: str, device_type: str, cpu_flags: frozenset[str] | set[str],
                cuda_bf16: bool) -> str:
    """The precision a trial trains in: a pure function of the request, the method and the hardware.

    Parameters
    ----------
    requested : str
        ``config.amp``; anything but ``"auto"`` is returned unchanged.
    method_auto : str
        The method's :attr:`TrainedMethod.auto_amp`: ``"bf16"`` (bf16 shown to train as well as float32) or
        ``"none"``.
    device_type : str
        ``"cpu"`` or ``"cuda"``.
    cpu_flags : set of str
        The CPU's ``/proc/cpuinfo`` flags (:func:`cpu_flags`); bf16 is native with any of
        :data:`NATIVE_BF16_CPU_FLAGS`.
    cuda_bf16 : bool
        ``torch.cuda.is_bf16_supported()`` on the trial's GPU (False without one).

    Returns
    -------
    str
        ``"bf16"`` when ``"auto"`` meets a method that allows it on hardware that runs it natively, else
        ``"none"`` for ``"auto"``; otherwise ``requested``.
    """
    if requested != "auto":
        return requested
    native = cuda_bf16 if device_type == "cuda" else bool(NATIVE_BF16_CPU_FLAGS & set(cpu_flags))
    return "bf16" if method_auto == "bf16" and native else "none"


def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def trial_amp(config: Any, method_auto: str, device: torch.device) -> str:
    """:func:`resolve_amp` of ``config.amp`` on ``device`` (reads this machine's flags and GPU)."""
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    return resolve_amp(config.amp, method_auto, device.type, cpu_flags(), cuda_bf16)


def _compiler_available(device: torch.device) -> bool:
    """Whether ``torch.compile`` can build kernels for ``device``: Triton on CUDA, a C++ compiler on the CPU."""
    if device.type == "cuda":
        return importlib.util.find_spec("triton") is not None
    return any(shutil.which(c) for c in (os.environ.get("CXX"), "g++", "c++", "clang++") if c)


def compile_modules(parts: Parts, config: Any, device: torch.device, method: str) -> bool:
    """Compile ``parts.modules`` in place (``nn.Module.compile``: state-dict keys unchanged) per ``config.compile``.

    Returns whether they were compiled. ``"on"`` without a compiler raises :class:`AudiostyleError`.
    """
    pays = config.steps >= COMPILE_AUTO_STEPS and (device.type == "cuda" or config.amp != "none")
    mode = config.compile
    if mode == "off" or (mode == "auto" and not pays):
        return False
    if not _compiler_available(device):
        need = "Triton" if device.type == "cuda" else "a C++ compiler (g++ or clang++, or set CXX)"
        if mode == "on":
            raise AudiostyleError(f"{method}: compile='on' needs {need} on this {device.type} machine; "
                                  "install one or use compile='off'.")
        log.info("%s: not compiling (%s has no %s); training eagerly.", method, device.type, need)
        return False
    for m in parts.modules.values():
        m.compile()
    log.info("%s: modules compiled with torch.compile; the first steps include compilation.", method)
    return True


# -- state ---------------------------------------------------------------------------------------
def to_cpu(obj: Any) -> Any:
    """A deep copy of ``obj`` with every tensor detached and copied to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def _rng_state(device: torch.device, batch_rng: np.random.Generator) -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    np_state = {**np_state, "state": {**np_state["state"], "key": np_state["state"]["key"].tolist()}}
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np_state,
        "python": random.getstate(),
        "batch": batch_rng.bit_generator.state,
    }
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def _set_rng_state(state: Mapping[str, Any], device: torch.device, batch_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np_state = dict(state["numpy"])
    np_state["state"] = {**np_state["state"], "key": np.asarray(np_state["state"]["key"], dtype=np.uint32)}
    np.random.set_state(np_state)
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    batch_rng.bit_generator.state = state["batch"]
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def capture_state(
    parts: Parts, step: int, config: Any, amp: Amp, batch_rng: np.random.Generator
) -> dict[str, Any]:
    """The checkpoint dict after ``step``: CPU copies, loadable by ``torch.load(weights_only=True)``.

    Keys: ``format``, ``step``, ``config`` (dict of the config fields), ``modules``, ``optimizers``,
    ``schedulers``, ``stateful`` (name → state_dict), ``scaler`` (or None), ``rng``.
    """
    return {
        "format": STATE_FORMAT,
        "step": step,
        "config": dataclasses.asdict(config),
        "modules": {k: to_cpu(m.state_dict()) for k, m in parts.modules.items()},
        "optimizers": {k: to_cpu(o.state_dict()) for k, o in parts.optimizers.items()},
        "schedulers": {k: to_cpu(s.state_dict()) for k, s in parts.schedulers.items()},
        "stateful": {k: to_cpu(s.state_dict()) for k, s in parts.stateful.items()},
        "scaler": amp.scaler.state_dict() if amp.scaler is not None else None,
        "rng": _rng_state(amp.device, batch_rng),
    }


def _check_state(state: Mapping[str, Any], parts: Parts, who: str) -> None:
    if state.get("format") != STATE_FORMAT:
        raise AudiostyleError(
            f"{who}: checkpoint format {state.get('format')!r} is not {STATE_FORMAT}; "
            "it was written by another audiostyle version: retrain, or render with that version."
        )
    missing = sorted(set(parts.modules) - set(state["modules"]))
    if missing:
        raise AudiostyleError(
            f"{who}: checkpoint lacks module(s) {', '.join(missing)} (has {', '.join(sorted(state['modules']))}); "
            "it belongs to another method or config."
        )


def restore_state(
    state: Mapping[str, Any], parts: Parts, config: Any, amp: Amp, batch_rng: np.random.Generator, who: str
) -> int:
    """Load a :func:`capture_state` dict into ``parts``, the scaler and every RNG; return its step.

    When ``config`` differs from the checkpoint's, the freshly built optimisers' hyper-parameters are kept
    (PBT changes lr and friends between checkpoints) and only the optimiser statistics are loaded. (A scheduler
    then continues from the new config's lr, not from the lr it had reached.)
    """
    _check_state(state, parts, who)
    same_config = state.get("config") == dataclasses.asdict(config)
    for k, m in parts.modules.items():
        m.load_state_dict(state["modules"][k])
    for k, o in parts.optimizers.items():
        fresh = [{h: v for h, v in g.items() if h != "params"} for g in o.param_groups]
        o.load_state_dict(state["optimizers"][k])
        if not same_config:
            for g, hp in zip(o.param_groups, fresh):
                g.update(hp)
    for k, s in parts.schedulers.items():
        s.load_state_dict(state["schedulers"][k])
    for k, s in parts.stateful.items():
        s.load_state_dict(state["stateful"][k])
    if amp.scaler is not None and state.get("scaler"):
        amp.scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"], amp.device, batch_rng)
    if not same_config:
        log.info("%s: resumed from step %d with a changed config; optimiser hyper-parameters from the new config.",
                 who, state["step"])
    return int(state["step"])


# -- helpers -------------------------------------------------------------------------------------
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


# -- spectrogram helpers -------------------------------------------------------------------------
def translate_spectrogram(
    net: Callable[[torch.Tensor], torch.Tensor],
    spec: np.ndarray,
    patch_frames: int,
    device: str | torch.device = "cpu",
    *,
    channels_last: bool = False,
    pad_value: float = 0.0,
    batch: int = 8,
) -> np.ndarray:
    """Apply a patch-to-patch network to a spectrogram of any length, without seams.

    The spectrogram is cut into patches of ``patch_frames`` overlapping by half (:func:`audiostyle.audio.to_patches`),
    translated ``batch`` at a time under ``torch.no_grad()``, and stitched back with raised-cosine cross-fades
    (:func:`audiostyle.audio.from_patches`). A non-finite output raises ``FloatingPointError`` (the loop adds the
    step when this happens during evaluation).

    Parameters
    ----------
    net : callable
        ``(N, 1, F, patch_frames)`` tensor → same shape (e.g. a generator in eval mode).
    spec : np.ndarray
        ``(F, T)`` in the network's input scale.
    patch_frames : int
        Patch width the network was trained on, frames.
    device : str or torch.device
        Where the network lives.
    channels_last : bool
        Feed channels-last tensors.
    pad_value : float
        Fills the frames past the end of ``spec`` (the scale's silence).
    batch : int
        Patches per forward pass.

    Returns
    -------
    np.ndarray
        ``(F, T)`` float32.
    """
    hop = patch_frames // 2
    patches = A.to_patches(np.asarray(spec, dtype=np.float32), size=patch_frames, hop=hop, pad_value=pad_value)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    outs = []
    with torch.no_grad():
        for i in range(0, len(patches), batch):
            t = torch.from_numpy(np.ascontiguousarray(patches[i : i + batch]))[:, None].to(device)
            out = net(t.contiguous(memory_format=fmt)).float()
            if not bool(torch.isfinite(out).all()):
                raise FloatingPointError(
                    "the network's output became non-finite (nan/inf); lower lr or enable gradient clipping "
                    "(grad_clip=1.0)."
                )
            outs.append(out[:, 0].cpu().numpy())
    return A.from_patches(np.concatenate(outs), spec.shape[1], hop=hop)


def mean_over_directions(per_direction: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """One metrics row for a method that transfers in several directions (e.g. ``{"x2y": …, "y2x": …}``).

    Each common column (:data:`audiostyle.metrics.COMMON_METRICS`) is the mean over the directions (NaN ones
    skipped; NaN when all are), the headline (``transfer_score``) among them: a method scores the mean of its
    directions' scores. Each direction's own score is kept as ``transfer_score_<direction>``.
    """
    from audiostyle import metrics

    out: dict[str, float] = {}
    for key in metrics.COMMON_METRICS:
        values = [float(m[key]) for m in per_direction.values() if math.isfinite(float(m[key]))]
        out[key] = float(np.mean(values)) if values else float("nan")
    out.update({f"{metrics.HEADLINE}_{d}": float(m[metrics.HEADLINE]) for d, m in per_direction.items()})
    return out


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
        seeds = np.random.SeedSequence([int(config.seed), int(ctx.seed)]).generate_state(4)
        torch.manual_seed(int(seeds[0]))
        np.random.seed(int(seeds[1]))
        random.seed(int(seeds[2]))
        batch_rng = np.random.default_rng(int(seeds[3]))

        parts = self.build(config, data, device)
        parts.config = config
        for m in parts.modules.values():
            m.train()
        compile_modules(parts, config, device, self.name)
        amp = Amp(config.amp, device, config.grad_clip)
        start = 0
        if ctx.resume_state is not None:
            start = restore_state(ctx.resume_state, parts, config, amp, batch_rng, self.name)
            log.info("%s: resumed at step %d of %d", self.name, start, config.steps)

        sums: dict[str, float] = {}
        count = 0
        metrics: dict[str, float] = {}
        for step in range(start + 1, config.steps + 1):
            batch = to_device(self.sample(config, data, batch_rng), device)
            losses = self.train_step(parts, batch, step, amp)
            amp.update()
            for s in parts.schedulers.values():
                s.step()
            for name, value in _finite_losses(losses, step, self.name, config).items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            if step % config.report_every == 0 or step == config.steps:
                metrics = self._report(parts, config, data, device, ctx, step, amp, batch_rng, sums, count)
                sums, count = {}, 0
        if start >= config.steps:  # resumed from a finished run: report its final state again
            metrics = self._report(parts, config, data, device, ctx, start, amp, batch_rng, {}, 0)
        return metrics

    def _report(
        self,
        parts: Parts,
        config: Any,
        data: Any,
        device: torch.device,
        ctx: TrialContext,
        step: int,
        amp: Amp,
        batch_rng: np.random.Generator,
        sums: Mapping[str, float],
        count: int,
    ) -> dict[str, float]:
        _check_finite_modules(parts, step, self.name, config)
        try:
            with evaluation(parts, device):
                metrics = {k: float(v) for k, v in self.evaluate(parts, config, data, device).items()}
        except FloatingPointError as exc:  # e.g. translate_spectrogram saw a non-finite output
            raise FloatingPointError(f"{self.name}: evaluating step {step}: {exc}") from exc
        metrics.update({k: v / count for k, v in sums.items()} if count else {})
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
            with evaluation(parts, device):
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
        _check_state(state, parts, self.name)
        for k, m in parts.modules.items():
            m.load_state_dict(state["modules"][k])
            m.eval()
        return parts.modules


DIRECTIONS = ("x2y", "y2x")
"""Transfer directions of a :class:`DomainPairMethod`: ``domain_x`` → ``domain_y`` and back."""

SCORED_SPLITS = ("val", "test")
"""Splits a :class:`DomainPairConfig` may score its reports on (never ``"train"``: the model fits it)."""


@dataclass
class DomainPairConfig(TrainConfig):
    """Fields every :class:`DomainPairMethod` config shares (subclass it instead of :class:`TrainConfig`).

    Attributes
    ----------
    split : str
        The split whose clips the reports transfer and score: ``"val"`` while sweeping (hyperparameters are chosen
        on it; the training clips when the dataset has no val split), ``"test"`` for a final table on melodies that
        nothing was fitted or chosen on (``benchmarks/bench_quality.py``; a dataset without a test split raises).
    """

    split: str = "val"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("split", self.split, SCORED_SPLITS)


class DomainPairMethod(TrainedMethod):
    """A trained method that translates between ``config.domain_x`` and ``config.domain_y`` (cyclegan, segnet).

    Subclasses implement :meth:`translate` (a clip at ``config.sr`` with the trained modules); this class
    validates the input, restores the modules, resamples in and out and keeps the length. :meth:`render` is
    ``x2y``, and a sweep loads only the two domains.
    """

    def data_domains(self, config: Any) -> tuple[str, ...]:
        return (config.domain_x, config.domain_y)

    def scored_clips(self, dataset: Any, config: Any, domain: str, other: str, train: list[Any]) -> list[Any]:
        """The first ``config.val_clips`` clips (by name) of ``domain`` in ``config.split`` that the reports score,
        those with a counterpart in ``other`` (a true target) preferred.

        ``train`` (the domain's training clips) stands in when the dataset has no val split; a missing test split
        raises :class:`AudiostyleError`.
        """
        held = dataset.select(domain, config.split)
        if not held and config.split == "test":
            raise AudiostyleError(
                f"{self.name}: domain {domain!r} has no clips in the test split of {dataset.source or 'the dataset'}; "
                "score split='val', or use a dataset that holds out test melodies (e.g. --data bench)."
            )
        return sorted(dataset.prefer_paired(held or train, other), key=lambda c: c.name)[: config.val_clips]

    @abstractmethod
    def translate(self, modules: Mapping[str, nn.Module], config: Any, y: np.ndarray, direction: str) -> np.ndarray:
        """Translate ``y (samples,)`` at ``config.sr`` in ``direction`` with the restored ``modules``; any length."""

    def transfer(
        self, config: Any, state: Mapping[str, Any] | None, audio: np.ndarray, sr: int, direction: str = "x2y",
        *, device: str = "cpu",
    ) -> np.ndarray:
        """Translate a clip of any length ``"x2y"`` or ``"y2x"``.

        Parameters
        ----------
        config : the trial's config; state : the trial's checkpoint (what it reported last)
        audio : np.ndarray
            Mono float32 ``(samples,)`` at ``sr`` Hz.
        direction : {"x2y", "y2x"}
        device : str
            ``"cpu"`` or ``"cuda"``.

        Returns
        -------
        np.ndarray
            float32 ``(samples,)`` at ``sr``, the length of ``audio``.
        """
        check_choice("direction", direction, DIRECTIONS)
        y = np.asarray(audio, dtype=np.float32)
        if y.ndim != 1 or y.size == 0:
            raise AudiostyleError(f"{self.name}: transfer expects mono audio of shape (samples,), got shape {y.shape}.")
        modules = self.restore_modules(config, state, device)
        with torch.no_grad():
            out = self.translate(modules, config, A.resample(y, sr, config.sr), direction)
        return A.fit_length(A.resample(out, config.sr, sr), y.size).astype(np.float32)

    def render(
        self,
        config: Any,
        state: Mapping[str, Any] | None,
        audio: np.ndarray,
        sr: int,
        *,
        style: np.ndarray | None = None,
        device: str = "cpu",
    ) -> np.ndarray:
        """:meth:`transfer` ``domain_x`` → ``domain_y`` (``style`` is ignored: the target domain is the style)."""
        return self.transfer(config, state, audio, sr, "x2y", device=device)
