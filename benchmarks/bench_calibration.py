"""The calibration rule on every ordered domain pair of a paired dataset, the metrics' cost per output, and the
pitch tracker's settings against librosa's default pYIN.

Usage::

    python benchmarks/bench_calibration.py                 # demo, the three soundfonts, and across them
    python benchmarks/bench_calibration.py --data bench    # the rendered real-instrument benchmark only
    python benchmarks/bench_calibration.py --data bench:opl3@bench   # OPL3 renders, MuseScore General's space
    python benchmarks/bench_calibration.py --quick --directions 12   # 2 melodies, 12 directions a dataset

Writes ``benchmarks/results/calibration.md`` (or ``--out``): per dataset the anchors' headline in every direction,
whether the rule holds (and what fails), the per-output cost of all common metrics of a 6 s output against the 0.5 s
target, then every metric of every anchor.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import librosa
import numpy as np

from audiostyle import calibrate, metrics
from audiostyle.data import load_dataset
from audiostyle.metrics import _melody
from machine import describe

RESULTS = Path(__file__).resolve().parent / "results" / "calibration.md"
SOURCES = ("demo", "bench", "bench:timgm6mb", "bench:opl3", "bench:timgm6mb@bench", "bench:opl3@bench")
"""What is tabled by default: each source against its own references, then the other soundfonts in the timbre space
fitted on MuseScore General (``bench``)."""
COST_TARGET_S = 0.5
"""Target seconds for all common metrics of one 6 s output (BENCHMARKS.md, Targets)."""


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


def _radii(reference: metrics.Reference) -> str:
    radius = metrics.acceptance_radius(reference.timbre.domain_rms, reference.timbre.domain_std)
    return ", ".join(f"{d} {r:.2f}" for d, r in zip(reference.domains, radius))


def _verdict(result: calibrate.Calibration) -> str:
    """``holds``, or ``FAILS: `` and what fails."""
    return "holds" if not result.violations else "FAILS: " + "; ".join(result.violations)


def load_spec(spec: str, cache: str | None):
    """``name[:soundfont]`` (``bench:opl3``) loaded."""
    name, _, font = spec.partition(":")
    return load_dataset(name, cache_dir=cache, soundfont=font or None)


def directions(dataset, count: int | None) -> list[tuple[str, str]]:
    """Every ordered domain pair, or ``count`` of them in a fixed shuffled order (the same for every source)."""
    pairs = list(itertools.permutations(dataset.domains, 2))
    if count is None or count >= len(pairs):
        return pairs
    order = np.random.default_rng(0).permutation(len(pairs))[:count]
    return [pairs[i] for i in sorted(order)]


def _section(spec: str, quick: bool, cache: str | None, count: int | None) -> tuple[list[str], list[str], bool]:
    """Summary lines, per-direction tables and whether the rule held everywhere, for one ``score[@fit]`` spec:
    the ``score`` dataset's test melodies against references fitted on its own train split, or with ``@fit`` on
    ``fit``'s timbre space (``build_reference(..., space_from=fit)``)."""
    name, _, fit_spec = spec.partition("@")
    dataset = load_spec(name, cache)
    fitted = dataset if not fit_spec else load_spec(fit_spec, cache)
    t0 = time.perf_counter()
    reference = metrics.build_reference(dataset, cache_dir=cache, space_from=fitted)
    t_ref = time.perf_counter() - t0
    pairs = directions(dataset, count)
    results = []
    for i, (a, b) in enumerate(pairs, 1):
        results.append(calibrate.calibrate(dataset, a, b, reference=reference, melodies=2 if quick else None))
        print(f"{spec}: {i}/{len(pairs)} {a} → {b}: {_verdict(results[-1])}", file=sys.stderr, flush=True)
    held = sum(not r.violations for r in results)
    cost = _cost(dataset, reference)
    agree, t_ours, t_default = _pitch_agreement(dataset, 2)
    anchors = calibrate.ANCHORS
    worst = {a: max(r.rows[a][metrics.HEADLINE] for r in results) for a in calibrate.DEGENERATE}
    margin = min(r.rows["mix"][metrics.HEADLINE] / max(r.rows["copy_content"][metrics.HEADLINE], 1e-12)
                 for r in results)
    mean = {a: float(np.mean([r.rows[a][metrics.HEADLINE] for r in results])) for a in anchors}
    lsd = {a: float(np.mean([r.rows[a]["lsd_rel"] for r in results])) for a in anchors}
    fit_words = "references fitted on its own train split" if not fit_spec else (
        f"the timbre space fitted on `{fit_spec}`'s train split (another source), its instruments located there by "
        "its own train clips")
    lines = [
        f"## `{spec}`: the rule holds on {held} of {len(results)} directions", "",
        f"{len(dataset.domains)} domains; {len(results[0].melodies)} {results[0].split}-split melodies a direction "
        f"({len(results)} of {len(dataset.domains) * (len(dataset.domains) - 1)} directions), scored against "
        f"{fit_words} ({t_ref:.1f} s to fit or load; held-out classifier accuracy "
        f"{reference.holdout_accuracy:.3f}; acceptance radii "
        f"{_radii(reference)}). Highest degenerate headline over all "
        f"directions: {max(worst.values()):.3f} ({max(worst, key=worst.get)}; threshold "
        f"{calibrate.DEGENERATE_THRESHOLD}); smallest mix / copy-content ratio {margin:.2f}.", "",
        "Signal-processing baseline beside copy-content (mean over the directions): "
        + ", ".join(f"{a} {mean[a]:.3f} (lsd_rel {lsd[a]:.2f})" for a in (*calibrate.BASELINE, "copy_content"))
        + f"; the true target {mean['target']:.3f}.", "",
        f"Cost: all common metrics of one 6 s output take **{cost:.3f} s** with its inputs cached "
        f"({cost / COST_TARGET_S:.2f}× the {COST_TARGET_S} s target); the calibration's mean was "
        f"{np.mean([r.seconds_per_output for r in results]):.3f} s per output clip. Pitch tracker: pYIN at "
        f"{_melody.PITCH_RESOLUTION} semitone, {_melody.PITCH_THRESHOLDS} thresholds takes {t_ours:.3f} s per clip "
        f"against {t_default:.3f} s for librosa's defaults; its raw pitch accuracy against the defaults' track is "
        f"{agree:.3f}.", "",
        "| direction | " + " | ".join(anchors) + " | rule |", "|---|" + "---:|" * len(anchors) + "---|",
    ]
    for r in results:
        cells = " | ".join(f"{r.rows[a][metrics.HEADLINE]:.3f}" for a in anchors)
        lines.append(f"| {r.content_domain} → {r.style_domain} | {cells} | "
                     f"{_verdict(r)} |")
    details = [f"## `{spec}`: every metric, per direction", ""] + [calibrate.format_table(r) for r in results]
    return lines + [""], details, held == len(results)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=list(SOURCES),
                   help="paired datasets, each tabled: name[:soundfont][@fit name[:soundfont]], e.g. bench:opl3@bench "
                        "(OPL3 renders scored in the timbre space fitted on MuseScore General's train split)")
    p.add_argument("--quick", action="store_true", help="2 melodies a direction")
    p.add_argument("--directions", type=int, default=None, help="this many directions per dataset (default all)")
    p.add_argument("--cache", default=None)
    p.add_argument("--out", type=Path, default=RESULTS, help="the Markdown file written")
    args = p.parse_args(argv)
    sections = [_section(name, args.quick, args.cache, args.directions) for name in args.data]
    command = " ".join(["python benchmarks/bench_calibration.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [f"# Calibration of the headline ({time.strftime('%Y-%m-%d')})", "",
             f"`{command}`. Machine: {describe()}.", "",
             "The rule (`python -m audiostyle.calibrate`, module docstring): the true target ranks first on "
             f"`{metrics.HEADLINE}`, the 50/50 mix between it and copy-content, every degenerate anchor below "
             f"{calibrate.DEGENERATE_THRESHOLD}, every metric moves the way its direction says, and the target through a "
             f"{calibrate.VOCODED_MEL[0]}-band mel vocoder (`{calibrate.VOCODED}`, what a perfect mel-domain method "
             "outputs) above the baseline and every degenerate anchor. Per dataset the "
             "headline of each anchor, then every metric of every anchor. Across sources (`score@fit`) the timbre "
             "space is fitted on one source and the scored source's own train clips locate its instruments in it; "
             "why a reference moved whole does not recognise another library's instruments, and what was tried: "
             "`calibration_across_sources.md`.", ""]
    for summary, _, _ in sections:
        lines += summary
    for _, details, _ in sections:
        lines += details
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(line for summary, _, _ in sections for line in summary[:3]))
    return 0 if all(ok for _, _, ok in sections) else 1


if __name__ == "__main__":
    raise SystemExit(main())
