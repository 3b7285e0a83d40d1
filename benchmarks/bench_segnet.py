"""Training-step speed and peak memory of ``segnet`` and ``unet`` at the report's size (256×256 log-mel patches).

Each configuration runs in its own child process (so peak RSS is its own), builds the method's real networks and
optimisers, and times its real ``train_step`` (autoencoders, gradient reversal, critic with gradient penalty or
clipping) on random patches after warm-up steps. Peak memory: the child's max RSS on CPU; on CUDA
``torch.cuda.max_memory_allocated``. Prints a markdown table.

The report gives no batch size; the default config's 8 is used (``--batch`` to change it).

``--quality STEPS`` instead trains both methods for STEPS steps on the demo set at a reduced size (64×64 patches,
so it fits a CPU) and prints their final validation metrics side by side: the report's finding that the U-Net
reconstructs better but transfers nothing shows as its ``recon_*`` against ``target_prob`` vs ``target_prob_input``.

Examples::

    python benchmarks/bench_segnet.py                      # CPU, 2 threads
    python benchmarks/bench_segnet.py --device cuda --amp none bf16
    python benchmarks/bench_segnet.py --quality 600
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from machine import describe

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "segnet (gp, 1 critic step)": ("segnet", {}),
    "segnet (gp, 5 critic steps)": ("segnet", {"critic_steps": 5}),
    "segnet (clip)": ("segnet", {"lipschitz": "clip"}),
    "unet (gp)": ("unet", {}),
}


def run_one(method_name: str, overrides: dict, device: str, amp: str, batch: int, steps: int, warmup: int,
            threads: int) -> dict:
    """Time ``steps`` training steps of one configuration in this process; returns the measurements."""
    import torch

    from audiostyle.methods import get
    from audiostyle.methods.trained import Amp, resolve_device

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = resolve_device(device)
    method = get(method_name)
    config = method.make_config({**overrides, "batch_size": batch, "amp": amp})
    parts = method.build(config, None, dev)
    step_amp = Amp(config.amp, dev, config.grad_clip)
    n = config.batch_size * config.critic_steps
    shape = (n, 1, config.n_mels, config.patch_frames)
    gen = torch.Generator().manual_seed(0)
    batches = [{"x": torch.rand(shape, generator=gen).to(dev), "y": torch.rand(shape, generator=gen).to(dev),
                "config": config} for _ in range(2)]

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for i in range(warmup):
        method.train_step(parts, batches[i % 2], i, step_amp)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times, cpu = [], []
    for i in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        losses = method.train_step(parts, batches[i % 2], i, step_amp)
        float(losses["loss_recon"])
        sync()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    median = sorted(times)[len(times) // 2]
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB
    params = sum(p.numel() for m in parts.modules.values() for p in m.parameters())
    return {"s_per_step": median, "steps_per_s": 1 / median, "cpu_s_per_step": sorted(cpu)[len(cpu) // 2],
            "peak_gib": peak, "params_m": params / 1e6}


QUALITY_CONFIG = dict(n_mels=64, patch_frames=64, n_down=3, base_channels=16, latent_channels=16, critic_hidden=64,
                      val_clips=4, checkpoint_every=0)
QUALITY_COLUMNS = ("recon_mse", "recon_mae", "target_prob", "target_prob_input", "melody", "transfer_score",
                   "lsd_db", "fad")


def quality(steps: int, device: str, threads: int, seed: int = 0) -> None:
    """Train segnet and unet with the same reduced config on the demo set; print their final metrics."""
    import torch

    from audiostyle.data import synth
    from audiostyle.methods import TrialContext, get

    torch.set_num_threads(threads)
    dataset = synth.demo_dataset(n_melodies=16, seed=seed)
    base = {**QUALITY_CONFIG, "steps": steps, "report_every": steps}
    config = get("segnet").make_config(base)
    data = get("segnet").prepare(dataset, config)
    print(f"segnet vs unet on the demo set ({config.domain_x} ↔ {config.domain_y}, 3 s clips), {steps} steps, "
          f"config {base}, device {device}, {time.strftime('%Y-%m-%d')}\n")
    print("| method | " + " | ".join(QUALITY_COLUMNS) + " | train s |")
    print("|---" * (len(QUALITY_COLUMNS) + 2) + "|")
    for name in ("segnet", "unet"):
        method = get(name)
        t0 = time.perf_counter()
        final = method.train(method.make_config(base), data, TrialContext(device=device, seed=seed))
        cells = " | ".join(f"{final[c]:.3g}" for c in QUALITY_COLUMNS)
        print(f"| {name} | {cells} | {time.perf_counter() - t0:.0f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--amp", nargs="+", default=["none"], help="mixed-precision modes to compare (none bf16 fp16)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8, the config default)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 5 on CPU, 30 on CUDA)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME",
                   help=f"which to run (default all): {', '.join(map(repr, VARIANTS))}")
    p.add_argument("--quality", type=int, metavar="STEPS", help="train both methods STEPS steps on the demo set "
                   "and compare their final metrics instead of timing")
    p.add_argument("--one", help=argparse.SUPPRESS)  # child mode: JSON of one run
    args = p.parse_args(argv)
    steps = args.steps or (30 if args.device.startswith("cuda") else 5)

    if args.quality:
        quality(args.quality, args.device, args.threads)
        return 0

    if args.one:
        method_name, overrides, amp = json.loads(args.one)
        print(json.dumps(run_one(method_name, overrides, args.device, amp, args.batch, steps, args.warmup,
                                 args.threads)))
        return 0

    print(f"segnet/unet training step, 256×256 patches, batch {args.batch}, device {args.device}, "
          f"{args.threads} threads. Machine at the start: {describe(args.device)}\n")
    print("| variant | amp | s/step (median) | steps/s | CPU s/step | peak memory (GiB) | parameters (M) |")
    print("|---|---|---|---|---|---|---|")
    for name in args.variants:
        method_name, overrides = VARIANTS[name]
        for amp in args.amp:
            cmd = [sys.executable, __file__, "--one", json.dumps([method_name, overrides, amp]), "--device",
                   args.device, "--batch", str(args.batch), "--steps", str(steps), "--warmup", str(args.warmup),
                   "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if out.returncode:
                print(f"| {name} | {amp} | failed: {out.stderr.strip().splitlines()[-1]} | | | | |")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {name} | {amp} | {r['s_per_step']:.3f} | {r['steps_per_s']:.2f} | {r['cpu_s_per_step']:.2f} "
                  f"| {r['peak_gib']:.2f} | {r['params_m']:.2f} |", flush=True)
    print(f"\nMachine at the end: {describe(args.device)} (CPU s/step ÷ threads ≈ the wall time of an idle machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
