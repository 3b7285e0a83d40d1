"""``python -m audiostyle.calibrate``: score anchor outputs with every common metric, check the calibration rule.

An anchor is an output whose quality is known without listening: the true target (best), degenerate outputs that
a sweep must never prefer (copies, noise, silence, the target reversed) and two partial ones (the target low-passed,
a 50/50 mix of content and target). On test-split melodies (the val split where a dataset has no test split) of one
ordered domain pair, every anchor is scored by :func:`audiostyle.metrics.evaluate` against references fitted on the
train split, and :func:`check_rule` states what must hold:

1. the true target ranks first on the headline;
2. the 50/50 mix ranks between the target and copy-content;
3. every degenerate anchor (:data:`DEGENERATE`) scores below :data:`DEGENERATE_THRESHOLD` on the headline;
4. every metric moves the way its direction says: the target beats each anchor that the metric exists to reject
   (:data:`REJECTS`; copy-content keeps the melody perfectly, so melody metrics do not reject it).

Usage::

    python -m audiostyle.calibrate --data demo --content piano --style violin
    python -m audiostyle.calibrate --data bench --content piano --style violin --format json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import librosa
import numpy as np
from scipy import signal

from audiostyle import metrics
from audiostyle.data.dataset import AudioDataset, Clip
from audiostyle.errors import AudiostyleError

SNRS_DB = (30, 20, 10)
"""Signal-to-noise ratios (dB) of the content-plus-white-noise anchors."""
PINK_SNR_DB = 20
"""Signal-to-noise ratio (dB) of the content-plus-pink-noise anchor."""
QUIET_DBFS = -60.0
"""RMS level (dBFS) of the quiet-noise anchor."""
LOWPASS_HZ = 2000.0
"""Cut-off (Hz) of the low-passed-target anchor (8th-order Butterworth, zero phase)."""
DEGENERATE_THRESHOLD = 0.5
"""Headline below which every degenerate anchor must score. The headline is a geometric mean of components in
[0, 1]; a degenerate output fails at least one component outright (copy-content and noise: timbre; copy-style and
reversal: melody and target; silence: all), which caps it near the square (cube) root of the others' product."""
ANCHORS: tuple[str, ...] = (
    "target", "mix", "lowpass_2k", "copy_content", "copy_style", *(f"white_{s}db" for s in SNRS_DB),
    f"pink_{PINK_SNR_DB}db", "silence", "quiet_noise", "reversed",
)
"""Every anchor, in table order."""
DEGENERATE: tuple[str, ...] = ANCHORS[3:]
"""Anchors that must score below :data:`DEGENERATE_THRESHOLD`."""
CLIP_ANCHORS = ("target", "copy_content", "copy_style")
"""Anchors that are dataset clips as they are: their features (pitch track included) are computed once per process
(:func:`audiostyle.metrics.cached_features`), as they recur as contents and targets of other directions."""
_NOISES = tuple(a for a in ANCHORS if a.startswith(("white", "pink")))
REJECTS: dict[str, tuple[str, ...]] = {
    **{m: ("copy_style", "silence", "quiet_noise", "reversed") for m in metrics.MELODY_METRICS},
    "timbre_dist": ("copy_content", *_NOISES, "silence", "quiet_noise"),
    "target_prob": ("copy_content", *_NOISES, "silence", "quiet_noise"),
    "timbre_shift": ("copy_content", *_NOISES, "silence", "quiet_noise"),
    "fad": ("copy_content", "silence", "quiet_noise"),
    "lsd_db": tuple(a for a in ANCHORS if a != "target"),
    "lsd_rel": tuple(a for a in ANCHORS if a != "target"),
}
"""Per metric, the anchors the true target must beat on it (rule 4)."""


def evaluation_split(dataset: AudioDataset) -> str:
    """``"test"`` when the dataset has test clips, else ``"val"``: the melodies final scores are measured on."""
    return "test" if dataset.select(split="test") else "val"


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)) + 1e-20))


def _noise(n: int, rng: np.random.Generator, colour: str) -> np.ndarray:
    """Unit-RMS white or pink (power ∝ 1/f) noise, ``(n,)``."""
    white = rng.standard_normal(n)
    if colour == "pink":
        spectrum = np.fft.rfft(white)
        spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
        spectrum[0] = 0.0
        white = np.fft.irfft(spectrum, n)
    return white / _rms(white)


