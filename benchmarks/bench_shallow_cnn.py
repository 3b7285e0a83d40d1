"""Benchmark: one shallow-CNN loss evaluation (forward + backward to the input) and Griffin-Lim.

Measures, side by side in one run, each variant in its own subprocess (clean peak RSS):

* ``audiostyle``: :class:`audiostyle.methods.random_cnn.TransferLoss` (``conv1d``, the exact N × N style form);
* ``plain``: a straightforward port of Ulyanov & Lebedev's notebook (``conv2d`` with a 1 × width kernel over a
  1 × T image with F channels, explicit K × K Gram matrices);

on 10 s of a demo melody at 22.05 kHz, n_fft 2048 (log1p|STFT|, 1025 × 431), 4096 filters of width 11, and
checks both losses and input gradients against the plain algorithm run in float64. Then Griffin-Lim (500 iterations) with librosa against the
batched :func:`audiostyle.audio.griffin_lim_torch`. Prints a markdown table and writes it to ``--out``.

Usage::

    python benchmarks/bench_shallow_cnn.py            # full: 10 s input, 500 Griffin-Lim iterations
    python benchmarks/bench_shallow_cnn.py --quick    # 3 s input, 100 iterations (about a minute)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe, load_averages

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_FFT, HOP, SR = 2048, 512, 22050


def _inputs(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Content (piano) and style (violin, another melody) waveforms of ``seconds`` s from the demo synthesiser."""
    from audiostyle.data import synth

    ds = synth.demo_dataset(n_melodies=2, seconds=seconds, instruments=("piano", "violin"), val_fraction=0.0)
    by = {(c.domain, c.pair_key): c.audio for c in ds.clips}
    return by["piano", "m000"], by["violin", "m001"]


def _plain_loss(x, content_feats, style_gram, kernel, alpha):
    """The notebook's graph in PyTorch: conv2d (1 × width), ReLU, explicit K × K Gram, 2·l2_loss terms."""
    import torch

    net = torch.relu(torch.nn.functional.conv2d(x, kernel))  # (1, K, 1, T')
    feats = net.reshape(net.shape[1], -1).T  # (T', K)
    gram = feats.T @ feats / feats.shape[0]
    content = ((feats - content_feats) ** 2).sum()
    style = ((gram - style_gram) ** 2).sum()
    return alpha * content + style


def worker(variant: str, seconds: float, repeats: int, device: str, grad_out: str) -> dict:
    """Time ``repeats`` evaluations of one variant in this process; return its numbers."""
    import torch

    from audiostyle.methods.random_cnn import FeatureSpec, RandomCNN, TransferLoss, features

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    dev = torch.device(device)
    spec = FeatureSpec("stft", SR, N_FFT, HOP)
    content_y, style_y = _inputs(seconds)
    with torch.no_grad():
        content = features(torch.from_numpy(content_y)[None].to(dev), spec)
        style = features(torch.from_numpy(style_y)[None].to(dev), spec)
    net = RandomCNN(spec.channels, 4096, 11, activation="relu", seed=0).to(dev)
    gen = torch.Generator().manual_seed(1)
    x0 = (content.cpu() + 0.05 * torch.randn(content.shape, generator=gen)).to(dev)
    alpha = 0.006

    if variant == "audiostyle":
        loss_fn = TransferLoss(net, content, style, alpha)
        x = x0.clone().requires_grad_(True)

        def evaluate():
            c, s = loss_fn(x)
            return (alpha * c + s).sum()
    else:  # "plain" (float32) or "float64" (the same graph in double precision: the accuracy reference)
        dtype = torch.float64 if variant == "float64" else torch.float32
        content, x0 = content.to(dtype), x0.to(dtype)
        style = style.to(dtype)
        kernel = net.weights[0].detach()[:, :, None, :].contiguous().to(dtype)  # (K, F, 1, width)
        with torch.no_grad():
            c_net = torch.relu(torch.nn.functional.conv2d(content[:, :, None, :], kernel))
            content_feats = c_net.reshape(c_net.shape[1], -1).T.contiguous()
            s_net = torch.relu(torch.nn.functional.conv2d(style[:, :, None, :], kernel))
            s_feats = s_net.reshape(s_net.shape[1], -1).T
            style_gram = s_feats.T @ s_feats / s_feats.shape[0]
            del c_net, s_net, s_feats
        x = x0[:, :, None, :].clone().requires_grad_(True)

        def evaluate():
            return _plain_loss(x, content_feats, style_gram, kernel, alpha)

    times, cpu = [], []
    for _ in range(repeats + 1):  # the first is warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        x.grad = None
        loss = evaluate()
        loss.backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    np.save(grad_out, x.grad.detach().reshape(content.shape).double().cpu().numpy())
    peak_gpu = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    return {
        "variant": variant,
        "s_per_eval": float(np.median(times[1:] or times)),
        "cpu_s_per_eval": float(np.median(cpu[1:] or cpu)),
        "loss": float(loss.detach()),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_gpu_gb": peak_gpu,
        "frames": int(content.shape[-1]),
    }


