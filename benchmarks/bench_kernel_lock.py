"""Trial processes that start together, with librosa's kernel cache complete: the lock taken in turn against the stamp.

Every trial process first calls ``compile_librosa_kernels`` (``audiostyle/sweep/_kernels.py``). Without a stamp of
the cache each takes the machine-wide lock in turn, so the last of N waits for the other N - 1 to import librosa and
score a tone; with the stamp a lock holder left, they load at once, side by side. Both arms run in private temporary
folders (own lock, own stamp) on this machine's complete cache, alternated round by round.

Usage::

    python benchmarks/bench_kernel_lock.py                      # 2 and 4 processes, 3 rounds
    python benchmarks/bench_kernel_lock.py --processes 8 --rounds 5

Writes ``benchmarks/results/kernel_lock.md`` (or ``--out``): the machine, then per process count and arm the median
wall time until every process is ready and the median per-process time, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

REPO = Path(__file__).resolve().parents[1]
READY = """
import time
start = time.monotonic()
from audiostyle.sweep._kernels import compile_librosa_kernels
compile_librosa_kernels()
print(f"{time.monotonic() - start:.3f}")
"""


def start_together(n: int, tmpdir: Path) -> tuple[float, list[float]]:
    """Start ``n`` processes at once with ``TMPDIR=tmpdir``; the wall time until all are ready (s), and each one's."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmpdir)}
    start = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-c", READY], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    each = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise SystemExit(f"a process failed (exit {p.returncode})")
        each.append(float(out))
    return time.monotonic() - start, each


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, nargs="+", default=[2, 4], help="processes started together (default 2 4)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of each arm, alternated (default 3)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "kernel_lock.md")
    args = p.parse_args(argv)
    machine = describe()
    with tempfile.TemporaryDirectory() as warm:
        start_together(1, Path(warm))  # the machine's cache complete before either arm
    table, ratios = [], []
    for n in args.processes:
        arms: dict[str, list[tuple[float, list[float]]]] = {"lock in turn (no stamp)": [], "stamp (no lock)": []}
        for r in range(args.rounds):
            for arm in arms:
                with tempfile.TemporaryDirectory() as tmp:
                    if arm.startswith("stamp"):
                        start_together(1, Path(tmp))  # a lock holder leaves the stamp
                    arms[arm].append(start_together(n, Path(tmp)))
                print(f"{n} processes, round {r + 1}/{args.rounds}, {arm}: {arms[arm][-1][0]:.2f} s", flush=True)
        rows = {arm: (statistics.median(w for w, _ in runs), statistics.median(t for _, e in runs for t in e))
                for arm, runs in arms.items()}
        table += [f"| {n} | {arm} | {wall:.2f} | {each:.2f} |" for arm, (wall, each) in rows.items()]
        (lock_wall, lock_each), (stamp_wall, stamp_each) = rows.values()
        ratios.append(f"- {n} processes: stamp / lock in turn, all ready **{stamp_wall / lock_wall:.2f}×**, one "
                      f"process **{stamp_each / lock_each:.2f}×**.")
    lines = [
        f"# Kernel cache: processes started together (`bench_kernel_lock.py`), {time.strftime('%Y-%m-%d')}",
        "",
        f"`{' '.join(['python benchmarks/bench_kernel_lock.py', *(sys.argv[1:] if argv is None else argv)])}`. "
        f"Machine: {machine}. {args.rounds} rounds of each arm alternated, the machine's kernel cache complete.",
        "",
        "| processes | arm | all ready (s, median) | one process (s, median) |",
        "|---:|---|---:|---:|",
        *table,
        "",
        *ratios,
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
