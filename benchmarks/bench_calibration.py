"""The calibration rule on every ordered domain pair of a paired dataset, the metrics' cost per output, and the
pitch tracker's settings against librosa's default pYIN.

Usage::

    python benchmarks/bench_calibration.py                 # --data demo, every direction, every test melody
    python benchmarks/bench_calibration.py --data bench    # the rendered real-instrument benchmark
    python benchmarks/bench_calibration.py --quick         # 2 melodies a direction

Writes ``benchmarks/results/calibration.md``: per direction the anchors' headline, whether the rule holds (and what
fails), then the per-output cost of all common metrics of a 6 s output against the 0.5 s target (TARGETS.md).
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time
from pathlib import Path

import librosa
import numpy as np

from audiostyle import calibrate, metrics
from audiostyle.data import load_dataset
from audiostyle.metrics import _melody

RESULTS = Path(__file__).resolve().parent / "results" / "calibration.md"
COST_TARGET_S = 0.5
"""All common metrics of one 6 s output (TARGETS.md)."""


def _pitch_agreement(dataset, clips: int) -> tuple[float, float, float]:
    """Raw pitch accuracy of our pYIN settings against librosa's defaults on ``clips`` clips, and both times (s)."""
    accs, t_ours, t_default = [], 0.0, 0.0
    for c in dataset.select(split=calibrate.evaluation_split(dataset))[:clips]:
        f = metrics.clip_features(c.audio, c.sr)
        t0 = time.perf_counter()
        metrics.pitch_track(f)
        t_ours += time.perf_counter() - t0
        t0 = time.perf_counter()
        f0, _, _ = librosa.pyin(f.audio, fmin=_melody.PITCH_FMIN_HZ, fmax=_melody.PITCH_FMAX_HZ, sr=metrics.METRIC_SR,
                                frame_length=2048, hop_length=512)
        t_default += time.perf_counter() - t0
        ref = metrics.clip_features(c.audio, c.sr)
        ref.memo["pitch"] = (f0[: ref.frames], np.isfinite(f0[: ref.frames]))
        accs.append(metrics.pitch_accuracy(f, ref))
    return float(np.nanmean(accs)), t_ours / clips, t_default / clips


def _cost(dataset, reference) -> float:
    """Seconds for every common metric of one 6 s output, its inputs already cached (median of 5)."""
    by = {(c.domain, c.pair_key): c.audio for c in dataset.clips}
    a, b = dataset.domains[:2]
    key = next(k for d, k in by if d == a and (b, k) in by)
    n = int(6.0 * dataset.sr)
    content, target = by[a, key][:n], by[b, key][:n]
    metrics.evaluate([target], [content], dataset.sr, reference, b, true_targets=[target])
    times = []
    for i in range(5):
        t0 = time.perf_counter()
        metrics.evaluate([target * (0.5 + 0.1 * i)], [content], dataset.sr, reference, b, true_targets=[target])
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="demo")
    p.add_argument("--quick", action="store_true", help="2 melodies a direction")
    p.add_argument("--cache", default=None)
    args = p.parse_args(argv)
    dataset = load_dataset(args.data, cache_dir=args.cache)
    t0 = time.perf_counter()
    reference = metrics.build_reference(dataset)
    t_ref = time.perf_counter() - t0
    results = [calibrate.calibrate(dataset, a, b, reference=reference, melodies=2 if args.quick else None)
               for a, b in itertools.permutations(dataset.domains, 2)]
    held = sum(not r.violations for r in results)
    cost = _cost(dataset, reference)
    agree, t_ours, t_default = _pitch_agreement(dataset, 2)
    anchors = calibrate.ANCHORS
    lines = [
        f"# Calibration on `--data {args.data}` ({platform.machine()}, {time.strftime('%Y-%m-%d')})", "",
        f"The rule (`python -m audiostyle.calibrate`, module docstring) holds on **{held} of {len(results)}** ordered "
        f"domain pairs, scored on {results[0].split}-split melodies against references fitted on the train split "
        f"({t_ref:.1f} s to fit; held-out classifier accuracy {reference.holdout_accuracy:.3f}). Degenerate "
        f"threshold {calibrate.DEGENERATE_THRESHOLD}.", "",
        f"Cost: all common metrics of one 6 s output take **{cost:.3f} s** with its inputs cached "
        f"({cost / COST_TARGET_S:.2f}× the {COST_TARGET_S} s target); the calibration's mean was "
        f"{np.mean([r.seconds_per_output for r in results]):.3f} s per output clip.", "",
        f"Pitch tracker: pYIN at {_melody.PITCH_RESOLUTION} semitone, {_melody.PITCH_THRESHOLDS} thresholds takes "
        f"{t_ours:.3f} s per clip against {t_default:.3f} s for librosa's defaults; its raw pitch accuracy against "
        f"the defaults' track is {agree:.3f}.", "",
        "## Headline (`transfer_score`) per anchor", "",
        "| direction | " + " | ".join(anchors) + " | rule |", "|---|" + "---:|" * len(anchors) + "---|",
    ]
    for r in results:
        cells = " | ".join(f"{r.rows[a][metrics.HEADLINE]:.3f}" for a in anchors)
        lines.append(f"| {r.content_domain} → {r.style_domain} | {cells} | "
                     f"{'holds' if not r.violations else 'FAILS: ' + '; '.join(r.violations)} |")
    lines += ["", "## Every metric, per direction", ""] + [calibrate.format_table(r) for r in results]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:12]))
    return 0 if held == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