def _run_worker(variant: str, args: argparse.Namespace, grad_out: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", variant, "--seconds", str(args.seconds), "--repeats",
           str(args.repeats), "--device", args.device, "--grad-out", grad_out]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def griffin_lim_times(seconds: float, n_iter: int, batch: int, device: str) -> dict:
    """Seconds per clip: librosa one clip at a time vs the batched torch version on ``device``."""
    import torch

    from audiostyle import audio as A

    y, _ = _inputs(seconds)
    mag = np.abs(A.stft(y, A.StftParams(N_FFT, HOP)))
    t0 = time.perf_counter()
    from tests.reference import griffin_lim

    griffin_lim(mag, A.StftParams(N_FFT, HOP), n_iter=n_iter, length=len(y))
    t_librosa = time.perf_counter() - t0
    mags = torch.from_numpy(np.stack([mag] * batch)).to(device)
    A.griffin_lim_torch(mags[:1], N_FFT, HOP, n_iter=2, length=len(y))  # warm-up
    t0 = time.perf_counter()
    A.griffin_lim_torch(mags, N_FFT, HOP, n_iter=n_iter, length=len(y))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t_torch = (time.perf_counter() - t0) / batch
    return {"librosa_s": t_librosa, "torch_s_per_clip": t_torch, "batch": batch, "n_iter": n_iter}


