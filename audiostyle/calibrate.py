"""``python -m audiostyle.calibrate``: score anchor outputs with every common metric, check the calibration rule.

An anchor is an output whose quality is known without listening: the true target (best); degenerate outputs that
a sweep must never prefer (copies, the content mixed with a style clip of another melody, the content plus white,
pink or brown noise at 30/20/10 dB SNR, the content resynthesised by Griffin-Lim from its own magnitude, the content
with hum or noise in its pauses only, silence, quiet noise, the target reversed); partial ones (the target
low-passed, a 50/50 mix of content and target, the target through a mel vocoder: :data:`VOCODED`); and the
signal-processing baseline (:data:`BASELINE`: the content equalised to a style clip, or with its spectral
envelope). On test-split melodies (the val split where a dataset has no test split) of one ordered domain pair,
every anchor is scored by :func:`audiostyle.metrics.evaluate` against references fitted on a train split (the
dataset's own; with ``--fit-data`` the timbre space of another dataset's, in which the dataset's own train clips
locate its instruments), and :func:`check_rule` states what must hold:

1. the true target ranks first on the headline (above the baseline too);
2. the 50/50 mix ranks between the target and copy-content;
3. every degenerate anchor (:data:`DEGENERATE`) scores below :data:`DEGENERATE_THRESHOLD` on the headline;
4. every metric moves the way its direction says: the target beats each anchor that the metric exists to reject
   (:data:`REJECTS`; copy-content keeps the melody perfectly, so melody metrics do not reject it; ``silence_kept``
   is judged by copy-content, :data:`JUDGES`);
5. the vocoded target scores above the baseline and every degenerate anchor, and at least
   :data:`DEGENERATE_THRESHOLD`.

Usage::

    python -m audiostyle.calibrate --data demo --content piano --style violin
    python -m audiostyle.calibrate --data bench --content piano --style violin --format json
    python -m audiostyle.calibrate --data bench --soundfont opl3 --fit-data bench --content piano --style violin
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
from audiostyle.audio import StftParams, eq_match, istft, stft, vocode
from audiostyle.data.dataset import AudioDataset, Clip
from audiostyle.errors import AudiostyleError

SNRS_DB = (30, 20, 10)
"""Signal-to-noise ratios (dB) of the content-plus-noise anchors, for each of :data:`NOISE_COLOURS`."""
NOISE_COLOURS: dict[str, float] = {"white": 0.0, "pink": 1.0, "brown": 2.0}
"""Noise colours and the exponent ``a`` of their power spectrum ``∝ 1/f^a``."""
GRIFFIN_LIM_ITERS = (16, 64)
"""Iterations of the Griffin-Lim resynthesis anchors (the content's own magnitude, phase rebuilt)."""
ENVELOPE_CEPSTRA = 24
"""Cepstral coefficients of the spectral envelope the ``envelope`` anchor swaps."""
ANCHOR_FFT = 2048
"""STFT size (samples) of the spectral anchors and :func:`interpolate`; the hop is a quarter of it."""
ANCHOR_STFT = StftParams(ANCHOR_FFT, ANCHOR_FFT // 4)
"""The anchors' STFT (:data:`ANCHOR_FFT`, its quarter as the hop)."""
PAUSE_SNR_DB = 20.0
"""Level (dB below the content's RMS) of the hum and the noise the pause anchors put where the content is silent."""
HUM_HZ = 60.0
"""Fundamental (Hz) of the pause anchor's hum (mains, five harmonics at 1/k amplitude)."""
QUIET_DBFS = -60.0
"""RMS level (dBFS) of the quiet-noise anchor."""
LOWPASS_HZ = 2000.0
"""Cut-off (Hz) of the low-passed-target anchor (8th-order Butterworth, zero phase)."""
DEGENERATE_THRESHOLD = 0.5
"""Headline below which every degenerate anchor must score. The headline is a geometric mean of components in
[0, 1]; a degenerate output fails at least one component outright (copy-content, noise, resynthesis: timbre and
target; copy-style, the content/style mix and reversal: melody and target; silence: all), which caps it near the
square (cube) root of the others' product."""
NOISES: tuple[str, ...] = tuple(f"{c}_{s}db" for c in NOISE_COLOURS for s in SNRS_DB)
"""The content-plus-noise anchors (every colour at every SNR)."""
RESYNTHESES: tuple[str, ...] = tuple(f"griffin_lim_{n}" for n in GRIFFIN_LIM_ITERS)
"""The content resynthesised from its own magnitude: the phase artefacts of a spectrogram method, nothing moved."""
BASELINE: tuple[str, ...] = ("eq_match", "envelope")
"""The signal-processing baseline: the content equalised to the style clip's long-term spectrum (1/3-octave
smoothed), and the content with its per-frame cepstral envelope replaced by the style clip's mean one. They move
the timbre part of the way, so they may score above copy-content but must stay below the target; a method that
does not beat them does no more than an equaliser."""
VOCODED = "target_vocoded"
"""The true target through a mel vocoder (:data:`VOCODED_MEL`): what a mel-domain method that transferred perfectly
outputs. It must score above every degenerate anchor and the baseline, or no mel-domain method can be told from one
that did nothing."""
VOCODED_MEL = (64, 1024, 256)
"""``(n_mels, n_fft, hop)`` of the :data:`VOCODED` anchor: the SegNet/U-Net ``cpu`` preset's mel, coarser than
every vocoder the references are fitted through (:data:`audiostyle.metrics.VOCODERS`), so the anchor also checks
that they generalise to a vocoder they never saw."""
ANCHORS: tuple[str, ...] = (
    "target", "mix", "lowpass_2k", VOCODED, *BASELINE, "copy_content", "copy_style", "mix_style", *NOISES, *RESYNTHESES,
    "pause_hum", "pause_noise", "silence", "quiet_noise", "reversed",
)
"""Every anchor, in table order."""
DEGENERATE: tuple[str, ...] = ANCHORS[ANCHORS.index("copy_content"):]
"""Anchors that must score below :data:`DEGENERATE_THRESHOLD`."""
CLIP_ANCHORS = ("target", "copy_content", "copy_style")
"""Anchors that are dataset clips as they are: their features (pitch track included) are computed once per process
(:func:`audiostyle.metrics.cached_features`), as they recur as contents and targets of other directions."""
_UNMOVED = ("copy_content", *NOISES, *RESYNTHESES, "pause_hum", "pause_noise", "silence", "quiet_noise")
REJECTS: dict[str, tuple[str, ...]] = {
    **{m: ("copy_style", "silence", "quiet_noise", "reversed") for m in metrics.MELODY_METRICS},
    "timbre_dist": _UNMOVED,
    "target_prob": _UNMOVED,
    "timbre_shift": _UNMOVED,
    "fad": ("copy_content", "silence", "quiet_noise"),
    "silence_kept": ("pause_hum", "pause_noise"),
    "lsd_db": tuple(a for a in ANCHORS if a != "target"),
    "lsd_rel": tuple(a for a in ANCHORS if a != "target"),
}
"""Per metric, the anchors the true target (or the metric's :data:`JUDGES` anchor) must beat on it (rule 4)."""
JUDGES: dict[str, str] = {"silence_kept": "copy_content"}
"""Metrics whose rejected anchors are judged against another anchor than the true target: ``silence_kept`` is the
output's level where the *content* is silent, and a target instrument may ring there legitimately (a piano's
release after a flute's note), so the content itself, silent there by definition, must beat the pause anchors."""


def evaluation_split(dataset: AudioDataset) -> str:
    """``"test"`` when the dataset has test clips, else ``"val"``: the melodies final scores are measured on."""
    return "test" if dataset.select(split="test") else "val"


def _rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64)) + 1e-20))


