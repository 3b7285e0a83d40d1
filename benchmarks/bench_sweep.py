#!/usr/bin/env python
"""Benchmarks of the sweep engine, printed as markdown tables (and written with --out).

1. search   the shallow CNN's hand grid (filters × widths at alpha 0.006, full budget each) against Optuna and
            a scheduler (filters × widths × alpha) with a fraction of the grid's trials, for each searcher setting of
            SEARCHERS on ``--seeds`` seeds (target, BENCHMARKS.md: within 2 % of the grid's best headline with
            ≤ 15 % of its trial-steps), in trial-steps and trial CPU-seconds; then the warm start (the store's
            best configs of the first direction run first) against a cold sweep on a second direction.
2. overhead a trivial trial (one step) in Ray Tune, through ``sweep.run``, against calling it directly.
3. cache    the driver's data preparation (load + ``prepare``) of a second sweep against the first.
4. scale    driver memory (RSS) and time per trial over a sweep of many trivial trials.

``--quick`` shrinks every part (reduced grid, fewer trials) so it runs in a few minutes on 2 cores;
``--grid-cache FILE`` keeps the search grid's result (it does not change between runs) to compare more searcher
settings without running the grid again.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
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

from audiostyle import methods, metrics, sweep  # noqa: E402
from audiostyle.data.synth import demo_dataset  # noqa: E402
from audiostyle.methods.base import TrialContext  # noqa: E402
from audiostyle.sweep import _schedule, _search  # noqa: E402

methods.register("toy", "tests.toy_method:Toy")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


SEARCHERS = (
    ("the sweep's defaults: TPE + synchronous halving, grace a quarter of the budget", {}),
    ("TPE + ASHA, grace a quarter", {"scheduler": "asha"}),
    ("TPE + synchronous halving, grace a ninth", {"grace": 1 / 9}),
)
"""The searcher settings set against the grid: label and how they differ from the sweep's defaults: the scheduler
(``scheduler``, default the sweep's), its first rung as a fraction of the budget (``grace``, default a quarter; the
trials report at every rung), its reduction factor (``rf``, default ``_schedule.REDUCTION_FACTOR``) and the trials as
a fraction of the grid's (``trials``, default a quarter). Each runs once per seed; the first is the warm start's
first direction."""

STEPS_TARGET, GAP_TARGET = 0.15, 2.0
"""The search target (BENCHMARKS.md): within ``GAP_TARGET`` % of the grid's best headline with at most
``STEPS_TARGET`` of its trial-steps (and of its trial CPU-seconds)."""

WARM_DIRECTION = ("flute", "guitar")
"""The second task of the warm-start arm: another direction of the demo set than the search task's."""


def _cost(result) -> dict[str, float]:
    """A sweep's best headline, trial-steps and trial CPU-seconds (the sum of its trials' wall seconds: each holds
    one CPU), its wall seconds (first trial's start to last trial's end: what waits at rungs cost), and the
    trial-steps it spent until its first trial within :data:`GAP_TARGET` % of its best."""
    trials = result.trials.sort_values("ended_at")
    column = f"metric.{metrics.HEADLINE}"
    best = float(trials[column].max()) if len(trials) else float("nan")
    near = np.flatnonzero(trials[column].to_numpy() >= best - abs(best) * GAP_TARGET / 100)
    spent = trials["steps"].cumsum().to_numpy()
    wall = (trials["ended_at"].max() - trials["started_at"].min()).total_seconds() if len(trials) else float("nan")
    return {"best": best, "steps": int(trials["steps"].sum()), "cpu_s": float(trials["wall_s"].sum()), "wall_s": wall,
            "to_best": int(spent[near[0]]) if len(near) else -1}


def _grid(work: Path, filters, widths, fixed, common, cache: Path | None) -> dict[str, float]:
    """The grid's :func:`_cost`; read from ``cache`` when it holds it (the grid has no scheduler and fixed points:
    its numbers do not change between runs but for its seconds), else measured and written there."""
    if cache is not None and cache.exists():
        return json.loads(cache.read_text())
    grid = sweep.run(
        "shallow_cnn", space={"filters": sweep.Choice(filters), "width": sweep.Choice(widths)}, overrides=fixed,
        store=str(work / "grid"), samples=len(filters) * len(widths), search="random", scheduler="none",
        points=[{"filters": f, "width": w} for f in filters for w in widths], **common,
    )
    cost = _cost(grid)
    if cache is not None:
        cache.write_text(json.dumps(cost))
    return cost