def metrics_times() -> dict:
    """Seconds to build the demo set's metrics reference, and for all common metrics of one 6 s output."""
    from audiostyle import metrics
    from audiostyle.data import synth

    ds = synth.demo_dataset(n_melodies=8, seconds=6.0)
    t0 = time.perf_counter()
    ref = metrics.build_reference(ds)
    t_ref = time.perf_counter() - t0
    by = {(c.domain, c.pair_key): c.audio for c in ds.clips}
    out, content, target = by["violin", "m000"], by["piano", "m000"], by["violin", "m000"]
    metrics.evaluate([out], [content], ds.sr, ref, "violin", true_targets=[target])  # warm-up; inputs now cached
    t0 = time.perf_counter()
    metrics.evaluate([out * 0.5], [content], ds.sr, ref, "violin", true_targets=[target])
    return {"reference_s": t_ref, "evaluate_s": time.perf_counter() - t0, "clips": len(ds.clips)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--quick", action="store_true", help="3 s input, 3 repeats, 100 Griffin-Lim iterations")
    p.add_argument("--seconds", type=float, default=10.0, help="input length, s (default 10: 1025 × 431 frames)")
    p.add_argument("--repeats", type=int, default=5, help="timed evaluations per variant (median; default 5)")
    p.add_argument("--gl-iters", type=int, default=500, help="Griffin-Lim iterations (default 500)")
    p.add_argument("--gl-batch", type=int, default=4, help="clips per batched Griffin-Lim call (default 4)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "shallow_cnn.md"),
                   help="markdown file to write (default benchmarks/results/shallow_cnn.md); '' = none")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--grad-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.seconds, args.repeats, args.device, args.grad_out)))
        return 0
    if args.quick:
        args.seconds, args.repeats, args.gl_iters = 3.0, 3, 100
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

    machine = f"{describe()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')} (load at the start)"
    with tempfile.TemporaryDirectory() as tmp:
        res = {v: _run_worker(v, args, f"{tmp}/{v}.npy") for v in ("plain", "audiostyle")}
        res["float64"] = _run_worker("float64", argparse.Namespace(**{**vars(args), "repeats": 0}), f"{tmp}/f64.npy")
        grads = {v: np.load(f"{tmp}/{v}.npy") for v in ("plain", "audiostyle")}
        g64 = np.load(f"{tmp}/f64.npy")
    truth = res["float64"]["loss"]
    loss_err = {v: abs(res[v]["loss"] - truth) / abs(truth) for v in grads}
    grad_err = {v: float(np.linalg.norm(g - g64) / np.linalg.norm(g64)) for v, g in grads.items()}
    gl = griffin_lim_times(args.seconds, args.gl_iters, args.gl_batch, args.device)
    mt = metrics_times()
    fast, plain = res["audiostyle"], res["plain"]
    frames = fast["frames"]
    lines = [
        f"# shallow_cnn benchmark ({'quick' if args.quick else 'full'})",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine}",
        f"- input: {args.seconds:g} s at {SR} Hz, log1p|STFT| 1025 × {frames}, 4096 filters × width 11, ReLU, "
        f"alpha 0.006; device {args.device}",
        "",
        "| variant | s / loss evaluation (median of %d) | CPU s / evaluation | peak RSS (GB) | loss rel. error | "
        "gradient rel. error |" % args.repeats,
        "|---|---|---|---|---|---|",
        f"| plain port (conv2d 1×11, explicit 4096×4096 Gram) | {plain['s_per_eval']:.3f} | {plain['cpu_s_per_eval']:.3f} | "
        f"{plain['peak_rss_gb']:.2f} | {loss_err['plain']:.1e} | {grad_err['plain']:.1e} |",
        f"| audiostyle (conv1d, N×N style form) | {fast['s_per_eval']:.3f} | {fast['cpu_s_per_eval']:.3f} | "
        f"{fast['peak_rss_gb']:.2f} | {loss_err['audiostyle']:.1e} | {grad_err['audiostyle']:.1e} |",
        f"| **ratio audiostyle / plain** | **{fast['s_per_eval'] / plain['s_per_eval']:.2f}×** | "
        f"{fast['cpu_s_per_eval'] / plain['cpu_s_per_eval']:.2f}× | **{fast['peak_rss_gb'] / plain['peak_rss_gb']:.2f}×** | | |",
        "",
        f"Errors are relative to the plain algorithm in float64 (loss {truth:.8g}). "
        "Target (BENCHMARKS.md): ≤ 0.6 s and ≤ 1 GB per evaluation on the 2-core CPU, the same loss to float32 rounding."
        + ("" if np.isnan(fast["peak_gpu_gb"]) else
           f" Peak GPU memory: plain {plain['peak_gpu_gb']:.2f} GB, audiostyle {fast['peak_gpu_gb']:.2f} GB."),
        "",
        f"| Griffin-Lim, {gl['n_iter']} iterations, {args.seconds:g} s clip | s per clip |",
        "|---|---|",
        f"| librosa (numpy, one clip) | {gl['librosa_s']:.2f} |",
        f"| audiostyle.audio.griffin_lim_torch, batch of {gl['batch']} on {args.device} | {gl['torch_s_per_clip']:.2f} |",
        f"| ratio torch / librosa | {gl['torch_s_per_clip'] / gl['librosa_s']:.2f}× |",
        "",
        "shallow_cnn inverts every output of a batch in one call of the batched torch version, on the CPU or the GPU.",
        "",
        "| metrics (audiostyle.metrics) | s |",
        "|---|---|",
        f"| build_reference on the demo set ({mt['clips']} clips of 6 s; once per dataset, then cached) | "
        f"{mt['reference_s']:.2f} |",
        f"| evaluate: all common metrics of one 6 s output (content, style, true target) | {mt['evaluate_s']:.3f} |",
    ]
    load = load_averages()[0]
    if load > (os.cpu_count() or 1):
        lines += ["", f"Note: the machine was busy (load average {load:.1f} on {os.cpu_count()} cores at the end): wall "
                  "times are inflated; CPU s / evaluation divided by the threads estimates an idle machine's wall time."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    ok = loss_err["audiostyle"] < 1e-4 and grad_err["audiostyle"] <= max(2 * grad_err["plain"], 1e-4)
    if not ok:
        print(f"MISMATCH against float64: loss {loss_err}, gradient {grad_err}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
