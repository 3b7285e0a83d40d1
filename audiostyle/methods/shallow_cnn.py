"""``shallow_cnn``: optimisation-based style transfer through a random-weight shallow CNN.

After Ulyanov & Lebedev (2016) and Ustyuzhaninov et al. (2016), as swept by hand in reports 003
(DeepMix) and 004 (CS753 audio style transfer; both in docs/reports.md): the output's feature map (log-magnitude STFT, mel or
MFCC) is optimised so that the features of 1–2 random frozen convolution layers match the content clip's
(weight ``alpha``) and their Gram matrices match the style clip's. Griffin-Lim turns it back into audio.

Several (content, style) pairs are optimised in one batch; the math lives in
:mod:`audiostyle.methods.random_cnn`. A trial::

    m = methods.get("shallow_cnn")
    config = m.make_config({"filters": 1024, "steps": 100})
    data = m.prepare(demo_dataset(), config)       # pairs, true targets, metrics reference
    final = m.train(config, data, TrialContext())   # common metrics of the transferred pairs
    y = m.render(config, None, content, sr, style=style)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import torch

from audiostyle import audio as A
from audiostyle import metrics
from audiostyle.data.dataset import AudioDataset, Clip
from audiostyle.errors import AudiostyleError, check_choice, check_range
from audiostyle.methods.examples import Example, write_examples
from audiostyle.methods.base import Method, TrialContext
from audiostyle.metrics import HEADLINE_OBJECTIVE, Objective
from audiostyle.methods.random_cnn import (MAX_ELEMENTS, FeatureSpec, RandomCNN, TransferLoss, features, positions,
                                           check_style_view, style_view, to_audio)
from audiostyle.methods.space import Choice, Float, Given, Int, Space
from audiostyle.methods.spectrogram import StftFields, check_griffin_lim_iters
from audiostyle.methods.checkpoint import to_cpu
from audiostyle.methods.trained import resolve_device

log = logging.getLogger(__name__)

STATE_FORMAT = 1
"""Version of the ``state`` dict this method reports."""
STYLE_OCTAVES = (0.0, 0.5, 1.0)
"""The search space's widths of the style view (octaves; 0: the reports' loss). On the benchmark's piano → violin a
1/3-octave view kept less of the melody than 0.5 or 1 (``benchmarks/results/style_view.md``)."""
ALPHA = Float(1e-4, 100.0, log=True)
"""The search space's content weight (report 003's best 0.006; ``pre_eq`` configs hold the equalised content at 1 to
10 in ``benchmarks/results/style_view.md``)."""


@dataclass
class ShallowCNNConfig(StftFields):
    """A shallow-CNN transfer; defaults are the reports' best: report 003's 1 layer, 4096 filters, width 11, L-BFGS,
    lr 0.001, alpha 0.006 on log1p|STFT| (n_fft 2048), run on Ulyanov & Lebedev's network, hence ReLU; no pooling
    and Griffin-Lim from both reports. report 004 preferred tanh (by ear, with its own setup); it is in the space.

    ``alpha`` is not invariant to the clip length in this (the original) loss: the content term sums over frames,
    the style term compares Gram matrices normalised by frames, so a 3 s clip weighs content ≈ 3.3× less than the
    10 s clips report 003 tuned alpha on.

    Attributes
    ----------
    features : str
        ``"stft"`` (``log1p|STFT|``, 1025 channels), ``"mel"`` (128) or ``"mfcc"`` (40).
    conv : str
        ``"1d"`` (frequency as channels, convolution over time, as in Ulyanov's notebook) or ``"2d"``
        (``width × width`` filters over the frequency × time image, see :class:`RandomCNN`).
    layers : int
        Random conv layers, 1 or 2; content and style are taken from the last one.
    filters : int
        Filters per layer (reports: 128 … 4096).
    width : int
        Filter width in frames (reports: 5 … 30).
    activation : str
        ``"relu"`` (the network of report 003's best), ``"tanh"`` (preferred in report 004) or ``"selu"``.
    pooling : str
        ``"none"`` (best), ``"max"`` or ``"avg"`` after each activation, over ``pool_width``.
    pool_width : int
        Pooling window (frames; frames and bands for ``conv="2d"``).
    alpha : float
        Weight of the content loss (report 003: 0.005–0.006 keeps the melody and takes the timbre).
    style_octaves : float
        0 (the reports' loss): the style term compares Gram matrices of the feature maps themselves, which carry
        the style clip's own pitches into the output. > 0: of the maps averaged over ``± style_octaves / 2``
        around each channel's frequency (stft or mel features; see :func:`~audiostyle.methods.random_cnn.style_view`),
        so the style clip gives its spectral envelope and the content its pitches. Costs a second network pass.
    optimizer : str
        ``"lbfgs"``, ``"adam"``, ``"rmsprop"`` or ``"sgd"``.
    lr : float
        Learning rate of adam/rmsprop/sgd. sgd takes normalised steps (the gradient divided by its RMS over the
        output), so its lr is a step in feature units like adam's: the loss is of order 1e4 on real recordings, and
        plain gradient steps diverged at the first iteration for every lr of the search space. L-BFGS uses a strong-Wolfe line search from a unit step, like the
        scipy L-BFGS-B the reports ran (which has no learning rate: their "lr 0.001" did not act on it).
    init : str
        Start the output from the ``"content"`` features (Ulyanov's blog, Grinstein et al.) or from small
        ``"noise"`` (Ulyanov's notebook, report 004).
    pre_eq : bool
        Equalise the content to the style clip's long-term spectrum first (:func:`audiostyle.audio.eq_match`, the
        signal-processing baseline): the output starts from (``init="content"``) and the content term holds it near
        that equalised content, so the style term has only the rest of the timbre to move. The metrics still
        compare the output with the content as given.
    steps : int
        Optimiser iterations (an L-BFGS iteration may evaluate the loss several times). 300 = the notebook's.
    report_every : int
        Iterations between reports (each with the common metrics, at ``report_griffin_lim_iters``).
    griffin_lim_iters : int
        Griffin-Lim iterations of the final audio (the notebook's 500).
    report_griffin_lim_iters : int
        Griffin-Lim iterations for intermediate reports (cheaper, same trend).
    content_domain, style_domain : str or None
        Domains of the content and style clips; None = the dataset's first domain and the next one.
    pairs : int
        (content, style) pairs optimised together in one batch.
    split : str
        The split whose clips are transferred and scored: ``"val"`` while sweeping (hyperparameters are chosen on
        it), ``"test"`` for final numbers on melodies nothing was chosen on. Metrics references always come from
        the train split.
    max_seconds : float
        Clips are cut to at most this long (report 003 used 10 s).
    sr : int
        Sample rate of the optimisation, Hz.
    n_fft, hop_length : int
        STFT of the features (the reports': 2048 and librosa's default hop 512).
    amp : str
        ``"none"`` (float32 everywhere, TF32 off) or ``"bf16"`` (autocast of the convolutions on CUDA; the Gram
        and loss stay float32). bf16 quantises the optimised input to 8 mantissa bits, which stalls the line
        search near convergence, hence the float32 default.
    weights_path : str or None
        A ``torch.save``d state dict of the feature network replacing the random weights (a pretrained network
        the user has; never downloaded). Same shapes as the random network of this config.
    seed : int
        Seed of the random weights, the noise init and the choice of pairs: a config reproduces.
    """

    features: str = "stft"
    conv: str = "1d"
    layers: int = 1
    filters: int = 4096
    width: int = 11
    activation: str = "relu"
    pooling: str = "none"
    pool_width: int = 2
    alpha: float = 0.006
    style_octaves: float = 0.0
    optimizer: str = "lbfgs"
    lr: float = 0.001
    init: str = "content"
    pre_eq: bool = False
    steps: int = 300
    report_every: int = 50
    griffin_lim_iters: int = 500
    report_griffin_lim_iters: int = 32
    content_domain: str | None = None
    style_domain: str | None = None
    pairs: int = 2
    split: str = "val"
    max_seconds: float = 10.0
    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    amp: str = "none"
    weights_path: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("features", self.features, ("stft", "mel", "mfcc"))
        check_choice("conv", self.conv, ("1d", "2d"))
        check_range("layers", self.layers, 1, 2)
        check_range("filters", self.filters, 1, 8192)
        check_range("width", self.width, 1, 64)
        check_choice("activation", self.activation, ("relu", "tanh", "selu"))
        check_choice("pooling", self.pooling, ("none", "max", "avg"))
        check_range("pool_width", self.pool_width, 1, 16)
        check_range("alpha", self.alpha, 0.0, 1e6, fix="alpha weighs the content loss; the reports used 1e-4 … 100.")
        check_range("style_octaves", self.style_octaves, 0.0, 4.0,
                    fix="style_octaves is the width of the style term's frequency average: 0 (off) to 4 octaves.")
        check_choice("optimizer", self.optimizer, ("lbfgs", "adam", "rmsprop", "sgd"))
        check_range("lr", self.lr, 1e-8, 10.0)
        check_choice("init", self.init, ("content", "noise"))
        check_range("steps", self.steps, 1, 100_000)
        check_range("report_every", self.report_every, 1, 100_000)
        check_griffin_lim_iters("griffin_lim_iters", self.griffin_lim_iters)
        check_griffin_lim_iters("report_griffin_lim_iters", self.report_griffin_lim_iters)
        check_range("pairs", self.pairs, 1, 1024)
        check_choice("split", self.split, ("val", "test"))
        check_range("max_seconds", self.max_seconds, 0.1, 3600.0)
        check_range("sr", self.sr, 4000, 192_000)
        self.check_stft()
        check_style_view(self.spec, self.style_octaves)
        check_choice("amp", self.amp, ("none", "bf16"))
        if self.content_domain is not None and self.content_domain == self.style_domain:
            raise AudiostyleError(f"content_domain and style_domain are both {self.content_domain!r}: pick two domains.")
        if self.weights_path is not None and not Path(self.weights_path).is_file():
            raise AudiostyleError(
                f"weights_path={self.weights_path!r} does not exist: give the path of a feature-network weights "
                "file you have (audiostyle never downloads weights), or leave weights_path unset for random weights."
            )

    @property
    def spec(self) -> FeatureSpec:
        """The feature front-end of this config."""
        return FeatureSpec(self.features, self.sr, self.n_fft, self.hop_length)


@dataclass
class ShallowCNNData:
    """What :meth:`ShallowCNN.prepare` returns (numpy only, picklable).

    Attributes
    ----------
    contents, styles : np.ndarray
        float32 ``(pairs, samples)`` and ``(pairs, style samples)`` at ``sr``.
    targets : list of (np.ndarray or None)
        The true rendering of each content in the style domain, float32 ``(samples,)`` (paired data), None for a
        content without one (unpaired data, a trailing clip without a partner).
    names : list of (str, str)
        (content clip, style clip) names.
    content_domain, style_domain : str
    sr : int
    reference : metrics.Reference
    """

    contents: np.ndarray
    styles: np.ndarray
    targets: list[np.ndarray | None]
    names: list[tuple[str, str]]
    content_domain: str
    style_domain: str
    sr: int
    reference: metrics.Reference


def _stack(clips: list[Clip], sr: int, max_samples: int) -> np.ndarray:
    ys = [A.resample(c.audio, c.sr, sr) for c in clips]
    n = min(min(len(y) for y in ys), max_samples)
    return np.stack([y[:n] for y in ys])


def _frames(config: ShallowCNNConfig, samples: int) -> int:
    """Frames of the centred STFT of ``samples`` samples."""
    return 1 + samples // config.hop_length


def _random_cnn(config: ShallowCNNConfig) -> RandomCNN:
    return RandomCNN(config.spec.channels, config.filters, config.width, config.layers, config.conv, config.activation,
                     config.pooling, config.pool_width, config.seed)


def network_problem(config: ShallowCNNConfig, frames: int, batch: int) -> str | None:
    """Why ``config``'s network cannot run on ``batch`` clips of ``frames`` frames (too many activations, clips
    too short for its widths and pooling), or None."""
    spec = config.spec
    first = frames - config.width + 1
    bands = 1 if config.conv == "1d" else (spec.channels - config.width) // config.width + 1
    if batch * config.filters * first * bands > MAX_ELEMENTS:
        return (f"conv={config.conv!r} with {config.filters} filters needs {batch * config.filters * first * bands:,} "
                f"activations for {batch} pair(s) (limit {MAX_ELEMENTS:,}): use conv='1d', fewer filters or pairs.")
    if positions(spec.channels, frames, config.conv, config.width, config.layers, config.pooling, config.pool_width) < 1:
        return (f"{frames} frames are too few for {config.layers} layer(s) of width {config.width}"
                f"{' with pooling' if config.pooling != 'none' else ''} over {spec.channels} channels: "
                "use longer clips (max_seconds), a smaller width, or no pooling.")
    return None


def multiply_adds(config: ShallowCNNConfig, frames: int) -> float:
    """Multiply-adds of one forward pass of one clip of ``frames`` frames: each layer's convolution (positions
    before pooling), twice with a style view (``style_octaves`` > 0) plus the view itself (channels² × frames),
    and the last layer's Gram matrix (filters² × positions), which dominates for 2-D convolutions with many
    filters."""
    channels, total = config.spec.channels, 0.0
    inputs, taps = (channels, config.width) if config.conv == "1d" else (1, config.width**2)
    for layer in range(1, config.layers + 1):
        total += config.filters * inputs * taps * positions(channels, frames, config.conv, config.width, layer)
        inputs = config.filters
    if config.style_octaves > 0:
        total = 2 * total + channels**2 * frames
    last = positions(channels, frames, config.conv, config.width, config.layers, config.pooling, config.pool_width)
    return total + config.filters**2 * last


@dataclass
class _Run:
    """One batched optimisation: the loss, the optimised features and the optimiser."""

    loss: TransferLoss
    x: torch.Tensor
    opt: torch.optim.Optimizer
    step: int
    evals: int = 0


class ShallowCNN(Method):
    """Random shallow CNN style transfer (see the module docstring)."""

    name: ClassVar[str] = "shallow_cnn"
    Config: ClassVar[type] = ShallowCNNConfig
    headline: ClassVar[Objective] = HEADLINE_OBJECTIVE
    kind: ClassVar[str] = "transfer"
    needs_style: ClassVar[bool] = True

    # -- declaration -------------------------------------------------------------------------------
    @classmethod
    def default_space(cls) -> Space:
        """Everything the reports varied (report 003 grid and optimisers, report 004 features, activations, pooling),
        the style view (``style_octaves``, stft and mel features only) and ``pre_eq``.

        ``alpha`` is searched as one parameter per ``pre_eq`` (same range): the content term pulls toward the content
        as given or toward its equalised copy, so a good weight for one is no guide to the other, and the searcher
        learns each on its own.

        Filters and width depend on the convolution: a 1-D filter spans every feature channel (report 003's 128 to
        4096 filters of width 5 to 30 frames), a 2-D one is a ``width`` × ``width`` patch slid over frequency as well
        as time, so the same ranges would cost up to ``width`` × more per step (4096 filters of 22 × 22 over a
        1025 × 259 spectrogram: about a teraflop an evaluation). 2-D draws 64 to 1024 filters of 3 × 3 to 11 × 11:
        over random draws on 6 s clips its median step cost is 0.7× the whole space's and 1-D's 1.2×
        (with 1-D's ranges, 2-D's median was 1.5× and its costliest draws 2800×)."""
        return {
            "features": Choice(("stft", "mel", "mfcc")),
            "conv": Choice(("1d", "2d")),
            "layers": Int(1, 2),
            "filters": Given("conv", {"1d": Choice((128, 256, 512, 1024, 2048, 4096)),
                                      "2d": Choice((64, 128, 256, 512, 1024))}),
            "width": Given("conv", {"1d": Int(5, 30), "2d": Int(3, 11)}),
            "activation": Choice(("relu", "tanh", "selu")),
            "pooling": Choice(("none", "max", "avg")),
            "pre_eq": Choice((False, True)),
            "alpha": Given("pre_eq", {False: ALPHA, True: ALPHA}),
            "style_octaves": Given("features", {"stft": Choice(STYLE_OCTAVES), "mel": Choice(STYLE_OCTAVES),
                                                "mfcc": Choice((0.0,))}),
            "optimizer": Choice(("lbfgs", "adam", "rmsprop", "sgd")),
            "lr": Float(1e-4, 0.1, log=True),
            "init": Choice(("content", "noise")),
            "griffin_lim_iters": Int(32, 500, log=True),
        }

    @classmethod
    def best_known(cls) -> list[dict[str, Any]]:
        """Report 003's best (1 × 4096 × 11, alpha 0.006), its "ok" 2-layer config (2 × 2048 × 11, alpha 0.001),
        and the same best network with report 004's choices (mel features, tanh)."""
        common = {"optimizer": "lbfgs", "lr": 0.001, "features": "stft", "conv": "1d", "pooling": "none",
                  "activation": "relu", "style_octaves": 0.0}
        best = {**common, "layers": 1, "filters": 4096, "width": 11, "alpha": 0.006}
        return [
            best,
            {**common, "layers": 2, "filters": 2048, "width": 11, "alpha": 0.001},
            {**best, "features": "mel", "activation": "tanh"},
        ]

    @classmethod
    def smoke_overrides(cls) -> dict[str, Any]:
        """The smoke sweep's network and data size (see :meth:`~audiostyle.methods.base.Method.smoke_overrides`)."""
        # 3 s clips, one pair, few Griffin-Lim iterations, at most 1024 filters: a trial takes seconds
        return {"pairs": 1, "max_seconds": 3.0, "report_every": 4, "griffin_lim_iters": 16,
                "report_griffin_lim_iters": 8, "filters": 512}

    # -- data ----------------------------------------------------------------------------------------
    def data_domains(self, config: ShallowCNNConfig) -> tuple[str, ...] | None:
        """Both domains when the config names them (the sweep then decodes only those), else all."""
        if config.content_domain and config.style_domain:
            return (config.content_domain, config.style_domain)
        return None

    def prepare(self, dataset: AudioDataset, config: ShallowCNNConfig) -> ShallowCNNData:
        """Choose ``config.pairs`` (content, style) pairs deterministically under ``config.seed``.

        Content and style clips come from ``config.split`` (never the train split the metrics reference is fitted
        on): contents from ``content_domain``, style clips from ``style_domain`` with another melody than their
        content (on paired data; contents with a counterpart in the style domain first); the true target is the content's counterpart in the style domain.

        Raises
        ------
        AudiostyleError
            Fewer than two domains, an unknown domain, or fewer content clips than ``pairs``.
        """
        if len(dataset.domains) < 2:
            raise AudiostyleError(
                f"{self.name} needs two domains (content and style), {dataset.source or 'the dataset'} has "
                f"{list(dataset.domains)}: give a dataset with at least two domain folders."
            )
        src = config.content_domain or dataset.domains[0]
        dst = config.style_domain or next(d for d in dataset.domains if d != src)
        if src == dst:
            raise AudiostyleError(f"content_domain and style_domain are both {src!r}: pick two different domains.")
        content_pool = dataset.prefer_paired(dataset.select(src, config.split), dst)
        style_pool = dataset.select(dst, config.split)
        if len(content_pool) < config.pairs or not style_pool:
            raise AudiostyleError(
                f"{self.name}: pairs={config.pairs} but {dataset.source or 'the dataset'} has {len(content_pool)} "
                f"{src!r} and {len(style_pool)} {dst!r} clips in its {config.split!r} split; lower pairs, choose "
                "another split or hold out more melodies."
            )
        rng = np.random.default_rng([config.seed, 3])
        contents = [content_pool[i] for i in rng.permutation(len(content_pool))[: config.pairs]]
        styles = []
        for c in contents:
            other = [s for s in style_pool if s.pair_key is None or s.group != c.group] or style_pool
            styles.append(other[int(rng.integers(len(other)))])
        counterparts = [dataset.counterpart(c, dst) for c in contents]
        max_samples = int(config.max_seconds * config.sr)
        content_audio = _stack(contents, config.sr, max_samples)
        targets = [None if t is None else A.fit_length(A.resample(t.audio, t.sr, config.sr), content_audio.shape[1])
                   for t in counterparts]
        reference = metrics.build_reference(dataset)
        return ShallowCNNData(
            contents=content_audio,
            styles=_stack(styles, config.sr, max_samples),
            targets=targets,
            names=[(c.name, s.name) for c, s in zip(contents, styles)],
            content_domain=src,
            style_domain=dst,
            sr=config.sr,
            reference=reference,
        )

    # -- optimisation --------------------------------------------------------------------------------
    @staticmethod
    def _precision(config: ShallowCNNConfig, device: torch.device) -> contextlib.AbstractContextManager:
        """On CUDA: cuDNN autotuning, and TF32 off unless ``amp="bf16"`` (then autocast is inside the loss)."""
        if device.type != "cuda":
            return contextlib.nullcontext()
        return torch.backends.cudnn.flags(enabled=True, benchmark=True, deterministic=False,
                                          allow_tf32=config.amp != "none")

    def _network(self, config: ShallowCNNConfig, frames: int, batch: int, device: torch.device) -> RandomCNN:
        problem = network_problem(config, frames, batch)
        if problem:
            raise AudiostyleError(problem)
        net = _random_cnn(config)
        if config.weights_path is not None:
            net.load_weights_file(config.weights_path)
        return net.to(device)

    def trial_shape(self, data: ShallowCNNData) -> dict[str, int]:
        """``{"samples": length of the shorter clips at the config's rate, "pairs": pairs per batch}``."""
        return {"samples": min(data.contents.shape[-1], data.styles.shape[-1]), "pairs": data.contents.shape[0]}

    def screen(self, config: ShallowCNNConfig, shape: Mapping[str, int]) -> str | None:
        """:func:`network_problem` on the prepared clips (``shape`` from :meth:`trial_shape`)."""
        return network_problem(config, _frames(config, shape["samples"]), shape["pairs"])

    def step_cost(self, config: ShallowCNNConfig, shape: Mapping[str, int]) -> float:
        """Multiply-adds of one loss evaluation (:func:`multiply_adds`) for the prepared clips."""
        return multiply_adds(config, _frames(config, shape["samples"])) * shape["pairs"]

    def _start(
        self, config: ShallowCNNConfig, contents: np.ndarray, styles: np.ndarray, device: torch.device,
        resume: Mapping[str, Any] | None,
    ) -> _Run:
        spec = config.spec
        if config.pre_eq:
            contents = np.stack([A.eq_match(c, s, config.sr) for c, s in zip(contents, styles)])
        with torch.no_grad():  # torch.tensor copies: arrays from Ray's object store are read-only
            content = features(torch.tensor(contents, device=device), spec)
            style = features(torch.tensor(styles, device=device), spec)
        net = self._network(config, content.shape[-1], content.shape[0], device)
        loss = TransferLoss(net, content, style, config.alpha, style_view(spec, config.style_octaves),
                            bf16=config.amp == "bf16")
        if config.init == "content":
            x = content.clone(memory_format=torch.contiguous_format)
        else:
            gen = torch.Generator().manual_seed(config.seed)
            x = (torch.randn(content.shape, generator=gen) * 1e-3).to(device)
        step, evals = 0, 0
        if resume is not None:
            if resume.get("format") != STATE_FORMAT or tuple(resume["x"].shape) != tuple(x.shape):
                raise AudiostyleError(
                    f"{self.name}: the resume state (format {resume.get('format')!r}, output shape "
                    f"{tuple(resume['x'].shape) if 'x' in resume else None}) does not fit this config and data "
                    f"(format {STATE_FORMAT}, shape {tuple(x.shape)}); start the trial afresh."
                )
            x = resume["x"].to(device=device, dtype=torch.float32).clone(memory_format=torch.contiguous_format)
            step, evals = int(resume["step"]), int(resume.get("evals", 0))
        x.requires_grad_(True)
        opt: torch.optim.Optimizer
        if config.optimizer == "lbfgs":
            opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=10, line_search_fn="strong_wolfe")
        else:
            cls = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}[config.optimizer]
            opt = cls([x], lr=config.lr)
            if resume is not None and resume.get("optimizer"):
                opt.load_state_dict(resume["optimizer"])
        return _Run(loss, x, opt, step, evals)

    def _iterate(self, config: ShallowCNNConfig, run: _Run, iterations: int) -> None:
        """Advance ``run`` by ``iterations`` optimiser iterations."""
        alpha = config.alpha

        def closure() -> torch.Tensor:
            run.opt.zero_grad(set_to_none=True)
            content, style = run.loss(run.x)
            total = (alpha * content + style).sum()
            value = float(total.detach())
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"{self.name}: the loss became {value} at iteration {run.step + 1} (optimizer="
                    f"{config.optimizer}, lr={config.lr}, alpha={config.alpha}, activation={config.activation}); "
                    "lower lr (adam/rmsprop/sgd), use a bounded activation (tanh), or check the input audio."
                )
            total.backward()
            if config.optimizer == "sgd":  # normalised gradient descent (see ShallowCNNConfig.lr)
                run.x.grad.div_(run.x.grad.pow(2).mean().sqrt().clamp_min(1e-12))
            run.evals += 1
            return total

        if isinstance(run.opt, torch.optim.LBFGS):
            # One call runs all iterations: a call per iteration would re-evaluate the point the line search
            # just evaluated. The curvature memory (10 pairs, like scipy's L-BFGS-B) persists across calls.
            run.opt.param_groups[0].update(max_iter=iterations, max_eval=25 * iterations)
            run.opt.step(closure)
        else:
            for _ in range(iterations):
                run.opt.step(closure)
        run.step += iterations

    def _losses(self, config: ShallowCNNConfig, run: _Run) -> dict[str, float]:
        with torch.no_grad():
            content, style = run.loss(run.x)
        pairs = content.shape[0]
        c, s = float(content.sum()) / pairs, float(style.sum()) / pairs
        return {"loss": config.alpha * c + s, "content_loss": c, "style_loss": s, "evals": float(run.evals)}

    def _state(self, config: ShallowCNNConfig, run: _Run) -> dict[str, Any]:
        opt_state = None
        if not isinstance(run.opt, torch.optim.LBFGS):
            opt_state = to_cpu(run.opt.state_dict())
        return {
            "format": STATE_FORMAT,
            "step": run.step,
            "evals": run.evals,
            "x": run.x.detach().to("cpu", copy=True),
            "optimizer": opt_state,
            "config": dataclasses.asdict(config),
        }

    def _optimise(
        self,
        config: ShallowCNNConfig,
        contents: np.ndarray,
        styles: np.ndarray,
        device: torch.device,
        resume: Mapping[str, Any] | None = None,
        on_report: Callable[[_Run, bool], None] | None = None,
    ) -> _Run:
        """Run the batched optimisation to ``config.steps``, calling ``on_report(run, final)`` at report steps."""
        with self._precision(config, device):
            run = self._start(config, contents, styles, device, resume)
            if on_report is not None and run.step >= config.steps:
                on_report(run, True)  # resumed from a finished run: report its final state again
            while run.step < config.steps:
                todo = min(config.report_every - run.step % config.report_every, config.steps - run.step)
                self._iterate(config, run, todo)
                if on_report is not None:
                    on_report(run, run.step >= config.steps)
        return run

    # -- the trial -----------------------------------------------------------------------------------
    def train(self, config: ShallowCNNConfig, data: ShallowCNNData, ctx: TrialContext) -> dict[str, float]:
        """Optimise ``config.pairs`` pairs of ``data`` in one batch; report losses and the common metrics.

        Reports every ``report_every`` iterations (metrics at ``report_griffin_lim_iters``) and at the end
        (``griffin_lim_iters``): the common metrics plus ``loss``, ``content_loss``, ``style_loss`` (per pair) and
        ``evals`` (loss evaluations so far), each with ``state`` = ``{"format", "step", "evals", "x" (the output
        features (pairs, C, T)), "optimizer" (adam/rmsprop/sgd statistics; None for L-BFGS, whose curvature
        memory is rebuilt after a resume), "config"}``. Writes each pair's content, style, output and true target
        (``clip<i>_<role>.wav``) and ``spectrogram.png`` to ``ctx.artifact_dir`` before the final report. Returns the final metrics.

        Raises
        ------
        AudiostyleError
            ``data`` does not match the config (domains, pairs, sample rate) or the config does not fit.
        FloatingPointError
            The loss became NaN or infinite.
        """
        if (data.content_domain, data.style_domain, data.sr) != (
            config.content_domain or data.content_domain, config.style_domain or data.style_domain, config.sr
        ) or len(data.contents) < config.pairs:
            raise AudiostyleError(
                f"{self.name}: the prepared data ({len(data.contents)} pairs {data.content_domain} → "
                f"{data.style_domain} at {data.sr} Hz) does not match the config (pairs={config.pairs}, "
                f"{config.content_domain} → {config.style_domain}, sr={config.sr}); prepare again with this config."
            )
        device = resolve_device(ctx.device)
        contents, styles = data.contents[: config.pairs], data.styles[: config.pairs]
        targets = data.targets[: config.pairs]
        final: dict[str, float] = {}

        def on_report(run: _Run, last: bool) -> None:
            n_iter = config.griffin_lim_iters if last else config.report_griffin_lim_iters
            outputs = to_audio(run.x, config.spec, n_iter, contents.shape[1]).cpu().numpy()
            values = metrics.evaluate(list(outputs), list(contents), config.sr, data.reference, data.style_domain,
                                      true_targets=targets)
            values.update(self._losses(config, run))
            if last and ctx.artifact_dir is not None:
                self._write_artifacts(config, data, outputs, targets, Path(ctx.artifact_dir))
            ctx.report(run.step, values, self._state(config, run))
            final.clear()
            final.update(values)

        self._optimise(config, contents, styles, device, ctx.resume_state, on_report)
        return final

    def _write_artifacts(self, config: ShallowCNNConfig, data: ShallowCNNData, outputs: np.ndarray,
                         targets: np.ndarray | None, out_dir: Path) -> None:
        """Per pair ``clip<i>_{content,style,output,target}.wav``, and ``spectrogram.png`` (:mod:`audiostyle.methods.examples`)."""
        write_examples(out_dir, [
            Example.of(f"clip{i}", y, content=data.contents[i], style=data.styles[i],
                       target=None if targets is None else targets[i],
                       clips={"content": data.names[i][0], "style": data.names[i][1]})
            for i, y in enumerate(outputs)
        ], config.sr, f"{self.name}: {data.content_domain} → {data.style_domain}")

    def render(
        self,
        config: ShallowCNNConfig,
        state: Mapping[str, Any] | None,
        audio: np.ndarray,
        sr: int,
        *,
        style: np.ndarray | None = None,
        device: str = "cpu",
    ) -> np.ndarray:
        """Transfer ``style``'s timbre onto ``audio`` (both mono at ``sr``): a fresh optimisation of ``config``.

        ``state`` is not needed (there is nothing trained) and ignored; ``max_seconds`` does not cut ``audio``.
        Returns float32 ``(len(audio),)`` at ``sr``.
        """
        if style is None:
            raise AudiostyleError(
                f"{self.name} transfers the timbre of a style clip: pass style=<mono waveform at sr> "
                "(e.g. a clip of the target instrument)."
            )
        content = A.resample(np.asarray(audio).reshape(-1), sr, config.sr)[None]
        style_y = A.resample(np.asarray(style).reshape(-1), sr, config.sr)[None, : int(config.max_seconds * config.sr)]
        run = self._optimise(config, content, style_y, resolve_device(device))
        y = to_audio(run.x, config.spec, config.griffin_lim_iters, content.shape[1])[0].cpu().numpy()
        return A.fit_length(A.resample(y, config.sr, sr), len(audio)).astype(np.float32)

