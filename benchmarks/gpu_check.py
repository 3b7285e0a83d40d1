"""The first GPU run as one call: what a new GPU machine must show before sweeps are sent to it.

``bash benchmarks/gpu_check.sh`` runs it (after installing the wheels it needs, :file:`benchmarks/gpu_wheels.sh`);
on the CPU, ``--device cpu --quick`` runs the same path in a minute (a test does). Sections, each timed, each
kept going when another fails, all written to ``--out`` as ``gpu_check.json`` and ``gpu_check.md``:

1. ``steps``: every trained method at its reports' size (``--quick``: its sweep script's smoke size) for ``--steps``
   steps after ``--warmup``: median seconds per step and peak memory (CUDA: allocated by torch; CPU: the process's
   resident set), in float32 and bf16 (where the device runs bf16), and for cyclegan on CUDA also NCHW vs
   channels-last.
2. ``instance_norm``: the normalisation CycleGAN's generator applies, on near-silent patches (a channel whose mean
   dwarfs its spread, as after a spectrogram's first convolution), in float32 NCHW and channels-last against a
   float64 reference: the largest error of the normalised output. On the CPU channels-last loses the variance
   (cyclegan therefore runs NCHW there); this shows whether CUDA's kernels do.
3. ``shallow_cnn``: one shallow-CNN trial end to end on the demo set (train, metrics), on the device.
4. ``sweep``: where Ray imports, a 4-trial shallow-CNN smoke sweep with ``--gpus-per-trial 0.25``: how many trials
   ran on the GPU at once is in the rows' ``device`` and start/end times.

Usage::

    python benchmarks/gpu_check.py --out gpu_check_out             # on the GPU machine, about 5 minutes
    python benchmarks/gpu_check.py --out /tmp/g --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from machine import describe, peak_mb, sync

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRAINED = ("cyclegan", "segnet", "unet", "spec_gan", "wave_vae", "wave_vae_pool")
"""The trained methods (every built-in one but shallow_cnn)."""


def smoke_overrides(method: str) -> dict:
    """The method's smoke config (a few-second network, :meth:`~audiostyle.methods.base.Method.smoke_overrides`)."""
    from audiostyle import methods

    return methods.get(method).smoke_overrides()


