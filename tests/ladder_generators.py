"""The sanity ladder's shared steps for the generators (spec_gan, wave_vae, wave_vae_pool): what an untrained
generator scores, and one batch as the whole training set."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from audiostyle.methods.generative import GenerativeMethod
from audiostyle.methods.trained import Amp, evaluation

CPU = torch.device("cpu")


def untrained_metrics(method: GenerativeMethod, config: Any, data: Any, seed: int = 0) -> dict[str, float]:
    """The evaluation metrics of ``method``'s freshly initialised networks (the ladder's "before training" row)."""
    torch.manual_seed(seed)
    data = method.adapt(data, config)
    parts = method.build(config, data, CPU)
    parts.config = config
    with evaluation(parts, CPU):
        return method.evaluate(parts, config, data, CPU)


def one_batch(data: Any, field: str, n: int) -> Any:
    """``data`` whose training set (the array ``field``) is its first ``n`` examples only."""
    return dataclasses.replace(data, **{field: getattr(data, field)[:n]})


def train_on_one_batch(method: GenerativeMethod, config: Any, data: Any, steps: int, seed: int = 0) -> Any:
    """``steps`` of ``method``'s real ``train_step`` on one fixed batch (``method.sample`` once); returns the
    :class:`~audiostyle.methods.checkpoint.Parts` after them, the batch and each step's losses
    ``(parts, batch, [{name: float}])``."""
    torch.manual_seed(seed)
    data = method.adapt(data, config)
    parts = method.build(config, data, CPU)
    parts.config = config
    batch = torch.from_numpy(method.sample(config, data, np.random.default_rng(seed)))
    amp = Amp("none", CPU)
    losses = [{k: float(v) for k, v in method.train_step(parts, batch, step, amp).items()}
              for step in range(1, steps + 1)]
    return parts, batch, losses
