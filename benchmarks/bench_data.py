"""Data preparation and inversion speed, side by side in one run; prints a markdown table.

* the default demo set render (target: < 30 s);
* the benchmark (``audiostyle.data.bench``: 32 melodies x 9 instruments through FluidSynth) rendered cold, then
  ``load_dataset("bench")`` cold (render, decode, cache) against warm;
* ``load_dataset("demo")`` cold (decode, cut, store in the feature cache) against warm (cache hit), target: the warm
  run costs ≤ 5 % of the cold one;
* Griffin-Lim for a batch of 6 s clips: librosa one clip at a time against the batched torch version (CPU, and CUDA
  when present).

Run: ``.venv/bin/python benchmarks/bench_data.py [--batch 8] [--iters 32]``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/reference.py: the librosa baseline

from audiostyle import audio  # noqa: E402
from audiostyle.data import FeatureCache, bench, load_dataset, synth  # noqa: E402
from tests.reference import griffin_lim  # noqa: E402


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8, help="clips inverted in one batch (default 8)")
    p.add_argument("--iters", type=int, default=32, help="Griffin-Lim iterations (default 32)")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        _, t_render = _timed(lambda: synth.render_demo(f"{tmp}/render"))
        rows.append(("render default demo set (32 melodies x 4 instruments x 6 s)", f"{t_render:.2f} s", "< 30 s"))
        cache = FeatureCache(f"{tmp}/cache")
        # at 16 kHz: decoding includes resampling, as for IRMAS (44.1 kHz) or any rate other than the target
        _, t_cold = _timed(lambda: load_dataset(f"{tmp}/render", sr=16000, cache_dir=cache))
        _, t_warm = _timed(lambda: load_dataset(f"{tmp}/render", sr=16000, cache_dir=cache))
        ds = load_dataset(f"{tmp}/render")
        rows.append(("load_dataset at 16 kHz cold (decode, resample, cache write)", f"{t_cold:.3f} s", ""))
        rows.append(("load_dataset warm (cache hit)", f"{t_warm:.3f} s ({100 * t_warm / t_cold:.1f} % of cold)",
                     "≤ 5 %"))
        _, t_bench = _timed(lambda: bench.render_bench(f"{tmp}/bench"))
        rows.append((f"render the benchmark ({bench.N_MELODIES} melodies x {len(bench.INSTRUMENTS)} instruments, "
                     "FluidSynth)", f"{t_bench:.2f} s", "once per soundfont"))
        _, t_cold = _timed(lambda: load_dataset("bench", cache_dir=f"{tmp}/bench-cache"))
        _, t_warm = _timed(lambda: load_dataset("bench", cache_dir=f"{tmp}/bench-cache"))
        rows.append(('load_dataset("bench") cold (render, decode, cache write) / warm', f"{t_cold:.2f} s / "
                     f"{t_warm:.2f} s", ""))
    params = audio.StftParams()
    ys = [c.audio for c in ds.clips[: args.batch]]
    mags = np.stack([np.abs(audio.stft(y, params)) for y in ys])
    n = len(ys[0])
    griffin_lim(mags[0], params, n_iter=2, length=n)  # warm-up
    _, t_np = _timed(lambda: [griffin_lim(m, params, n_iter=args.iters, length=n) for m in mags])
    rows.append((f"Griffin-Lim librosa, {args.batch} x 6 s one by one, {args.iters} it", f"{t_np:.2f} s", "reference"))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        m = torch.from_numpy(mags).to(dev)
        audio.griffin_lim_torch(m, params.n_fft, params.hop_length, n_iter=2, length=n)  # warm-up
        if dev == "cuda":
            torch.cuda.synchronize()
        out, t_t = _timed(lambda: audio.griffin_lim_torch(m, params.n_fft, params.hop_length, n_iter=args.iters,
                                                          length=n).cpu())
        sc = np.mean([audio.spectral_convergence(a, b.numpy(), params) for a, b in zip(mags, out)])
        rows.append((f"griffin_lim_torch batched on {dev}", f"{t_t:.2f} s ({t_np / t_t:.1f}x librosa)",
                     f"spectral convergence {sc:.3f}"))
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}\n")
    print("| what | time | target / note |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
