"""The base of the methods that translate between two domains (cyclegan, segnet/unet).

:class:`DomainPairMethod` loads only ``config.domain_x`` and ``config.domain_y``, scores the clips of
``config.split`` (:class:`DomainPairConfig`) and renders by translating a clip of any length ``x2y`` or ``y2x``;
:func:`mean_over_directions` makes one metrics row of the two directions (or of the one ``config.scored`` names).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from audiostyle import audio as A
from audiostyle.errors import AudiostyleError, check_choice
from audiostyle.methods.trained import TrainConfig, TrainedMethod

DIRECTIONS = ("x2y", "y2x")
"""Transfer directions of a :class:`DomainPairMethod`: ``domain_x`` → ``domain_y`` and back."""

BOTH = "both"
"""``DomainPairConfig.scored`` value for the mean of both directions."""

SCORED_SPLITS = ("val", "test")
"""Splits a :class:`DomainPairConfig` may score its reports on (never ``"train"``: the model fits it)."""


def mean_over_directions(per_direction: Mapping[str, Mapping[str, float]], scored: str = BOTH) -> dict[str, float]:
    """One metrics row for a method that transfers in several directions (e.g. ``{"x2y": …, "y2x": …}``).

    Each common column (:data:`audiostyle.metrics.COMMON_METRICS`) is the mean over the directions (NaN ones
    skipped; NaN when all are), the headline (``transfer_score``) among them: a method scores the mean of its
    directions' scores. ``scored`` names one direction to take the common columns from instead (the sweep then
    optimises that direction alone). Each direction's own score is kept as ``transfer_score_<direction>``.
    """
    from audiostyle import metrics

    rows = list(per_direction.values()) if scored == BOTH else [per_direction[scored]]
    out: dict[str, float] = {}
    for key in metrics.COMMON_METRICS:
        values = [float(m[key]) for m in rows if math.isfinite(float(m[key]))]
        out[key] = float(np.mean(values)) if values else float("nan")
    out.update({f"{metrics.HEADLINE}_{d}": float(m[metrics.HEADLINE]) for d, m in per_direction.items()})
    return out


@dataclass
class DomainPairConfig(TrainConfig):
    """Fields every :class:`DomainPairMethod` config shares (subclass it instead of
    :class:`~audiostyle.methods.trained.TrainConfig`).

    Attributes
    ----------
    split : str
        The split whose clips the reports transfer and score: ``"val"`` while sweeping (hyperparameters are chosen
        on it; the training clips when the dataset has no val split), ``"test"`` for a final table on melodies that
        nothing was fitted or chosen on (``benchmarks/bench_quality.py``; a dataset without a test split raises).
    scored : str
        Which transfers the reported common metrics describe, and so what a sweep optimises: ``"both"`` (the mean of
        ``x2y`` and ``y2x``) or one direction, e.g. ``"x2y"`` (``domain_x`` → ``domain_y``, what ``render`` and
        ``best --render`` produce) for a user who needs that direction only. Both directions are scored and each
        one's headline is reported (``transfer_score_x2y``, ``transfer_score_y2x``) either way.
    """

    split: str = "val"
    scored: str = BOTH

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("split", self.split, SCORED_SPLITS)
        check_choice("scored", self.scored, (BOTH, *DIRECTIONS))


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
