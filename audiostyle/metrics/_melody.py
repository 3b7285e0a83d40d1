"""Melody kept: pitch accuracy (pYIN, 50 cents), chroma similarity (polyphony) and onset F1 (mir_eval, 50 ms).

Each score takes ``(output, content)``, the :class:`ClipFeatures` of an output and of the content clip it was
made from, and returns one float; frames past the shorter clip are left out unless its docstring says otherwise.
"""

from __future__ import annotations

import math
import warnings

import librosa
import mir_eval
import numpy as np

from audiostyle.metrics._features import HOP, METRIC_SR, N_FFT, ClipFeatures

PITCH_FMIN_HZ = 65.41
"""Lowest f0 tracked (C2), Hz: below the cello's and guitar's lowest notes only the bass instruments go."""
PITCH_FMAX_HZ = 2093.0
"""Highest f0 tracked (C7), Hz: above the flute's and violin's usual range."""
PITCH_RESOLUTION = 0.25
"""pYIN's pitch-state spacing, semitones (25 cents, half the tolerance). librosa's default (0.1) makes the Viterbi
decoding 6x slower for no change in the 50-cent accuracy (``benchmarks/bench_calibration.py`` compares them)."""
PITCH_THRESHOLDS = 20
"""pYIN's number of YIN thresholds (librosa's default 100; the voicing decision of a clean tone does not move)."""
CENT_TOLERANCE = 50.0
"""An output frame's f0 counts as correct within this many cents of the content's (MIREX raw pitch accuracy)."""
ONSET_WINDOW_S = 0.05
"""Onset-matching window of :func:`onset_f1`, s (mir_eval's and MIREX's default)."""


def pitch_track(f: ClipFeatures) -> tuple[np.ndarray, np.ndarray]:
    """f0 and voicing of a clip by pYIN (librosa), memoised on the features.

    Parameters
    ----------
    f : ClipFeatures

    Returns
    -------
    f0 : np.ndarray
        Hz, float64 ``(frames,)`` on the metric frames (hop :data:`HOP`, centred); NaN where unvoiced.
    voiced : np.ndarray
        Boolean ``(frames,)``.
    """
    if "pitch" not in f.memo:
        if f.silent:
            f0 = np.full(f.frames, np.nan)
        else:
            f0, _, _ = librosa.pyin(f.audio, fmin=PITCH_FMIN_HZ, fmax=PITCH_FMAX_HZ, sr=METRIC_SR,
                                    frame_length=N_FFT, hop_length=HOP, resolution=PITCH_RESOLUTION,
                                    n_thresholds=PITCH_THRESHOLDS)
            f0 = np.asarray(f0[: f.frames], np.float64)
        f.memo["pitch"] = (f0, np.isfinite(f0))
    return f.memo["pitch"]


def pitch_accuracy(output: ClipFeatures, content: ClipFeatures) -> float:
    """``pitch_acc``: raw pitch accuracy of the output against the content's pitch track.

    The fraction of the content's voiced frames in which the output is voiced and its f0 lies within
    :data:`CENT_TOLERANCE` cents of the content's: MIREX's raw pitch accuracy
    (``mir_eval.melody.raw_pitch_accuracy`` with the output's unvoiced frames counted as misses, not as guesses).
    Octave errors are misses (a transposed output has not kept the melody), so an instrument an octave off the
    content scores low: a transposition-free rendering is what this measures. Frames past the shorter clip count as
    misses of the output.

    The value is in [0, 1]; NaN when the content has no voiced frame (unpitched content: only chroma and onsets
    apply).
    """
    ref_f0, ref_voiced = pitch_track(content)
    if not ref_voiced.any():
        return math.nan
    out_f0, out_voiced = pitch_track(output)
    n = min(ref_f0.size, out_f0.size)
    hit = np.zeros(ref_f0.size, dtype=bool)
    both = ref_voiced[:n] & out_voiced[:n]
    cents = np.full(n, np.inf)
    cents[both] = 1200.0 * np.abs(np.log2(out_f0[:n][both] / ref_f0[:n][both]))
    hit[:n] = cents <= CENT_TOLERANCE
    return float(hit[ref_voiced].mean())


