"""The shallow CNN's style view (``style_octaves``) on one network, against copy-content and eq_match.

The same test pairs and rows as ``bench_quality.py``; each row is one network (report 003's 2-layer config, the
sweep's winner on MuseScore General, unless ``--config`` names another) run with the style term on the feature
maps themselves (``style_octaves`` 0, the reports' loss) or on their octave averages, at two content weights::

    python benchmarks/bench_style_view.py                      # MuseScore General (about 10 min)
    python benchmarks/bench_style_view.py --data bench:timgm6mb

Puts a dated section on top of ``benchmarks/results/style_view.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from audiostyle import methods
from audiostyle.data import load_dataset
from audiostyle.data.bench import SOUNDFONT_ENV
from audiostyle.methods.shallow_cnn import STYLE_OCTAVES
from machine import describe
from quality_rows import SHALLOW_BUDGET, baseline_rows, score, scored_pairs, shallow_settings, table, verdicts

RESULTS = Path(__file__).resolve().parent / "results" / "style_view.md"


def main(argv: list[str] | None = None) -> int:
    method = methods.get("shallow_cnn")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="bench", help="bench (MuseScore General), bench:timgm6mb or bench:opl3")
    p.add_argument("--content", default="piano")
    p.add_argument("--style", default="violin")
    p.add_argument("--pairs", type=int, default=3, help="test pairs per row")
    p.add_argument("--config", type=json.loads, default=method.best_known()[1],
                   help="the network and content weight, JSON (default report 003's 2-layer config)")
    p.add_argument("--alphas", type=float, nargs="+", default=None,
                   help="content weights (default the config's and 1)")
    p.add_argument("--cache", default=None)
    given = sys.argv[1:] if argv is None else argv
    args = p.parse_args(given)
    source, _, font = args.data.partition(":")
    if font:
        os.environ[SOUNDFONT_ENV] = font
    dataset = load_dataset(source, cache_dir=args.cache)
    started, machine = time.perf_counter(), describe()
    pairs = scored_pairs(dataset, args)
    rows = baseline_rows(pairs)
    test = shallow_settings(method, args, "test", SHALLOW_BUDGET.steps)
    for alpha in args.alphas or [args.config["alpha"], 1.0]:
        for octaves in STYLE_OCTAVES:
            label = f"shallow_cnn, alpha {alpha:g}, style_octaves {octaves:g}"
            rows[label] = score(method, {**test, **args.config, "alpha": alpha, "style_octaves": octaves}, dataset)
            print(label, f"lsd {rows[label]['lsd_db']:.2f} headline {rows[label]['transfer_score']:.3f}", flush=True)
    lines = [f"## `{args.data}`: {args.content} → {args.style}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "", f"`{shlex.join(['python', 'benchmarks/bench_style_view.py', *given])}`. Machine: {machine}. "
             f"{len(pairs.contents)} test pairs, {SHALLOW_BUDGET.steps} L-BFGS steps a row; network "
             f"`{ {k: v for k, v in args.config.items() if k != 'alpha'} }`; "
             f"{time.perf_counter() - started:.0f} s in all.", "", *table(rows), "",
             "Against copy-content and the eq_match baseline:", *verdicts(rows, "shallow_cnn"), "", ""]
    earlier = RESULTS.read_text().splitlines()[1:] if RESULTS.exists() else []
    RESULTS.write_text("\n".join(["# The shallow CNN's style view (`style_octaves`)", "", *lines, *earlier]) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
