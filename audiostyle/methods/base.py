"""The contract every method implements.

A method is pure PyTorch/NumPy and knows nothing of Ray: ``audiostyle.sweep`` wraps it in a Ray Tune
trainable, and tests drive it with plain Python. The life of one trial::

    method = methods.get("shallow_cnn")
    config = method.make_config({"alpha": 0.01})        # defaults from the reports, validated
    data = method.prepare(dataset, config)               # once per sweep, in the driver; picklable
    final = method.train(config, data, ctx)              # calls ctx.report(step, metrics, state) as it goes
    audio = method.render(config, ctx.last_state, x, sr) # apply the trained/optimised result to new audio
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Mapping

import numpy as np

from audiostyle.data.dataset import AudioDataset
from audiostyle.errors import AudiostyleError
from audiostyle.methods.fields import check_values
from audiostyle.metrics import Objective
from audiostyle.methods.space import Space

DIVERGED = "diverged"
"""Metric a GAN's reports carry: 1.0 when a discriminator wins outright (its loss near its floor: the generator gets
no useful gradient), else 0.0; the store row's ``metric.diverged`` and the console line show the final one. A NaN or
infinite loss fails the trial instead (``FloatingPointError``, the row's ``error``)."""

PRESET_NONE = "none"
"""The ``preset`` value of a config that uses no preset (the reports' defaults)."""

Reporter = Callable[[int, Mapping[str, float], "Mapping[str, Any] | None"], None]
"""``report(step, metrics, state)``: metrics are plain floats keyed by name (no ``metric.`` prefix);
``state`` (optional) is a picklable dict (tensors allowed) from which the method can resume."""


@dataclass
class TrialContext:
    """What a running trial gets from whoever runs it (a test, ``best --render``, or the sweep).

    Attributes
    ----------
    report : Reporter
        Called every few steps; the sweep forwards it to Ray Tune and the store.
    resume_state : dict or None
        The last ``state`` reported before an interruption; the method continues from it exactly.
    artifact_dir : Path or None
        Local folder for audio samples (wav) and figures (png); None writes none.
    device : str
        ``"cpu"`` or ``"cuda"`` (``"cuda:0"``); the sweep picks it from the trial's resources.
    seed : int
        Seed for every random choice of the trial.
    """

    report: Reporter = lambda step, metrics, state=None: None
    resume_state: Mapping[str, Any] | None = None
    artifact_dir: Path | None = None
    device: str = "cpu"
    seed: int = 0
    last_state: Mapping[str, Any] | None = field(default=None, init=False)
    history: list[dict[str, float]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        user_report = self.report

        def recording_report(step: int, metrics: Mapping[str, float], state: Mapping[str, Any] | None = None) -> None:
            self.history.append({"step": float(step), **{k: float(v) for k, v in metrics.items()}})
            if state is not None:
                self.last_state = state
            user_report(step, metrics, state)

        self.report = recording_report


class Method(ABC):
    """One style-transfer (or generation) method.

    Subclasses set the class attributes and implement :meth:`prepare`, :meth:`train` and :meth:`render`.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    """A dataclass whose defaults are the reports' numbers; ``__post_init__`` validates ranges."""
    headline: ClassVar[Objective]
    """The metric a sweep optimises and early-stops on."""
    kind: ClassVar[Literal["transfer", "generate"]] = "transfer"
    needs_style: ClassVar[bool] = False
    """Whether :meth:`render` needs a ``style`` clip (an optimisation method transferring its timbre)."""

    # -- declaration -------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def default_space(cls) -> Space:
        """The method's default search space, ``{config_field: Dimension}``."""

    @classmethod
    def best_known(cls) -> list[dict[str, Any]]:
        """The reports' best configs (partial dicts over the space), tried first by Optuna."""
        return []

    @classmethod
    def smoke_overrides(cls) -> dict[str, Any]:
        """A partial config small enough that a trial takes seconds on a 2-core CPU (a small network, short clips, few
        steps between reports): the fixed values of a smoke sweep (``--smoke``), on top of the sweep script's
        budget; ``{}`` by default."""
        return {}

    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """Named partial configs, ``{preset: {config_field: value}}``, chosen with ``preset=NAME`` (``--preset``).

        ``"cpu"`` on a trained method sizes it so that a 2-core machine reaches its first real result within
        15 minutes of training. The config's ``preset`` field records the name with the trial.
        """
        return {}

    @classmethod
    def expand_preset(cls, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        """``overrides`` on top of the values of the preset they name (``overrides["preset"]``), if any.

        Raises :class:`AudiostyleError` for a preset the method does not define.
        """
        overrides = dict(overrides or {})
        name = overrides.get("preset", PRESET_NONE)
        if name == PRESET_NONE:
            return overrides
        known = cls.presets()
        if name not in known:
            choices = ", ".join([PRESET_NONE, *known]) if known else f"{PRESET_NONE} ({cls.name} defines no presets)"
            raise AudiostyleError(f"{cls.name}: unknown preset {name!r}; choose one of {choices}.")
        return {**known[name], **overrides}

    @classmethod
    def make_config(cls, overrides: Mapping[str, Any] | None = None) -> Any:
        """The default config with ``overrides`` applied (on top of the preset they name, :meth:`expand_preset`).

        Unknown keys, and values of the wrong type for their field (:func:`~audiostyle.methods.fields.check_values`),
        raise :class:`AudiostyleError`; the config's ``__post_init__`` then checks ranges.
        """
        overrides = cls.expand_preset(overrides)
        known = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise AudiostyleError(
                f"{cls.name}: unknown config key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}."
            )
        return cls.Config(**check_values(cls.Config, overrides))

    def data_domains(self, config: Any) -> tuple[str, ...] | None:
        """The dataset domains ``config`` uses, so a sweep decodes only those; None means all of them."""
        return None

    def trial_shape(self, data: Any) -> dict[str, int]:
        """A small picklable summary of :meth:`prepare`'s output (e.g. clip lengths) for :meth:`screen` and
        :meth:`step_cost`; ``{}`` by default."""
        return {}

    def screen(self, config: Any, shape: Mapping[str, int]) -> str | None:
        """Why ``config`` cannot run on the prepared data (``shape``: :meth:`trial_shape`), or None. A sweep asks
        before it launches a trial and tells the searcher such a config failed; None by default."""
        return None

    def step_cost(self, config: Any, shape: Mapping[str, int]) -> float | None:
        """Estimated cost of one step of ``config`` (any unit, compared between configs of this method) on the
        prepared data, or None when unknown (the default): a sweep skips configs far above its space's median."""
        return None

    # -- work --------------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, dataset: AudioDataset, config: Any) -> Any:
        """Turn a dataset into this method's picklable inputs (arrays), once per sweep.

        Only the config's data fields (features, sample rate, domains) may influence the result:
        the sweep calls it once with the base config and shares the result with every trial.
        """

    @abstractmethod
    def train(self, config: Any, data: Any, ctx: TrialContext) -> dict[str, float]:
        """Train or optimise; report every few steps through ``ctx.report``; return the final metrics.

        The final metrics always include the common columns of :mod:`audiostyle.metrics`.
        Raises :class:`audiostyle.errors.AudiostyleError` (or ``FloatingPointError`` for a NaN/inf loss)
        with a clear reason when the trial cannot go on.
        """

    @abstractmethod
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
        """Apply the method to new audio (float32 mono at ``sr``) and return audio of the same length.

        ``state`` is what the trial last reported (trained weights); optimisation methods ignore it
        and need ``style``. Generators return a new sample of the same length.
        """
