"""Checkpoints of a trained method: the parts a step uses, and their state with every RNG's.

:class:`Parts` is what :meth:`~audiostyle.methods.trained.TrainedMethod.build` returns; :func:`capture_state` turns it
(with the loss scale and every random generator) into a dict loadable by ``torch.load(weights_only=True)``, and
:func:`restore_state` loads one back so a resumed run continues to bit-identical losses on the CPU.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Protocol

import numpy as np
import torch
from torch import nn

from audiostyle.errors import AudiostyleError

if TYPE_CHECKING:
    from audiostyle.methods.precision import Amp

log = logging.getLogger(__name__)

STATE_FORMAT = 1
"""Version of the checkpoint dict layout written by :func:`capture_state`."""


class Stateful(Protocol):
    """Anything with ``state_dict()``/``load_state_dict()`` (an image pool, an EMA, …)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@dataclass
class Parts:
    """What :meth:`~audiostyle.methods.trained.TrainedMethod.build` returns: everything the step uses and a
    checkpoint holds.

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
        The trial's config; set by the loop after :meth:`~audiostyle.methods.trained.TrainedMethod.build`, so
        ``train_step`` can read its hyper-parameters as ``parts.config``.
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    schedulers: dict[str, Any] = field(default_factory=dict)
    stateful: dict[str, Stateful] = field(default_factory=dict)
    config: Any = None


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


def check_state(state: Mapping[str, Any], parts: Parts, who: str) -> None:
    """Raise :class:`AudiostyleError` when ``state`` is of another format or lacks a module of ``parts`` (``who``
    names the method in the message)."""
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
    check_state(state, parts, who)
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