def _at_snr(y: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    return y + noise * _rms(y) * 10 ** (-snr_db / 20)


INTERPOLATION_FFT = 2048
"""STFT size (samples) of :func:`interpolate`; its hop is a quarter of it."""


def interpolate(content: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
    """Magnitude-spectrum interpolation from ``content`` (``alpha`` 0) to its true ``target`` (``alpha`` 1).

    Per STFT bin the magnitude is ``(1 - alpha)·|C| + alpha·|T|`` and the phase that of ``(1 - alpha)·C + alpha·T``
    (no iteration, so no phase artefacts beyond the overlap-add's): an output that moved a known fraction of the way,
    which the headline must grade monotonically (``tests/test_calibrate.py``).

    Parameters
    ----------
    content, target : np.ndarray
        ``(samples,)`` each, same sample rate; cut to the shorter.
    alpha : float
        In [0, 1].

    Returns
    -------
    np.ndarray
        float32 ``(samples,)``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise AudiostyleError(f"interpolation weight alpha={alpha} is outside [0, 1]; give a fraction of the way.")
    n = min(len(content), len(target))
    hop = INTERPOLATION_FFT // 4
    c, t = (librosa.stft(np.asarray(y[:n], dtype=np.float32), n_fft=INTERPOLATION_FFT, hop_length=hop)
            for y in (content, target))
    mag = (1 - alpha) * np.abs(c) + alpha * np.abs(t)
    spec = mag * np.exp(1j * np.angle((1 - alpha) * c + alpha * t))
    return librosa.istft(spec, hop_length=hop, length=n).astype(np.float32)


def make_anchors(content: np.ndarray, target: np.ndarray, style: np.ndarray, sr: int, seed: int = 0
                 ) -> dict[str, np.ndarray]:
    """The anchor outputs of one content clip.

    Parameters
    ----------
    content, target : np.ndarray
        The content clip and its true rendering in the target domain, float32 ``(samples,)`` at ``sr`` (cut to the
        shorter).
    style : np.ndarray
        A target-domain clip of another melody, ``(samples,)`` (cut or zero-padded to the content's length).
    sr : int
        Sample rate, Hz.
    seed : int
        Seed of the noises.

    Returns
    -------
    dict of str to np.ndarray
        One float32 ``(samples,)`` waveform per name of :data:`ANCHORS`.
    """
    n = min(len(content), len(target))
    c, t = content[:n].astype(np.float64), target[:n].astype(np.float64)
    rng = np.random.default_rng(seed)
    white, pink = _noise(n, rng, "white"), _noise(n, rng, "pink")
    lowpass = signal.butter(8, LOWPASS_HZ, fs=sr, output="sos")
    out = {
        "target": t,
        "mix": 0.5 * c + 0.5 * t,
        "lowpass_2k": signal.sosfiltfilt(lowpass, t),
        "copy_content": c,
        "copy_style": np.pad(style[:n], (0, max(n - len(style), 0))),
        **{f"white_{s}db": _at_snr(c, white, s) for s in SNRS_DB},
        f"pink_{PINK_SNR_DB}db": _at_snr(c, pink, PINK_SNR_DB),
        "silence": np.zeros(n),
        "quiet_noise": white * 10 ** (QUIET_DBFS / 20),
        "reversed": t[::-1],
    }
    return {name: np.asarray(out[name], dtype=np.float32) for name in ANCHORS}


@dataclass
class Calibration:
    """The anchors' metrics on one ordered domain pair.

    Attributes
    ----------
    content_domain, style_domain : str
    split : str
        The split whose melodies were scored.
    melodies : list of str
        Their pair keys.
    rows : dict of str to dict
        Per anchor (:data:`ANCHORS` order), the :func:`audiostyle.metrics.evaluate` row over the melodies.
    seconds_per_output : float
        Wall time of :func:`audiostyle.metrics.evaluate` per output clip, s (references excluded).
    violations : list of str
        What :func:`check_rule` found; empty when the rule holds.
    """

    content_domain: str
    style_domain: str
    split: str
    melodies: list[str]
    rows: dict[str, dict[str, float]]
    seconds_per_output: float
    violations: list[str] = field(default_factory=list)


def _pairs(dataset: AudioDataset, content: str, style: str, split: str, limit: int | None
           ) -> list[tuple[Clip, Clip, Clip]]:
    """(content, true target, style clip of another melody) of the split's paired melodies."""
    held = [c for c in dataset.select(content, split) if dataset.counterpart(c, style) is not None]
    if not held:
        raise AudiostyleError(
            f"calibration needs paired {content!r} clips with a {style!r} counterpart in the {split!r} split of "
            f"{dataset.source or 'the dataset'}; it has none. Calibrate on a paired dataset (--data demo or bench)."
        )
    held = sorted(held, key=lambda c: c.name)[:limit]
    others = sorted(dataset.select(style), key=lambda c: (c.split != split, c.name))
    out = []
    for i, c in enumerate(held):
        candidates = [s for s in others if s.pair_key != c.pair_key]
        out.append((c, dataset.counterpart(c, style), candidates[i % len(candidates)]))  # type: ignore[arg-type]
    return out


def calibrate(dataset: AudioDataset, content: str, style: str, *, reference: metrics.Reference | None = None,
              melodies: int | None = None) -> Calibration:
    """Score every anchor on the evaluation split's melodies of ``content`` → ``style`` and check the rule.

    Parameters
    ----------
    dataset : AudioDataset
        A paired dataset with train clips of every domain.
    content, style : str
        The content and target domains.
    reference : Reference, optional
        :func:`audiostyle.metrics.build_reference` of ``dataset`` (built when absent).
    melodies : int, optional
        Score at most this many melodies (the first by name); all when None.

    Returns
    -------
    Calibration
    """
    if content == style:
        raise AudiostyleError(f"--content and --style are both {content!r}: pick two different domains.")
    reference = reference or metrics.build_reference(dataset)
    split = evaluation_split(dataset)
    triples = _pairs(dataset, content, style, split, melodies)
    anchors = [make_anchors(c.audio, t.audio, s.audio, dataset.sr, seed=i) for i, (c, t, s) in enumerate(triples)]
    rows, start = {}, time.perf_counter()
    for name in ANCHORS:
        outputs = [metrics.cached_features(a[name], dataset.sr) if name in CLIP_ANCHORS else a[name] for a in anchors]
        contents = [a["copy_content"] for a in anchors]
        rows[name] = metrics.evaluate(outputs, contents, dataset.sr, reference, style,
                                      true_targets=[a["target"] for a in anchors])
    per_output = (time.perf_counter() - start) / (len(ANCHORS) * len(anchors))
    result = Calibration(content, style, split, [c.pair_key or c.name for c, _, _ in triples], rows, per_output)
    result.violations = check_rule(rows)
    return result


def check_rule(rows: dict[str, dict[str, float]]) -> list[str]:
    """The calibration rule (module docstring) on one pair's anchor rows; returns what fails (empty: it holds).

    Parameters
    ----------
    rows : dict of str to dict
        Per anchor name (every name of :data:`ANCHORS`), its metrics row.

    Returns
    -------
    list of str
        One sentence per failed condition, naming the anchors and values.
    """
    h = {name: rows[name][metrics.HEADLINE] for name in ANCHORS}
    bad = []
    best = max(h, key=lambda a: h[a])
    if best != "target" or sum(v == h["target"] for v in h.values()) > 1:
        bad.append(f"{best} ({h[best]:.3f}) ranks first on {metrics.HEADLINE}, not the target ({h['target']:.3f})")
    if not h["target"] > h["mix"] > h["copy_content"]:
        bad.append(f"mix {h['mix']:.3f} is not between target {h['target']:.3f} and copy_content "
                   f"{h['copy_content']:.3f}")
    bad += [f"degenerate {a} scores {h[a]:.3f} >= {DEGENERATE_THRESHOLD}" for a in DEGENERATE
            if not h[a] < DEGENERATE_THRESHOLD]
    for metric, rejected in REJECTS.items():
        sign = 1.0 if metrics.METRIC_DIRECTIONS[metric] == "max" else -1.0
        mine = rows["target"][metric]
        for a in rejected:
            theirs = rows[a][metric]
            if math.isfinite(mine) and not sign * mine > sign * theirs:
                bad.append(f"{metric}: target {mine:.3f} does not beat {a} {theirs:.3f} "
                           f"({metrics.METRIC_DIRECTIONS[metric]} is better)")
    return bad


# -- CLI ------------------------------------------------------------------------------------------------------
_TABLE_COLUMNS = (metrics.HEADLINE, "melody", "pitch_acc", "chroma_sim", "onset_f1", "timbre_dist", "target_prob",
                  "timbre_shift", "lsd_db", "lsd_rel", "fad")


def format_table(result: Calibration) -> str:
    """A Markdown table of one :class:`Calibration` (anchors × metrics) and its verdict."""
    head = f"{result.content_domain} → {result.style_domain}, {len(result.melodies)} {result.split} melodies"
    lines = [f"### {head}", "", "| anchor | " + " | ".join(_TABLE_COLUMNS) + " |",
             "|---|" + "---:|" * len(_TABLE_COLUMNS)]
    for name, row in result.rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in _TABLE_COLUMNS) + " |")
    verdict = "rule holds" if not result.violations else "rule FAILS: " + "; ".join(result.violations)
    lines += ["", f"{verdict}; {1000 * result.seconds_per_output:.0f} ms per output.", ""]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m audiostyle.calibrate``."""
    p = argparse.ArgumentParser(
        prog="python -m audiostyle.calibrate",
        description="Score anchor outputs (true target, copies, noise, silence, reversed, low-passed, mix) on test-"
                    "split melodies with every common metric and the headline, and check the calibration rule.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default="demo", help="paired dataset: 'demo', 'bench', a folder, or s3://bucket/prefix")
    p.add_argument("--content", required=True, help="content domain (e.g. piano)")
    p.add_argument("--style", required=True, help="target domain (e.g. violin)")
    p.add_argument("--melodies", type=int, default=None, help="score at most this many melodies (default: all)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.add_argument("--cache", default=None, help="feature and reference cache folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; exit status 0 when the rule holds, 1 when it fails, 2 on a user error."""
    from audiostyle.data import load_dataset

    args = parser().parse_args(argv)
    try:
        dataset = load_dataset(args.data, cache_dir=args.cache)
        result = calibrate(dataset, args.content, args.style, melodies=args.melodies,
                           reference=metrics.build_reference(dataset, cache_dir=args.cache))
    except AudiostyleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps({"content": result.content_domain, "style": result.style_domain, "split": result.split,
                          "melodies": result.melodies, "rows": result.rows, "violations": result.violations,
                          "seconds_per_output": result.seconds_per_output}, indent=2, allow_nan=True))
    else:
        print(format_table(result))
    return 0 if not result.violations else 1


if __name__ == "__main__":
    sys.exit(main())