def time_steps(method_name: str, overrides: dict, amp_mode: str, device_name: str, steps: int, warmup: int,
               dataset) -> dict:
    """Median seconds per training step and peak memory (MB) of one method/config/precision on one device."""
    import torch

    from audiostyle import methods
    from audiostyle.methods.trained import Amp, to_device

    method = methods.get(method_name)
    config = method.make_config({**overrides, "amp": amp_mode, "compile": "off"})
    device = torch.device(device_name)
    data = method.prepare(dataset, config)
    torch.manual_seed(0)
    parts = method.build(config, data, device)
    parts.config = config
    for module in parts.modules.values():
        module.train()
    amp = Amp(amp_mode, device, config.grad_clip)
    rng = np.random.default_rng(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(1, warmup + steps + 1):
        batch = to_device(method.sample(config, data, rng), device)
        sync(device)
        start = time.perf_counter()
        losses = method.train_step(parts, batch, step, amp)
        amp.update()
        sync(device)
        if step > warmup:
            times.append(time.perf_counter() - start)
    finite = all(np.isfinite(float(v)) for v in losses.values())
    return {"method": method_name, "amp": amp_mode, "step_s": statistics.median(times), "peak_mb": peak_mb(device),
            "finite": finite, **{k: v for k, v in overrides.items() if k == "channels_last"}}


def section_steps(args, dataset) -> list[dict]:
    import torch

    precisions = ["none"]
    if args.device.startswith("cuda") and torch.cuda.is_bf16_supported():
        precisions.append("bf16")
    rows = []
    for name in TRAINED:
        size = smoke_overrides(name) if args.quick else {}
        variants = [dict(size)]
        if name == "cyclegan" and args.device.startswith("cuda"):
            variants = [{**size, "channels_last": True}, {**size, "channels_last": False}]
        for overrides in variants:
            for amp_mode in precisions:
                try:
                    rows.append(time_steps(name, overrides, amp_mode, args.device, args.steps, args.warmup, dataset))
                except Exception as exc:  # noqa: BLE001 - one method's failure must not hide the others'
                    rows.append({"method": name, "amp": amp_mode, "error": f"{type(exc).__name__}: {exc}"})
                print(f"steps: {rows[-1]}", flush=True)
    return rows


def section_instance_norm(args) -> list[dict]:
    """Largest error of float32 instance norm (NCHW, channels-last) on near-silent patches against float64."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(0)
    x = 1000.0 + 1e-3 * torch.randn(2, 16, 64, 64, generator=g, dtype=torch.float64)
    reference = nn.functional.instance_norm(x)
    rows = []
    norm = nn.InstanceNorm2d(16, affine=True).to(args.device)
    for layout in (torch.contiguous_format, torch.channels_last):
        inp = x.float().to(args.device).contiguous(memory_format=layout)
        out = norm.to(memory_format=layout)(inp)
        error = (out.double().cpu() - reference).abs().max().item()
        rows.append({"layout": "channels_last" if layout == torch.channels_last else "nchw", "max_abs_error": error})
        print(f"instance_norm: {rows[-1]}", flush=True)
    return rows


def section_shallow_cnn(args, dataset) -> dict:
    from audiostyle import methods
    from audiostyle.methods.base import TrialContext

    method = methods.get("shallow_cnn")
    overrides = {**smoke_overrides("shallow_cnn"), "content_domain": "piano", "style_domain": "violin",
                 "steps": 4 if args.quick else 100}
    config = method.make_config(overrides)
    start = time.perf_counter()
    final = method.train(config, method.prepare(dataset, config), TrialContext(device=args.device))
    out = {"wall_s": time.perf_counter() - start, "steps": config.steps,
           **{k: final[k] for k in ("transfer_score", "melody", "target_prob", "lsd_rel") if k in final}}
    print(f"shallow_cnn: {out}", flush=True)
    return out


def section_sweep(args, out: Path) -> dict:
    try:
        import ray  # noqa: F401
    except ImportError:
        return {"skipped": "ray does not import on this machine (its wheel is larger than what travels)"}
    from audiostyle.store import Store

    store = out / "sweep_store"
    gpus = ["--gpus-per-trial", "0.25"] if args.device.startswith("cuda") else []
    cmd = [sys.executable, "sweeps/shallow_cnn.py", "--smoke", "--samples", "4", "--store", str(store),
           "--address", "local", "--no-dashboard", "--max-concurrent", "4", *gpus]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.sweep_timeout)
    trials = Store(str(store)).trials() if store.exists() else None
    rows = [] if trials is None else trials[["trial_id", "status", "device", "started_at", "ended_at"]].astype(str)
    return {"returncode": proc.returncode, "trials": [] if trials is None else rows.to_dict("records"),
            "tail": proc.stdout[-1500:] + proc.stderr[-1500:]}


def _markdown(report: dict) -> str:
    lines = [f"# GPU check ({report['machine']})", "", "## Training steps", "",
             "| method | amp | layout | s/step | peak MB | finite |", "|---|---|---|---:|---:|---|"]
    for row in report.get("steps", []):
        if "error" in row:
            lines.append(f"| {row['method']} | {row['amp']} | | error: {row['error'][:80]} | | |")
            continue
        layout = {True: "channels_last", False: "nchw"}.get(row.get("channels_last"), "default")
        lines.append(f"| {row['method']} | {row['amp']} | {layout} | {row['step_s']:.4f} | {row['peak_mb']:.0f} | "
                     f"{row['finite']} |")
    lines += ["", "## Instance norm on near-silent patches (float32 vs float64)", "",
              "| layout | max abs error |", "|---|---:|"]
    lines += [f"| {r['layout']} | {r['max_abs_error']:.3g} |" for r in report.get("instance_norm", [])]
    lines += ["", "## Shallow CNN trial", "", f"`{json.dumps(report.get('shallow_cnn'))}`", "",
              "## Ray sweep, 4 trials", "", f"`{json.dumps(report.get('sweep'))[:3000]}`"]
    errors = report.get("errors", {})
    if errors:
        lines += ["", "## Sections that failed", ""] + [f"- {k}: {v.splitlines()[-1]}" for k, v in errors.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    p.add_argument("--quick", action="store_true", help="smoke-sized networks and few steps (the CPU test's path)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per method (default 20; quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5; quick 1)")
    p.add_argument("--sections", nargs="+", default=["steps", "instance_norm", "shallow_cnn", "sweep"],
                   choices=["steps", "instance_norm", "shallow_cnn", "sweep"])
    p.add_argument("--sweep-timeout", type=int, default=240, help="seconds the Ray sweep may take")
    args = p.parse_args(argv)
    args.steps = args.steps or (2 if args.quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda but torch sees no GPU; use --device cpu for the CPU path.", file=sys.stderr)
            return 2
    from audiostyle.data.synth import demo_dataset

    report: dict = {"machine": describe(args.device), "args": vars(args), "errors": {}, "seconds": {}}
    dataset = demo_dataset(seed=0)
    sections = {"steps": lambda: section_steps(args, dataset), "instance_norm": lambda: section_instance_norm(args),
                "shallow_cnn": lambda: section_shallow_cnn(args, dataset), "sweep": lambda: section_sweep(args, out)}
    for name in args.sections:
        start = time.perf_counter()
        try:
            report[name] = sections[name]()
        except Exception:  # noqa: BLE001 - keep the other sections' results
            report["errors"][name] = traceback.format_exc()
            print(f"{name} failed:\n{report['errors'][name]}", file=sys.stderr, flush=True)
        report["seconds"][name] = round(time.perf_counter() - start, 1)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
        (out / "gpu_check.md").write_text(_markdown(report))
    print(f"wrote {out / 'gpu_check.md'}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
