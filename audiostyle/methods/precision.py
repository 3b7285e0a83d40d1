"""How a trial's arithmetic runs on its hardware: mixed precision, the CPU features it depends on, and compilation.

:func:`trial_amp` resolves ``TrainConfig.amp="auto"`` from this machine's CPU flags and GPU (:func:`resolve_amp` is the
pure rule), :class:`Amp` runs a step's forward passes, backward passes and optimiser steps in that precision, and
:func:`compile_modules` compiles the networks per ``TrainConfig.compile`` where a compiler exists.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
from typing import Any, Mapping

import torch
from torch import nn

from audiostyle.errors import AudiostyleError

log = logging.getLogger(__name__)

COMPILE_AUTO_STEPS = 2000
"""``compile="auto"`` compiles runs of at least this many steps (where compiling's minute or two is noise)
on CUDA or with mixed precision (on the CPU in float32 compiling saves memory, not time)."""

AMP_MODES = ("auto", "none", "bf16", "fp16")
"""``TrainConfig.amp`` values; ``"auto"`` is resolved per trial by :func:`resolve_amp`."""

NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""``/proc/cpuinfo`` flags of CPUs that multiply bfloat16 natively (AVX-512 BF16, AMX)."""


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
        The method's :attr:`~audiostyle.methods.trained.TrainedMethod.auto_amp`: ``"bf16"`` (bf16 shown to train
        as well as float32) or ``"none"``.
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


def compile_modules(modules: Mapping[str, nn.Module], config: Any, device: torch.device, method: str) -> bool:
    """Compile ``modules`` (a method's named networks, ``Parts.modules``) in place (``nn.Module.compile``: state-dict keys unchanged) per ``config.compile``.

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
    for m in modules.values():
        m.compile()
    log.info("%s: modules compiled with torch.compile; the first steps include compilation.", method)
    return True
