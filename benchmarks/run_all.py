"""Run every benchmark, one after another, and print their markdown tables.

Usage::

    python benchmarks/run_all.py            # full sizes (tens of minutes on 2 cores)
    python benchmarks/run_all.py --quick    # reduced sizes, a few minutes

Each benchmark measures audiostyle against its reference side by side in one run and writes its own
results file under ``benchmarks/results/``; BENCHMARKS.md collects them with the machine and date.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, arguments for --quick, arguments for a full run)
BENCHMARKS = [
    ("bench_data.py", [], []),
    ("bench_shallow_cnn.py", ["--quick"], []),
    ("bench_mel_inversion.py", ["--quick"], []),
    ("bench_cyclegan.py", ["--quick"], []),
    ("bench_amp_quality.py", ["--steps", "20"], []),
    ("bench_segnet.py", ["--steps", "2"], []),
    ("bench_sweep.py", ["--quick"], []),
    ("bench_calibration.py", ["--quick"], []),
    ("bench_interpolation.py", ["--directions", "6"], []),
    ("bench_kernel_lock.py", ["--rounds", "1"], []),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes: a few minutes in all")
    parser.add_argument("--only", action="append", default=[], help="run only this script (repeatable)")
    args = parser.parse_args(argv)
    failed = []
    for script, quick_args, full_args in BENCHMARKS:
        if args.only and script not in args.only:
            continue
        cmd = [sys.executable, str(HERE / script), *(quick_args if args.quick else full_args)]
        print(f"\n## {script}\n", flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
