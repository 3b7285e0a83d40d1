"""Does the headline grade partial transfer? The headline and ``timbre_shift`` along content → true-target
interpolations, in every tabled direction of every source.

Usage::

    python benchmarks/bench_interpolation.py                        # demo, the three soundfonts, and across them
    python benchmarks/bench_interpolation.py --data bench:opl3@bench --directions 72

For each direction, test-split melodies are interpolated from the content to its true target
(:func:`audiostyle.calibrate.interpolate`: linear in magnitude, at :data:`ALPHAS`) and scored against the
references of ``bench_calibration.py``'s spec (``score[@fit]``). A direction is *monotone* when the headline rises
at every step, and its shift monotone when ``timbre_shift`` never falls. Writes ``benchmarks/results/interpolation.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from audiostyle import calibrate, metrics
from bench_calibration import SOURCES, directions, load_spec
from machine import describe

RESULTS = Path(__file__).resolve().parent / "results" / "interpolation.md"
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
"""Fractions of the way from the content (0) to the true target (1)."""


def _curves(dataset, reference, content: str, style: str, melodies: int) -> tuple[list[float], list[float]]:
    """The headline and ``timbre_shift`` at each of :data:`ALPHAS`, means over ``melodies`` test melodies."""
    triples = calibrate.calibration_pairs(dataset, content, style, calibrate.evaluation_split(dataset), melodies)
    contents, targets = [c.audio for c, _, _ in triples], [t.audio for _, t, _ in triples]
    rows = [metrics.evaluate([calibrate.interpolate(c, t, a) for c, t in zip(contents, targets)], contents,
                             dataset.sr, reference, style, true_targets=targets) for a in ALPHAS]
    return [r[metrics.HEADLINE] for r in rows], [r["timbre_shift"] for r in rows]


def _section(spec: str, count: int | None, melodies: int, cache: str | None) -> list[str]:
    """The summary line and the per-direction table of one ``score[@fit]`` spec."""
    name, _, fit_spec = spec.partition("@")
    dataset = load_spec(name, cache)
    reference = metrics.build_reference(dataset, cache_dir=cache,
                                        space_from=load_spec(fit_spec, cache) if fit_spec else None)
    rows, rising, shifting = [], 0, 0
    pairs = directions(dataset, count)
    for i, (content, style) in enumerate(pairs, 1):
        h, shift = _curves(dataset, reference, content, style, melodies)
        up = all(b > a for a, b in zip(h, h[1:]))
        kept = all(b >= a for a, b in zip(shift, shift[1:]))
        print(f"{spec}: {i}/{len(pairs)} {content} → {style}: headline {'rises' if up else 'does NOT rise'}",
              file=sys.stderr, flush=True)
        rising, shifting = rising + up, shifting + kept
        rows.append(f"| {content} → {style} | " + " | ".join(f"{v:.3f}" for v in h) + " | "
                    + " ".join(f"{v:.2f}" for v in shift) + f" | {'yes' if up else 'NO'} | {'yes' if kept else 'NO'} |")
    head = " | ".join(f"{a:.0%}" for a in ALPHAS)
    return [f"## `{spec}`: the headline rises at every step in {rising} of {len(rows)} directions "
            f"(timbre_shift never falls in {shifting})", "",
            f"| direction | {head} | timbre_shift | headline monotone | shift monotone |",
            "|---|" + "---:|" * len(ALPHAS) + "---|---|---|", *rows, ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=list(SOURCES), help="specs as in bench_calibration.py")
    p.add_argument("--directions", type=int, default=24, help="directions per dataset (bench_calibration's order)")
    p.add_argument("--melodies", type=int, default=2, help="test melodies a direction")
    p.add_argument("--cache", default=None)
    p.add_argument("--out", type=Path, default=RESULTS, help="the Markdown file written")
    args = p.parse_args(argv)
    start = time.perf_counter()
    sections = [_section(spec, args.directions, args.melodies, args.cache) for spec in args.data]
    command = " ".join(["python benchmarks/bench_interpolation.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [f"# The headline along content → target interpolations ({time.strftime('%Y-%m-%d')})", "",
             f"`{command}`. Machine: {describe()}; {time.perf_counter() - start:.0f} s.", "",
             "Each cell: the headline of the content interpolated that far to its true target (linear in magnitude, "
             "`calibrate.interpolate`), mean over the melodies; then `timbre_shift` at each step.", ""]
    for section in sections:
        lines += section
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(section[0] for section in sections))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
