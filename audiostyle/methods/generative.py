"""What the generators (``spec_gan``, ``wave_vae``, ``wave_vae_pool``) share: data, metrics, rendering.

Data, as report 002, docs/reports.md prepared it: the clips of ONE domain (GTZAN "classical" in the report; the demo set's
"violin" by default here), resampled to ``sr`` = 3150 Hz (22050 / 7), cut to ``clip_s`` = 29 s, and each clip split
into two halves (twice the training examples). All three are config fields. Clips shorter than ``clip_s`` (the demo
set's are 3–6 s) are used as they are: the clip length becomes the shortest clip's, and a log line says so.
``example_s`` > 0 instead cuts every clip (up to ``clip_s``) into as many consecutive examples of ``example_s`` as it
holds: short examples a small waveform model can reconstruct, and many more of them (the CPU presets use it).

Metrics: generators have no content clip, so their samples are judged as a set against the domain's real clips:
``fad``, ``timbre_dist`` (to the domain's train clips in the timbre embedding) and ``target_prob`` (the dataset's
domain classifier) from :func:`audiostyle.metrics.evaluate`; the melody columns and ``transfer_score`` are NaN (a
sample has no content to preserve). The metrics reference is fitted on the dataset as the model hears it: every clip
band-limited to ``sr / 2`` (resampled to ``sr`` and back). Against the full-band dataset, band-limiting alone
dominates every timbre statistic at 3150 Hz (on the demo set the real violin clips at 3150 Hz score a ``fad`` of
48, worse than an untrained VAE's quiet noise). Hence ``sr`` is chosen per sweep, not per trial, and ``fad`` is
comparable between trials of one rate. ``fad_real`` is the ``fad`` of the domain's real validation examples: the
floor a perfect generator reaches with ``eval_samples`` samples.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from audiostyle import audio as A
from audiostyle import metrics
from audiostyle.audio import fit_length
from audiostyle.data.dataset import AudioDataset
from audiostyle.errors import AudiostyleError, check_range
from audiostyle.methods.base import TrialContext
from audiostyle.metrics import objective
from audiostyle.methods.examples import Example, write_examples
from audiostyle.methods.trained import Parts, TrainConfig, TrainedMethod

log = logging.getLogger(__name__)

MIN_SAMPLES = 256
"""Shortest clip (half) a generator accepts, samples at ``sr``."""


@dataclass
class DomainConfig(TrainConfig):
    """Data and evaluation fields of every generator (on top of the loop's :class:`~audiostyle.methods.trained.TrainConfig`).

    Attributes
    ----------
    domain : str
        The one domain to model (e.g. ``"classical"`` on GTZAN, ``"violin"`` on the demo set).
    sr : int
        Model sample rate, Hz (the report: 3150 = 22050 / 7).
    clip_s : float
        Clip length before halving, s (the report: 29); shorter clips are used whole.
    halves : bool
        Split each clip into two halves, as the report did (ignored when ``example_s`` > 0).
    example_s : float
        Length of each example, s: every clip (cut to ``clip_s``) gives as many consecutive examples as it holds.
        0 (the report): one example per clip, or two with ``halves``.
    eval_samples : int
        Samples generated (and validation clips reconstructed) at each report.
    """

    domain: str = "violin"
    sr: int = 3150
    clip_s: float = 29.0
    halves: bool = True
    example_s: float = 0.0
    eval_samples: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.domain, str) or not self.domain:
            raise AudiostyleError(f"domain={self.domain!r} is not a domain name: use e.g. 'classical' or 'violin'.")
        check_range("sr", self.sr, 500, 96_000, fix="The report used 3150 Hz (22050 / 7).")
        check_range("clip_s", self.clip_s, 0.05, 3600.0, fix="The report used 29 s.")
        check_range("example_s", self.example_s, 0.0, self.clip_s,
                    fix="Use 0 (the report's halves) or an example length up to clip_s, e.g. 0.25.")
        check_range("eval_samples", self.eval_samples, 1, 1024)


DATA_FIELDS: tuple[str, ...] = ("domain", "sr", "clip_s", "halves", "example_s", "eval_samples")
"""The config fields :func:`prepare_domain_clips` depends on; a trial whose values differ re-derives its data."""


@dataclass
class DomainClips:
    """One domain's clips at the model rate, as every generator's :meth:`prepare` starts from (picklable).

    Attributes
    ----------
    train, val : np.ndarray
        float32 waveforms ``(n, length)`` at ``sr``; ``val`` falls back to ``train`` when the domain has no
        validation clips.
    sr : int
        Hz.
    domain : str
    reference : audiostyle.metrics.Reference
        The dataset's metrics reference (domain statistics and classifier).
    val_features : list of audiostyle.metrics.ClipFeatures
        Features of the first ``eval_samples`` validation examples, :func:`joined` (reconstruction metrics reuse them).
    fad_real : float
        ``fad`` of the real validation clips at ``sr`` against the domain: what a perfect generator scores.
    source : tuple of np.ndarray
        The domain's whole clips at ``sr`` (cut to ``clip_s``), so a trial that sweeps ``clip_s``, ``halves`` or
        ``eval_samples`` re-derives its examples (:func:`for_config`) from the one shared copy.
    source_splits : tuple of str
        ``"train"``/``"val"`` of each source clip.
    key : dict
        The :data:`DATA_FIELDS` values this was derived with.
    """

    train: np.ndarray
    val: np.ndarray
    sr: int
    domain: str
    reference: metrics.Reference
    val_features: list[metrics.ClipFeatures]
    fad_real: float
    source: tuple[np.ndarray, ...]
    source_splits: tuple[str, ...]
    key: dict[str, Any]

    @property
    def length(self) -> int:
        """Samples per example."""
        return int(self.train.shape[1])


@dataclass(frozen=True)
class ClipGeometry:
    """The one thing a generator's networks need from the data: samples per example (see :func:`stored_length`)."""

    length: int


def _cut(clips: list[np.ndarray], length: int, pieces: int | None) -> np.ndarray:
    """Consecutive ``length``-sample examples of every clip, in order, ``(n, length)`` float32: ``pieces`` per clip,
    or (None) as many as each clip holds. Joined end to end (:func:`joined`), neighbouring rows are the clip again."""
    rows = [c[p * length : (p + 1) * length] for c in clips
            for p in range(c.shape[0] // length if pieces is None else pieces)]
    return np.stack(rows).astype(np.float32)


def _data_key(config: DomainConfig) -> dict[str, Any]:
    return {f: getattr(config, f) for f in DATA_FIELDS}


def band_limited(dataset: AudioDataset, sr: int) -> AudioDataset:
    """``dataset`` as a model at ``sr`` hears it: every clip resampled to ``sr`` and back (same rate, same names)."""
    if sr >= dataset.sr:
        return dataset
    clips = [dataclasses.replace(c, audio=fit_length(A.resample(A.resample(c.audio, c.sr, sr), sr, c.sr), c.audio.size))
             for c in dataset.clips]
    return AudioDataset(clips, dataset.sr, source=f"{dataset.source} band-limited to {sr} Hz",
                        fingerprint=f"{dataset.fingerprint}|band={sr}" if dataset.fingerprint else "")


def prepare_domain_clips(dataset: AudioDataset, config: DomainConfig) -> DomainClips:
    """Select, resample, cut and halve one domain's clips (report 002); fit the band-limited metrics reference.

    Parameters
    ----------
    dataset : AudioDataset
        Must hold ``config.domain`` and at least one other domain (the metrics' classifier needs two).
    config : DomainConfig

    Returns
    -------
    DomainClips

    Raises
    ------
    AudiostyleError
        Unknown domain, a domain without clips, clips too short at ``config.sr``, or non-finite samples.
    """
    clips = dataset.select(config.domain)
    if not clips:
        raise AudiostyleError(f"domain {config.domain!r} has no clips in {dataset.source or 'the dataset'}.")
    bad = [c.name for c in clips if not np.all(np.isfinite(c.audio))]
    if bad:
        raise AudiostyleError(f"clip(s) {', '.join(bad[:5])} hold NaN or inf samples: fix or remove those files.")
    reference = metrics.build_reference(band_limited(dataset, config.sr))
    reference.domain_index(config.domain)
    cut = int(round(config.clip_s * config.sr))
    source = tuple(A.resample(c.audio, c.sr, config.sr)[:cut] for c in clips)
    return _derive(source, tuple(c.split for c in clips), reference, config)


def for_config(data: DomainClips, config: DomainConfig) -> DomainClips:
    """``data`` when it was derived with ``config``'s :data:`DATA_FIELDS`, else examples re-derived for them.

    A sweep prepares once with its base config; a trial that samples ``clip_s`` (up to the prepared one),
    ``halves`` or ``eval_samples`` gets its own examples from the shared source clips. ``domain`` and ``sr`` are
    chosen per sweep (the metrics reference depends on them): a trial that changes them raises.
    """
    key = _data_key(config)
    if key == data.key:
        return data
    for name in ("domain", "sr"):
        if key[name] != data.key[name]:
            raise AudiostyleError(
                f"{name}={key[name]!r} differs from the prepared data's {data.key[name]!r}: {name} is chosen per "
                f"sweep, not per trial (the metrics reference depends on it); run one sweep per {name}."
            )
    return _derive(data.source, data.source_splits, data.reference, config)


def _derive(
    source: tuple[np.ndarray, ...], splits: tuple[str, ...], reference: metrics.Reference, config: DomainConfig
) -> DomainClips:
    """Examples of ``config`` from whole clips at ``config.sr``: cut to the shortest clip (≤ clip_s), halved; or
    consecutive examples of ``example_s``."""
    target = int(round(config.clip_s * config.sr))
    waves = [y[:target] for y in source]
    shortest = min(y.shape[0] for y in waves)
    if config.example_s > 0:
        length, pieces = int(round(config.example_s * config.sr)), None
        if length > shortest:
            raise AudiostyleError(
                f"example_s={config.example_s} s is longer than the shortest clip of {config.domain!r} "
                f"({shortest / config.sr:.2f} s): use a shorter example_s.")
    else:
        length = shortest
        if length < target:
            log.info("%s: clips are %.2f s at most, shorter than clip_s=%.2f s: using %d samples per clip.",
                     config.domain, shortest / config.sr, config.clip_s, length)
        length, pieces = (length // 2, 2) if config.halves else (length, 1)
    if length < MIN_SAMPLES:
        raise AudiostyleError(
            f"clips of {config.domain!r} give {length} samples per example at sr={config.sr} Hz (halves="
            f"{config.halves}, example_s={config.example_s}): fewer than {MIN_SAMPLES}. Use longer clips or "
            "examples, a higher sr or halves=False."
        )
    train_clips = [y for y, s in zip(waves, splits) if s == "train"] or waves
    val_clips = [y for y, s in zip(waves, splits) if s == "val"]
    if not val_clips:
        log.info("%s: no validation clips; evaluating on the training clips.", config.domain)
        val_clips = train_clips
    train, val = _cut(train_clips, length, pieces), _cut(val_clips, length, pieces)
    features = [metrics.clip_features(y, config.sr) for y in joined(val[: config.eval_samples], config.sr)]
    fad_real = metrics.evaluate(features, None, config.sr, reference, config.domain)["fad"]
    log.info("%s: %d training and %d validation examples of %d samples at %d Hz; fad_real %.3f",
             config.domain, len(train), len(val), train.shape[1], config.sr, fad_real)
    return DomainClips(train, val, config.sr, config.domain, reference, features, fad_real, source, splits,
                       _data_key(config))


EVAL_CLIP_S = 3.0
"""Shortest audio the metrics score, s; shorter examples are joined end to end (:func:`joined`). On the bench set,
real 0.1 s violin examples scored one by one have a ``fad`` of 26, worse than white noise's 25.6, and 1 s ones a
``timbre_dist`` of 1.5 (3 s: 1.3)."""


def joined(examples: Sequence[np.ndarray], sr: int) -> list[np.ndarray]:
    """Consecutive ``examples`` (each ``(length,)`` at ``sr``) joined end to end into clips of at least
    :data:`EVAL_CLIP_S` (all of them into one when they are fewer); examples that long stay as they are."""
    per = max(1, math.ceil(EVAL_CLIP_S * sr / len(examples[0])))
    return [np.concatenate([examples[i] for i in g]) for g in np.array_split(np.arange(len(examples)),
                                                                              max(1, len(examples) // per))]


def sample_metrics(samples: Sequence[np.ndarray], data: DomainClips) -> dict[str, float]:
    """The common metric columns of generated ``samples`` (each ``(length,)`` at ``data.sr``) against the domain.

    Samples shorter than :data:`EVAL_CLIP_S` are scored :func:`joined`, as the real examples of ``fad_real`` are.
    The melody columns and the headline are NaN (no content clip); ``fad_real`` is added (see the module doc).
    """
    out = metrics.evaluate(joined(samples, data.sr), None, data.sr, data.reference, data.domain)
    out["fad_real"] = data.fad_real
    return out


def stored_length(state: Mapping[str, Any] | None, module: str, who: str) -> ClipGeometry:
    """The example length recorded in a checkpoint (buffer ``clip_length`` of ``module``), for rebuilding networks.

    Raises :class:`AudiostyleError` when ``state`` is None or is not a checkpoint of this method.
    """
    try:
        return ClipGeometry(int(state["modules"][module]["clip_length"]))  # type: ignore[index]
    except (TypeError, KeyError) as exc:
        raise AudiostyleError(
            f"{who}: render needs the trained state (a checkpoint with module {module!r}); got "
            f"{'None' if state is None else 'a state without it'}. Pass the state a trial reported "
            "(store column artifact.checkpoint)."
        ) from exc


def render_in_chunks(
    audio: np.ndarray, sr: int, model_sr: int, length: int, fn: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Run a fixed-length waveform model over audio of any length and rate.

    ``audio`` is resampled to ``model_sr``, zero-padded to whole chunks of ``length`` samples, passed as
    ``(chunks, length)`` to ``fn`` (which returns the same shape at ``model_sr``), concatenated, resampled back
    to ``sr``, trimmed to ``len(audio)`` and clipped to [-1, 1].

    Returns
    -------
    np.ndarray
        float32 ``(len(audio),)`` at ``sr``.
    """
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise AudiostyleError(f"render expects mono audio of shape (samples,) with samples > 0, got shape {y.shape}.")
    x = A.resample(y, sr, model_sr)
    chunks = max(1, math.ceil(x.size / length))
    out = fn(fit_length(x, chunks * length).reshape(chunks, length)).reshape(-1)
    return np.clip(fit_length(A.resample(out, model_sr, sr), y.size), -1.0, 1.0).astype(np.float32)


EVAL_NOISE_SEED = 20_240_601
"""Seed of the fixed latent noise every evaluation and artifact decodes (so reports compare like with like)."""


def fixed_noise(n: int, dim: int, device: torch.device | str, seed: int = EVAL_NOISE_SEED) -> torch.Tensor:
    """``(n, dim)`` standard normal noise drawn on the CPU from ``seed`` (the same on every device), on ``device``."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)).to(device)


class GenerativeMethod(TrainedMethod):
    """A generator trained by the shared loop on one domain (see the module doc): data, metrics, artifacts.

    Subclasses implement :meth:`build`, :meth:`sample`, :meth:`train_step`, :meth:`evaluate`, :meth:`render`
    and :meth:`generate`.
    """

    kind = "generate"
    headline = objective("fad")
    artifact_samples: ClassVar[int] = 2
    """Samples written as ``sample<i>_output.wav`` by :meth:`write_artifacts`."""

    def prepare(self, dataset: AudioDataset, config: DomainConfig) -> Any:
        """One domain's clips at ``config.sr``, cut and halved (:func:`prepare_domain_clips`)."""
        return prepare_domain_clips(dataset, config)

    def adapt(self, data: Any, config: DomainConfig) -> Any:
        """The prepared data for this trial's config (:func:`for_config`); subclasses extend it."""
        return for_config(data, config)

    def train(self, config: DomainConfig, data: Any, ctx: TrialContext) -> dict[str, float]:
        """The shared loop (:meth:`TrainedMethod.train`) on data re-derived when the trial changed a data field."""
        return super().train(config, self.adapt(data, config), ctx)

    @abstractmethod
    def generate(
        self, modules: Mapping[str, nn.Module], config: Any, n: int, seed: int = EVAL_NOISE_SEED
    ) -> np.ndarray:
        """``n`` new waveforms ``(n, length)`` at ``config.sr`` from noise drawn with ``seed`` (no grad)."""

    def examples(self, parts: Parts, config: Any, data: Any) -> list[Example]:
        """What :meth:`write_artifacts` writes: the first evaluation samples, ``sample<i>``."""
        return [Example.of(f"sample{i}", y) for i, y in enumerate(self.generate(parts.modules, config,
                                                                               self.artifact_samples))]

    def write_artifacts(self, parts: Parts, config: Any, data: Any, out_dir: Path) -> None:
        """:meth:`examples` as ``<stem>_<role>.wav`` and ``spectrogram.png`` (:mod:`audiostyle.methods.examples`)."""
        write_examples(out_dir, self.examples(parts, config, data), config.sr, self.name)