def _noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Unit-RMS noise with power spectrum ``∝ 1/f^exponent`` (0 white, 1 pink, 2 brown), ``(n,)``."""
    white = rng.standard_normal(n)
    if exponent:
        spectrum = np.fft.rfft(white)
        spectrum[1:] /= np.arange(1, spectrum.size) ** (exponent / 2)
        spectrum[0] = 0.0
        white = np.fft.irfft(spectrum, n)
    return white / _rms(white)


def _envelope_db(spec: np.ndarray) -> np.ndarray:
    """Per-frame cepstral envelope (dB) of a complex STFT: its log magnitude low-quefrency-liftered to
    :data:`ENVELOPE_CEPSTRA` coefficients, ``(bins, frames)``."""
    log_mag = 20 * np.log10(np.abs(spec) + 1e-8)
    cep = np.fft.irfft(log_mag, axis=0)
    cep[ENVELOPE_CEPSTRA:-ENVELOPE_CEPSTRA + 1] = 0.0
    return np.fft.rfft(cep, axis=0).real


def envelope_swap(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """The content with each frame's cepstral envelope (:data:`ENVELOPE_CEPSTRA` coefficients, its level kept)
    replaced by the style clip's mean envelope over its active frames (a source-filter swap: the content's fine
    structure, the style's filter); ``(samples,)``."""
    c, s = stft(content, ANCHOR_STFT), stft(style, ANCHOR_STFT)
    env_s = _envelope_db(s)
    level = 20 * np.log10(np.abs(s).sum(axis=0) + 1e-8)
    mean_s = env_s[:, level >= level.max() - 40].mean(axis=1, keepdims=True)
    env_c = _envelope_db(c)
    gain_db = (mean_s - mean_s.mean()) - (env_c - env_c.mean(axis=0))  # the shape swapped, each frame's level kept
    return istft(c * 10 ** (gain_db / 20), ANCHOR_STFT, len(content))


