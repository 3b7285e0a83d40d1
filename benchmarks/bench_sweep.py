#!/usr/bin/env python
"""Benchmarks of the sweep engine, printed as markdown tables (and written with --out).

1. search   the shallow CNN's hand grid (filters × widths at alpha 0.006, full budget each) against Optuna +
            ASHA given a quarter of the grid's trials (TARGETS: ≤ 15 % of its trial-steps): the gap in the best transfer_score.
2. overhead a trivial trial (one step) in Ray Tune, through ``sweep.run``, against calling it directly.
3. cache    the driver's data preparation (load + ``prepare``) of a second sweep against the first.
4. scale    driver memory (RSS) and time per trial over a sweep of many trivial trials.

``--quick`` shrinks every part (reduced grid, fewer trials) so it runs in a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the toy method lives in tests/

import numpy as np  # noqa: E402

from audiostyle import methods, sweep  # noqa: E402
from audiostyle.data.synth import demo_dataset  # noqa: E402
from audiostyle.methods.base import TrialContext  # noqa: E402
from audiostyle.sweep._prepare import load_data, prepare_data  # noqa: E402

methods.register("toy", "tests.toy_method:Toy")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def bench_search(work: Path, quick: bool) -> str:
    """Hand grid vs Optuna + ASHA on the shallow CNN demo task."""
    filters = (128, 512, 2048) if quick else (128, 256, 512, 1024, 2048, 4096)
    widths = (5, 11, 20) if quick else (5, 10, 15, 20, 25, 30)
    steps = 12 if quick else 100
    fixed = {"alpha": 0.006, "pairs": 1, "max_seconds": 3.0, "content_domain": "piano", "style_domain": "violin", "report_every": max(1, steps // 4),
             "griffin_lim_iters": 32, "report_griffin_lim_iters": 8}
    common = dict(data="demo", smoke=True, dashboard=False, verbose=0, cache_dir=str(work / "cache"), steps=steps)
    t0 = time.perf_counter()
    grid = sweep.run(
        "shallow_cnn", space={"filters": sweep.Choice(filters), "width": sweep.Choice(widths)}, overrides=fixed,
        store=str(work / "grid"), samples=len(filters) * len(widths), search="random", scheduler="none",
        points=[{"filters": f, "width": w} for f in filters for w in widths], **common,
    )
    grid_s = time.perf_counter() - t0
    grid_steps = int(grid.trials["steps"].sum())
    samples = max(2, len(filters) * len(widths) // 4)  # ASHA stops most early: ≈ 15 % of the grid's trial-steps
    t0 = time.perf_counter()
    tuned = sweep.run(
        "shallow_cnn", space={"filters": sweep.Choice(filters), "width": sweep.Choice(widths), "alpha": sweep_alpha()},
        overrides={k: v for k, v in fixed.items() if k != "alpha"}, store=str(work / "optuna"), samples=samples,
        search="tpe", scheduler="asha", **common,
    )
    tuned_s = time.perf_counter() - t0
    tuned_steps = int(tuned.trials["steps"].sum())
    g = grid.best["metric.transfer_score"] if grid.best else float("nan")
    o = tuned.best["metric.transfer_score"] if tuned.best else float("nan")
    rows = [
        [f"hand grid {len(filters)}×{len(widths)}, alpha 0.006", len(grid.trials), grid_steps, "1.00", f"{g:.4f}", f"{grid_s:.0f}"],
        ["Optuna TPE + ASHA", len(tuned.trials), tuned_steps, f"{tuned_steps / grid_steps:.2f}", f"{o:.4f}", f"{tuned_s:.0f}"],
    ]
    gap = (g - o) / abs(g) * 100 if g else float("nan")
    return (_table(["search", "trials", "trial-steps", "steps vs grid", "best transfer_score", "wall s"], rows)
            + f"\n\nGap of Optuna+ASHA's best to the grid's best: {gap:+.1f} % (negative = Optuna better).")


def sweep_alpha():
    return sweep.Float(1e-3, 1e-1, log=True)


def bench_overhead(work: Path, quick: bool) -> str:
    """Per-trial time of a one-step toy trial in Ray Tune vs a direct call."""
    n = 12 if quick else 48
    toy = methods.get("toy")
    dataset = demo_dataset(n_melodies=2, seconds=0.5)
    config = toy.make_config({"steps": 1, "report_every": 1})
    data = toy.prepare(dataset, config)
    t0 = time.perf_counter()
    for _ in range(n):
        toy.train(config, data, TrialContext())
    direct = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    sweep.run("toy", data=dataset, store=str(work / "overhead"), samples=n, overrides={"steps": 1, "report_every": 1},
              scheduler="none", dashboard=False, verbose=0, cache_dir=str(work / "cache"))
    total = time.perf_counter() - t0
    rows = [["direct `method.train`", n, f"{direct * 1e3:.2f} ms"],
            [f"`sweep.run` (2 concurrent, actors reused; {total:.1f} s in all)", n, f"{total / n:.3f} s"]]
    return _table(["how", "trials", "time per trial"], rows) + (
        "\n\nThe sweep time includes Tuner setup, the driver's data preparation and the store writes "
        "(row, history, checkpoint copy) of every trial; Ray itself was already started.")


def bench_cache(work: Path, quick: bool) -> str:
    """Driver data preparation of a first and a second sweep on the same data."""
    name = "shallow_cnn" if "shallow_cnn" in methods.names() else "toy"
    method = methods.get(name)
    cache = str(work / "cache-bench")
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        dataset = load_data("demo", smoke=quick, cache_dir=cache)
        prepared = prepare_data(method, dataset, method.make_config({}), cache)
        times.append((time.perf_counter() - t0, prepared.hit))
    rows = [[f"{i + 1}", f"{t:.2f}", "hit" if hit else "miss"] for i, (t, hit) in enumerate(times)]
    return _table([f"sweep ({name}, demo{' small' if quick else ''})", "data prep s", "prepared-data cache"], rows) + (
        f"\n\nSecond / first: {times[1][0] / times[0][0] * 100:.1f} %.")


def bench_scale(work: Path, quick: bool) -> str:
    """Driver RSS and time per trial while a sweep of many trivial trials runs."""
    import psutil

    n = 100 if quick else 500
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        proc = psutil.Process()
        while not stop.is_set():
            samples.append((time.time(), proc.memory_info().rss))
            time.sleep(0.5)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.time()
    result = sweep.run("toy", data=demo_dataset(n_melodies=2, seconds=0.5), store=str(work / "scale"), samples=n,
                       overrides={"steps": 1, "report_every": 1}, scheduler="none", dashboard=False, verbose=0,
                       cache_dir=str(work / "cache"))
    stop.set()
    thread.join()
    ended = np.sort(result.trials["ended_at"].map(lambda t: t.timestamp()).to_numpy())
    times, rss = np.array([s[0] for s in samples]), np.array([s[1] for s in samples])
    rows = []
    for lo, hi in [(0, n // 5), (2 * n // 5, 3 * n // 5), (4 * n // 5, n - 1)]:
        per_trial = (ended[hi] - ended[lo]) / max(hi - lo, 1)
        at = rss[np.searchsorted(times, ended[hi]) - 1] if len(times) else 0
        rows.append([f"{lo + 1}–{hi + 1}", f"{per_trial:.3f}", f"{at / 2**20:.0f}"])
    return _table(["trials", "s per trial", "driver RSS MiB at end of window"], rows) + (
        f"\n\n{n} trials in {ended[-1] - t0:.0f} s; driver RSS from {rss.min() / 2**20:.0f} to {rss.max() / 2**20:.0f} MiB.")


PARTS = {"search": bench_search, "overhead": bench_overhead, "cache": bench_cache, "scale": bench_scale}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--quick", action="store_true", help="reduced grid and fewer trials")
    parser.add_argument("--only", choices=list(PARTS), action="append", help="run only these parts (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    args = parser.parse_args(argv)
    import logging

    import ray

    logging.basicConfig(level=logging.WARNING)
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    report = [f"# Sweep engine benchmarks\n\n{platform.node()}: {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs, {dt.date.today()}, {'--quick' if args.quick else 'full'}; "
              "other work shared the machine."]
    for name in args.only or list(PARTS):
        try:
            text = PARTS[name](work, args.quick)
        except Exception as exc:  # noqa: BLE001 - report the part as not measured and go on
            text = f"not measured: {type(exc).__name__}: {exc}"
        report.append(f"## {name}\n\n{text}")
        print(report[-1] + "\n", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