@contextlib.contextmanager
def _sampler_seed(seed: int):
    """Optuna's sampler seeded with ``seed`` while the block runs, the sweep's own seed (data splits, the pairs, the
    trials' initialisation) left at 0: repeats of one task that differ only in what the searcher draws."""
    original = _search._sampler
    _search._sampler = lambda search, _seed, population: original(search, seed, population)
    try:
        yield
    finally:
        _search._sampler = original


@contextlib.contextmanager
def _reduction_factor(rf: int):
    """ASHA's reduction factor set to ``rf`` in the sweeps started while the block runs."""
    original = _schedule.REDUCTION_FACTOR
    _schedule.REDUCTION_FACTOR = rf
    try:
        yield
    finally:
        _schedule.REDUCTION_FACTOR = original


def _spread(values: list[float], fmt: str) -> str:
    """``mean (min–max)`` of ``values`` in ``fmt``."""
    return f"{np.mean(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def bench_search(work: Path, quick: bool, grid_cache: Path | None = None, seeds: int = 3,
                 warm_start: bool = True) -> str:
    """Hand grid vs Optuna + a scheduler (each of :data:`SEARCHERS`, ``seeds`` seeds) on the shallow CNN demo task, on the
    headline, in trial-steps and trial CPU-seconds; then (``warm_start``) the warm start's saving on a second
    direction."""
    filters = (128, 512, 2048) if quick else (128, 256, 512, 1024, 2048, 4096)
    widths = (5, 11, 20) if quick else (5, 10, 15, 20, 25, 30)
    steps = 12 if quick else 100
    fixed = {"alpha": 0.006, "pairs": 1, "max_seconds": 3.0, "content_domain": "piano", "style_domain": "violin",
             "report_every": max(1, steps // 4), "griffin_lim_iters": 32, "report_griffin_lim_iters": 8}
    common = dict(data="demo", smoke=True, dashboard=False, verbose=0, cache_dir=str(work / "cache"), steps=steps)
    n_grid = len(filters) * len(widths)
    grid = _grid(work, filters, widths, fixed, common, grid_cache)
    rows = [[f"hand grid {len(filters)}×{len(widths)}, alpha 0.006", n_grid, grid["steps"], "1.00",
             f"{grid['cpu_s']:.0f}", "1.00", "", f"{grid['best']:.4f}", "", "", ""]]
    seed_rows = []
    space = {"filters": sweep.Choice(filters), "width": sweep.Choice(widths),
             "alpha": sweep.Float(1e-3, 1e-1, log=True)}
    samples = max(2, n_grid // 4)

    def search(store: Path, grace: int, seed: int, trials: int = samples, rf: int = _schedule.REDUCTION_FACTOR,
               scheduler: str | None = None, **task) -> dict[str, float]:
        overrides = {**{k: v for k, v in fixed.items() if k != "alpha"}, "report_every": grace, **task}
        with _sampler_seed(seed), _reduction_factor(rf):
            return _cost(sweep.run("shallow_cnn", space=space, overrides=overrides, store=str(store),
                                   samples=trials, search="tpe", scheduler=scheduler, grace_steps=grace, **common))

    for i, (label, how) in enumerate(SEARCHERS):
        grace = max(1, round(steps * how.get("grace", 0.25)))
        trials, rf = max(2, round(n_grid * how.get("trials", 0.25))), how.get("rf", _schedule.REDUCTION_FACTOR)
        runs = [search(work / f"optuna{i}-seed{seed}", grace, seed, trials, rf, how.get("scheduler"))
                for seed in range(seeds)]
        gaps = [(grid["best"] - r["best"]) / abs(grid["best"]) * 100 for r in runs]
        met = {k: [g <= GAP_TARGET and r[k] <= STEPS_TARGET * grid[k] for g, r in zip(gaps, runs)]
               for k in ("steps", "cpu_s")}
        seed_rows += [[label if seed == 0 else "", seed, f"{r['best']:.4f}", f"{gap:+.1f} %",
                       f"{r['steps'] / grid['steps']:.3f}", f"{r['cpu_s'] / grid['cpu_s']:.3f}",
                       *("yes" if met[k][seed] else "no" for k in ("steps", "cpu_s"))]
                      for seed, (r, gap) in enumerate(zip(runs, gaps))]
        rows.append([f"{label}: rungs {', '.join(map(str, _schedule.rung_marks(grace, steps + 1, rf)))}", trials,
                     *(_spread([r[k] / scale for r in runs], fmt) for k in ("steps", "cpu_s")
                       for scale, fmt in ((1, ".0f"), (grid[k], ".2f"))),
                     _spread([r["wall_s"] for r in runs], ".0f"), _spread([r["best"] for r in runs], ".4f"), _spread(gaps, "+.1f") + " %",
                     *(f"{sum(met[k])} of {seeds}" for k in ("steps", "cpu_s"))])
    table = _table(["search", "trials", "trial-steps", "vs grid", "trial CPU-s", "vs grid", "sweep wall s",
                    f"best {metrics.HEADLINE}",
                    "gap to the grid (negative = better)", "target met in trial-steps", "… in CPU-s"], rows)
    table += "\n\nPer seed:\n\n" + _table(["search", "seed", "best", "gap", "trial-steps / grid", "CPU-s / grid",
                                             "met in trial-steps", "met in CPU-s"], seed_rows)
    target = (f"Target: a gap of at most {GAP_TARGET:g} % with at most {STEPS_TARGET} of the grid's trial-steps (and "
              f"of its CPU-seconds), on at "
              f"least 2 of 3 seeds. Spreads are min–max over the sampler's seeds 0–{seeds - 1} (the task, its data "
              f"splits and pairs, fixed at the sweep's seed 0).")
    if not warm_start:
        return f"{table}\n\n{target}"
    # The warm start: a second direction, cold (an empty store) against warm (the store of the default arm's
    # sweep of the first direction, whose best configs then run first).
    grace = max(1, round(steps * 0.25))
    task = {"content_domain": WARM_DIRECTION[0], "style_domain": WARM_DIRECTION[1]}
    warm_rows = []
    for seed in range(seeds):
        cold = search(work / f"cold-seed{seed}", grace, seed, **task)
        warm = search(work / f"optuna0-seed{seed}", grace, seed, **task)
        goal = max(cold["best"], warm["best"])
        warm_rows.append([seed, *(f"{r['best']:.4f}" for r in (cold, warm)),
                          *(r["to_best"] if r["best"] >= goal - abs(goal) * GAP_TARGET / 100 else "not reached"
                            for r in (cold, warm)), *(f"{r['cpu_s']:.0f}" for r in (cold, warm))])
    warm_table = _table(["seed", "best, cold", "best, warm", f"trial-steps to within {GAP_TARGET:g} % of the better "
                         "best, cold", "… warm", "trial CPU-s, cold", "… warm"], warm_rows)
    return (f"{table}\n\n{target}\n\nWarm start on a second direction ({' → '.join(WARM_DIRECTION)}, {samples} "
            f"trials, the sweep's defaults): cold from an empty store, warm from the store of the default arm's sweep "
            f"of the first direction with the same seed.\n\n{warm_table}")


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
        dataset = sweep.load_data("demo", smoke=quick, cache_dir=cache)
        prepared = sweep.prepare_data(method, dataset, method.make_config({}), cache)
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
    parser.add_argument("--seeds", type=int, default=3, help="search: seeds per searcher arm (default 3)")
    parser.add_argument("--grid-cache", type=Path, default=None,
                        help="search: the grid's best and trial-steps in this JSON file (read when it exists, else "
                             "measured and written): compare more searcher settings without running the grid again")
    parser.add_argument("--no-warm", action="store_true", help="search: leave out the warm-start part")
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
            options = {"grid_cache": args.grid_cache, "seeds": args.seeds, "warm_start": not args.no_warm} if name == "search" else {}
            text = PARTS[name](work, args.quick, **options)
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