def _at_snr(y: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    return y + noise * _rms(y) * 10 ** (-snr_db / 20)


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
    c, t = stft(content[:n], ANCHOR_STFT), stft(target[:n], ANCHOR_STFT)
    mag = (1 - alpha) * np.abs(c) + alpha * np.abs(t)
    return istft(mag * np.exp(1j * np.angle((1 - alpha) * c + alpha * t)), ANCHOR_STFT, n)


def pauses(y: np.ndarray) -> np.ndarray:
    """Where ``y (samples,)`` is silent: a gain in [0, 1] per sample, 1 in frames more than
    :data:`audiostyle.metrics._features.TOP_DB` below its loudest (what ``silence_kept`` measures), with ramps of
    one hop between."""
    hop = ANCHOR_FFT // 4
    rms = librosa.feature.rms(y=np.asarray(y, dtype=np.float32), frame_length=ANCHOR_FFT, hop_length=hop)[0]
    db = 20 * np.log10(rms + 1e-10)
    quiet = np.repeat((db < db.max() - metrics.TOP_DB).astype(np.float64), hop)
    quiet = np.pad(quiet, (hop // 2, max(len(y) - len(quiet) - hop // 2, 0)), mode="edge")[: len(y)]
    ramp = np.hanning(hop) / np.hanning(hop).sum()
    return np.convolve(np.pad(quiet, hop, mode="edge"), ramp, mode="same")[hop:-hop]


def _hum(n: int, sr: int) -> np.ndarray:
    """Unit-RMS mains hum at :data:`HUM_HZ` with five harmonics at 1/k amplitude, ``(n,)``."""
    t = np.arange(n) / sr
    y = sum(np.sin(2 * np.pi * HUM_HZ * k * t) / k for k in range(1, 6))
    return y / _rms(y)


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
    style = np.pad(style[:n], (0, max(n - len(style), 0))).astype(np.float64)
    rng = np.random.default_rng(seed)
    noises = {colour: _noise(n, rng, exponent) for colour, exponent in NOISE_COLOURS.items()}
    lowpass = signal.butter(8, LOWPASS_HZ, fs=sr, output="sos")
    n_mels, n_fft, hop = VOCODED_MEL
    magnitude = np.abs(stft(c, ANCHOR_STFT))
    gate, pause_level = pauses(c), _rms(c) * 10 ** (-PAUSE_SNR_DB / 20)
    out = {
        "target": t,
        "mix": 0.5 * c + 0.5 * t,
        "lowpass_2k": signal.sosfiltfilt(lowpass, t),
        VOCODED: vocode(t, sr, n_mels, StftParams(n_fft=n_fft, hop_length=hop), n_iter=metrics.VOCODER_ITERS),
        "eq_match": eq_match(c, style, sr, ANCHOR_STFT),
        "envelope": envelope_swap(c, style),
        "copy_content": c,
        "copy_style": style,
        "mix_style": 0.5 * c + 0.5 * style,
        **{f"{colour}_{s}db": _at_snr(c, noises[colour], s) for colour in NOISE_COLOURS for s in SNRS_DB},
        **{f"griffin_lim_{it}": librosa.griffinlim(magnitude, n_iter=it, hop_length=ANCHOR_FFT // 4,
                                                   n_fft=ANCHOR_FFT, length=n, random_state=seed)
           for it in GRIFFIN_LIM_ITERS},
        "pause_hum": c + gate * _hum(n, sr) * pause_level,
        "pause_noise": c + gate * noises["white"] * pause_level,
        "silence": np.zeros(n),
        "quiet_noise": noises["white"] * 10 ** (QUIET_DBFS / 20),
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


def calibration_pairs(dataset: AudioDataset, content: str, style: str, split: str, limit: int | None
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


def check_request(dataset: AudioDataset | None, content: str, style: str, melodies: int | None) -> None:
    """Refuse a calibration that cannot run: no melodies, one domain twice, or (given the dataset) a domain it
    lacks. Raises :class:`AudiostyleError` naming the value and the fix."""
    if melodies is not None and melodies < 1:
        raise AudiostyleError(f"--melodies {melodies}: score at least one melody; pass --melodies 1 or more, or "
                              "leave it out (all).")
    if content == style:
        raise AudiostyleError(f"--content and --style are both {content!r}: pick two different domains.")
    for flag, domain in (("--content", content), ("--style", style)):
        if dataset is not None and domain not in dataset.domains:
            raise AudiostyleError(f"{flag} {domain!r} is not a domain of {dataset.source or 'the dataset'}: choose "
                                  f"one of {', '.join(dataset.domains)}.")


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
        :func:`audiostyle.metrics.build_reference` of ``dataset`` (built when absent), or of another dataset with
        the same domain names (references from another recording source).
    melodies : int, optional
        Score at most this many melodies (the first by name); all when None.

    Returns
    -------
    Calibration
    """
    check_request(dataset, content, style, melodies)
    reference = reference or metrics.build_reference(dataset)
    split = evaluation_split(dataset)
    triples = calibration_pairs(dataset, content, style, split, melodies)
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
    beaten = max(BASELINE + DEGENERATE, key=lambda a: h[a])
    if not h[VOCODED] > max(h[beaten], DEGENERATE_THRESHOLD):
        bad.append(f"{VOCODED} {h[VOCODED]:.3f} does not beat {beaten} {h[beaten]:.3f} and {DEGENERATE_THRESHOLD}")
    for metric, rejected in REJECTS.items():
        sign = 1.0 if metrics.METRIC_DIRECTIONS[metric] == "max" else -1.0
        judge = JUDGES.get(metric, "target")
        mine = rows[judge][metric]
        for a in rejected:
            theirs = rows[a][metric]
            if math.isfinite(mine) and not sign * mine > sign * theirs:
                bad.append(f"{metric}: {judge} {mine:.3f} does not beat {a} {theirs:.3f} "
                           f"({metrics.METRIC_DIRECTIONS[metric]} is better)")
    return bad


# -- CLI ------------------------------------------------------------------------------------------------------
_TABLE_COLUMNS = (metrics.HEADLINE, "melody", "pitch_acc", "chroma_sim", "onset_f1", "timbre_dist", "target_prob",
                  "timbre_shift", "lsd_db", "lsd_rel", "fad", "silence_kept")


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
    p.add_argument("--soundfont", default=None,
                   help="the soundfont that renders --data bench: a path or musescore, timgm6mb, opl3")
    p.add_argument("--fit-data", default=None,
                   help="fit the references' timbre space (what a melody, a noise floor or a vocoder does to an "
                        "instrument) on this dataset's train split instead of --data's (same domain names), to check "
                        "that the metrics hold on recordings from another source; --data's train clips locate its "
                        "instruments in that space (another library's violin sits elsewhere than this one's)")
    p.add_argument("--fit-soundfont", default=None, help="the soundfont that renders --fit-data bench")
    p.add_argument("--content", required=True, help="content domain (e.g. piano)")
    p.add_argument("--style", required=True, help="target domain (e.g. violin)")
    p.add_argument("--melodies", type=int, default=None, help="score at most this many melodies; None = all")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.add_argument("--cache", default=None, help="feature and reference cache folder")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; exit status 0 when the rule holds, 1 when it fails, 2 on a user error."""
    from audiostyle.data import load_dataset

    args = parser().parse_args(argv)
    try:
        check_request(None, args.content, args.style, args.melodies)  # before the dataset loads
        dataset = load_dataset(args.data, cache_dir=args.cache, soundfont=args.soundfont)
        check_request(dataset, args.content, args.style, args.melodies)  # before the references are fitted
        fit = dataset if args.fit_data is None else load_dataset(args.fit_data, cache_dir=args.cache,
                                                                  soundfont=args.fit_soundfont)
        result = calibrate(dataset, args.content, args.style, melodies=args.melodies,
                           reference=metrics.build_reference(dataset, cache_dir=args.cache, space_from=fit))
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