def chroma_similarity(output: ClipFeatures, content: ClipFeatures) -> float:
    """``chroma_sim``: mean over the content's active frames of the cosine of the mean-removed chroma vectors.

    Chroma carries harmony as well as melody, so it judges polyphonic content that a single f0 cannot. Removing
    each frame's mean makes noise (a flat chroma) score about 0 rather than the cosine of two positive vectors.

    The value is in [-1, 1]; 1 for the same pitch classes in the same proportions, 0 for a silent or flat output.
    """
    n = min(output.frames, content.frames)
    a = output.chroma[:, :n] - output.chroma[:, :n].mean(axis=0)
    b = content.chroma[:, :n] - content.chroma[:, :n].mean(axis=0)
    norm = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
    cos = np.where(norm > 1e-12, (a * b).sum(axis=0) / np.maximum(norm, 1e-12), 0.0)
    frames = content.active[:n]
    return float(cos[frames].sum() / max(int(content.active.sum()), 1))


def onset_times(f: ClipFeatures) -> np.ndarray:
    """Onset times (s), memoised on the features; none if silent.

    librosa's peak picking on the onset envelope, each peak moved back to the preceding minimum of the frame level
    (``backtrack``): a bowed or blown attack peaks in spectral flux well after the note starts.
    """
    if "onsets" not in f.memo:
        f.memo["onsets"] = np.zeros(0) if f.silent else librosa.onset.onset_detect(
            onset_envelope=f.onset, sr=METRIC_SR, hop_length=HOP, units="time", backtrack=True, energy=f.energy_db)
    return f.memo["onsets"]


def onset_f1(output: ClipFeatures, content: ClipFeatures) -> float:
    """``onset_f1``: F-measure of the output's onsets against the content's (``mir_eval.onset.f_measure``).

    The value is in [0, 1] with a :data:`ONSET_WINDOW_S` window; NaN when the content has no onset.
    """
    ref = onset_times(content)
    if ref.size == 0:
        return math.nan
    est = onset_times(output)
    end = min(output.frames, content.frames) * HOP / METRIC_SR
    with warnings.catch_warnings():  # mir_eval warns on an empty estimate, which correctly scores 0
        warnings.simplefilter("ignore", UserWarning)
        return float(mir_eval.onset.f_measure(ref[ref < end], est[est < end], window=ONSET_WINDOW_S)[0])


def melody_metrics(output: ClipFeatures, content: ClipFeatures, target: ClipFeatures | None = None
                   ) -> dict[str, float]:
    """``pitch_acc``, ``chroma_sim``, ``onset_f1`` and their summary ``melody`` for one output.

    ``melody`` is ``pitch_acc``, or ``max(chroma_sim, 0)`` where the content has no pitch track (unpitched or
    chordal content), in [0, 1]; both are per frame, so a note moved in time is a miss too. The chroma is not
    averaged in where a pitch track exists: it hears timbre as well as pitch (an output equalised toward a guitar
    keeps the pitch line at 0.95 but its chroma at 0.62, since the partials' weights move between pitch classes),
    so it could not tell a second melody laid over the content (a 50/50 mix with the style clip keeps ``chroma_sim``
    near 0.8 while its pitch line breaks to 0.47) from a timbre change, and a mean let it pay for the broken line
    (``benchmarks/results/calibration_every_direction_own.md``).
    ``onset_f1`` is reported beside it but not averaged in: one melody's onsets on two instruments differ by more
    than the 50 ms window (a bowed or blown attack swells for 70–100 ms; ``benchmarks/results/calibration.md``
    shows true targets at 0.4–0.7), so it would rank copying the content above a faithful transfer.

    With the content's true ``target`` (paired data) every column is taken against whichever of the two renderings
    of the melody gives the higher ``melody``. The pitch tracker hears instruments differently (a clarinet's track
    matched its cello rendering's at 0.76), so against the content alone the true target lost melody that no
    transfer could keep, and read below its own 75 % interpolation (``benchmarks/results/interpolation.md``); an
    output that plays another melody matches neither rendering.
    """
    out = {"pitch_acc": pitch_accuracy(output, content), "chroma_sim": chroma_similarity(output, content),
           "onset_f1": onset_f1(output, content)}
    pitch = out["pitch_acc"]
    out["melody"] = float(pitch if math.isfinite(pitch) else max(out["chroma_sim"], 0.0))
    if target is not None:
        other = melody_metrics(output, target)
        if other["melody"] > out["melody"]:
            return other
    return out
