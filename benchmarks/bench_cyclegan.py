"""CycleGAN training step: the public reference vs audiostyle's ``cyclegan``, side by side.

Each variant runs in its own subprocess (clean peak RSS) on random 1-channel ``size × size`` spectrogram batches
(batch 2, PatchGAN, instance norm, least-squares loss, image pool 50, identity weight 4, cycle weights 10), with
``--threads`` CPU threads. Reported: median seconds per step after warm-up, peak resident memory (CPU) or peak
allocated memory (CUDA), and the ratios ours / reference (target: ≤ 0.7× time, ≤ 0.6× memory, BENCHMARKS.md).
The ``ours`` worker also measures the shared loop's overhead at the default cadence: one ``evaluate`` (common
metrics on the demo set's fixed validation clips) plus one checkpoint capture, divided by ``report_every`` steps.

``REFERENCE`` below is a faithful re-implementation, for this benchmark only, of
junyanz/pytorch-CycleGAN-and-pix2pix ``models/networks.py`` (``ResnetGenerator``, ``ResnetBlock``,
``NLayerDiscriminator``, ``GANLoss('lsgan')``, ``init_weights('normal', 0.02)``), ``util/image_pool.py``
(``ImagePool``) and ``models/cycle_gan_model.py`` (``forward``, ``backward_G``, ``backward_D_basic``,
``optimize_parameters``). ``lambda_identity`` 0.4 × ``lambda_A/B`` 10 gives the report's identity weight 4.

Usage::

    python benchmarks/bench_cyclegan.py              # 256 × 256, 9 blocks and 6 blocks; 128 × 128, 6 blocks
    python benchmarks/bench_cyclegan.py --quick      # 128 × 128, 6 blocks only
    python benchmarks/bench_cyclegan.py --amp none bf16 --compile off on   # mixed precision and torch.compile
    python benchmarks/bench_cyclegan.py --device cuda --amp none bf16
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/machine.py, also when a test imports this file
from machine import peak_mb, sync  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# ================================================================================================
# REFERENCE: re-implementation of junyanz/pytorch-CycleGAN-and-pix2pix (benchmark use only)
# ================================================================================================
def _reference_classes():
    import torch
    from torch import nn

    class RefResnetBlock(nn.Module):
        def __init__(self, dim, norm_layer, use_bias):
            super().__init__()
            self.conv_block = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias), norm_layer(dim),
                nn.ReLU(True),
                nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias), norm_layer(dim),
            )

        def forward(self, x):
            return x + self.conv_block(x)

    class RefResnetGenerator(nn.Module):
        def __init__(self, input_nc, output_nc, ngf=64, n_blocks=9):
            super().__init__()
            norm_layer = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
            use_bias = True  # norm_layer.func == nn.InstanceNorm2d
            model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
                     norm_layer(ngf), nn.ReLU(True)]
            n_downsampling = 2
            for i in range(n_downsampling):
                mult = 2**i
                model += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                          norm_layer(ngf * mult * 2), nn.ReLU(True)]
            mult = 2**n_downsampling
            for i in range(n_blocks):
                model += [RefResnetBlock(ngf * mult, norm_layer, use_bias)]
            for i in range(n_downsampling):
                mult = 2 ** (n_downsampling - i)
                model += [nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3, stride=2, padding=1,
                                             output_padding=1, bias=use_bias),
                          norm_layer(int(ngf * mult / 2)), nn.ReLU(True)]
            model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
            self.model = nn.Sequential(*model)

        def forward(self, input):
            return self.model(input)

    class RefNLayerDiscriminator(nn.Module):
        def __init__(self, input_nc, ndf=64, n_layers=3):
            super().__init__()
            norm_layer = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
            use_bias = True
            kw, padw = 4, 1
            sequence = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
            nf_mult = 1
            for n in range(1, n_layers):
                nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
                sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw,
                                       bias=use_bias), norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
            nf_mult_prev, nf_mult = nf_mult, min(2**n_layers, 8)
            sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw,
                                   bias=use_bias), norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
            sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
            self.model = nn.Sequential(*sequence)

        def forward(self, input):
            return self.model(input)

    def init_weights(net, init_gain=0.02):
        def init_func(m):
            classname = m.__class__.__name__
            if hasattr(m, "weight") and (classname.find("Conv") != -1 or classname.find("Linear") != -1):
                nn.init.normal_(m.weight.data, 0.0, init_gain)
                if hasattr(m, "bias") and m.bias is not None:
                    nn.init.constant_(m.bias.data, 0.0)
        net.apply(init_func)
        return net

    class GANLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("real_label", torch.tensor(1.0))
            self.register_buffer("fake_label", torch.tensor(0.0))
            self.loss = nn.MSELoss()

        def __call__(self, prediction, target_is_real):
            target = (self.real_label if target_is_real else self.fake_label).expand_as(prediction)
            return self.loss(prediction, target)

    class ImagePool:
        def __init__(self, pool_size):
            self.pool_size = pool_size
            self.num_imgs = 0
            self.images = []

        def query(self, images):
            if self.pool_size == 0:
                return images
            return_images = []
            for image in images:
                image = torch.unsqueeze(image.data, 0)
                if self.num_imgs < self.pool_size:
                    self.num_imgs += 1
                    self.images.append(image)
                    return_images.append(image)
                else:
                    p = random.uniform(0, 1)
                    if p > 0.5:
                        random_id = random.randint(0, self.pool_size - 1)
                        tmp = self.images[random_id].clone()
                        self.images[random_id] = image
                        return_images.append(tmp)
                    else:
                        return_images.append(image)
            return torch.cat(return_images, 0)

    class RefCycleGANModel:
        def __init__(self, ngf, n_blocks, device, lr=2e-4, beta1=0.5, lambda_A=10.0, lambda_B=10.0,
                     lambda_identity=0.4, pool_size=50):
            self.device = device
            self.lambda_A, self.lambda_B, self.lambda_identity = lambda_A, lambda_B, lambda_identity
            self.netG_A = init_weights(RefResnetGenerator(1, 1, ngf, n_blocks)).to(device)
            self.netG_B = init_weights(RefResnetGenerator(1, 1, ngf, n_blocks)).to(device)
            self.netD_A = init_weights(RefNLayerDiscriminator(1, 64, 3)).to(device)
            self.netD_B = init_weights(RefNLayerDiscriminator(1, 64, 3)).to(device)
            self.fake_A_pool, self.fake_B_pool = ImagePool(pool_size), ImagePool(pool_size)
            self.criterionGAN = GANLoss().to(device)
            self.criterionCycle = torch.nn.L1Loss()
            self.criterionIdt = torch.nn.L1Loss()
            self.optimizer_G = torch.optim.Adam(itertools.chain(self.netG_A.parameters(), self.netG_B.parameters()),
                                                lr=lr, betas=(beta1, 0.999))
            self.optimizer_D = torch.optim.Adam(itertools.chain(self.netD_A.parameters(), self.netD_B.parameters()),
                                                lr=lr, betas=(beta1, 0.999))

        def set_input(self, real_A, real_B):
            self.real_A, self.real_B = real_A.to(self.device), real_B.to(self.device)

        @staticmethod
        def set_requires_grad(nets, requires_grad=False):
            for net in nets:
                for param in net.parameters():
                    param.requires_grad = requires_grad

        def forward(self):
            self.fake_B = self.netG_A(self.real_A)
            self.rec_A = self.netG_B(self.fake_B)
            self.fake_A = self.netG_B(self.real_B)
            self.rec_B = self.netG_A(self.fake_A)

        def backward_D_basic(self, netD, real, fake):
            pred_real = netD(real)
            loss_D_real = self.criterionGAN(pred_real, True)
            pred_fake = netD(fake.detach())
            loss_D_fake = self.criterionGAN(pred_fake, False)
            loss_D = (loss_D_real + loss_D_fake) * 0.5
            loss_D.backward()
            return loss_D

        def backward_D_A(self):
            fake_B = self.fake_B_pool.query(self.fake_B)
            self.loss_D_A = self.backward_D_basic(self.netD_A, self.real_B, fake_B)

        def backward_D_B(self):
            fake_A = self.fake_A_pool.query(self.fake_A)
            self.loss_D_B = self.backward_D_basic(self.netD_B, self.real_A, fake_A)

        def backward_G(self):
            lambda_idt, lambda_A, lambda_B = self.lambda_identity, self.lambda_A, self.lambda_B
            self.idt_A = self.netG_A(self.real_B)
            self.loss_idt_A = self.criterionIdt(self.idt_A, self.real_B) * lambda_B * lambda_idt
            self.idt_B = self.netG_B(self.real_A)
            self.loss_idt_B = self.criterionIdt(self.idt_B, self.real_A) * lambda_A * lambda_idt
            self.loss_G_A = self.criterionGAN(self.netD_A(self.fake_B), True)
            self.loss_G_B = self.criterionGAN(self.netD_B(self.fake_A), True)
            self.loss_cycle_A = self.criterionCycle(self.rec_A, self.real_A) * lambda_A
            self.loss_cycle_B = self.criterionCycle(self.rec_B, self.real_B) * lambda_B
            self.loss_G = (self.loss_G_A + self.loss_G_B + self.loss_cycle_A + self.loss_cycle_B + self.loss_idt_A
                           + self.loss_idt_B)
            self.loss_G.backward()

        def optimize_parameters(self):
            self.forward()
            self.set_requires_grad([self.netD_A, self.netD_B], False)
            self.optimizer_G.zero_grad()
            self.backward_G()
            self.optimizer_G.step()
            self.set_requires_grad([self.netD_A, self.netD_B], True)
            self.optimizer_D.zero_grad()
            self.backward_D_A()
            self.backward_D_B()
            self.optimizer_D.step()

    return RefCycleGANModel


# ================================================================================================
# workers (one per subprocess)
# ================================================================================================
def _batches(size: int, n: int, device):
    import torch

    g = torch.Generator().manual_seed(0)
    return [(torch.rand(2, 1, size, size, generator=g) * 2 - 1).to(device) for _ in range(2 * n)]


def _our_config(args):
    from audiostyle.methods.cyclegan import CycleGANConfig

    n_fft = 2 * args.size - 1  # args.size frequency bins
    return CycleGANConfig(n_blocks=args.blocks, ngf=64, ndf=64, n_fft=n_fft, hop_length=n_fft // 4,
                          patch_frames=args.size, lambda_id=4.0, amp=args.amp, compile=args.compile,
                          steps=CycleGANConfig.steps,  # the default run length, which compile="auto" looks at
                          channels_last=not args.no_channels_last)


def worker(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    batches = _batches(args.size, args.warmup + args.steps + 1, device)
    extra: dict = {}
    if args.worker == "reference":
        model = _reference_classes()(64, args.blocks, device)

        def step(i: int) -> None:
            model.set_input(batches[2 * i], batches[2 * i + 1])
            model.optimize_parameters()
    else:
        from audiostyle.methods.cyclegan import CycleGAN
        from audiostyle.methods.precision import Amp, compile_modules, trial_amp

        method = CycleGAN()
        config = _our_config(args)
        config = dataclasses.replace(config, amp=trial_amp(config, method.auto_amp, device))  # as the loop does
        parts = method.build(config, None, device)
        parts.config = config
        extra["amp_resolved"] = config.amp
        extra["compiled"] = compile_modules(parts.modules, config, device, method.name)  # the warm-up step compiles
        amp = Amp(config.amp, device, config.grad_clip)

        def step(i: int) -> None:
            losses = method.train_step(parts, (batches[2 * i], batches[2 * i + 1]), i + 1, amp)
            amp.update()
            [float(v) for v in losses.values()]  # the loop's per-step NaN check syncs once

    times, cpu = [], []
    for i in range(args.warmup + args.steps):
        sync(device)
        t, c = time.perf_counter(), time.process_time()
        step(i)
        sync(device)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    peak = peak_mb(device)  # before the profiled step, whose recording costs memory
    if args.worker == "ours" and args.overhead:
        extra.update(_loop_overhead(method, config, parts, amp, device, statistics.median(times[args.warmup:])))
    if args.profile:
        extra["profile"] = _profile(lambda: step(args.warmup + args.steps), args.profile)
    return {"worker": args.worker, "median_s": statistics.median(times[args.warmup:]), "times": times,
            "median_cpu_s": statistics.median(cpu[args.warmup:]), "peak_mb": peak, **extra}


def _profile(step, top: int) -> list[tuple[str, float, float]]:
    """One profiled step: the ``top`` operators by self CPU time as (name, ms, share of the step's self time)."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [(e.key, e.self_cpu_time_total / 1e3, e.self_cpu_time_total / total) for e in events[:top]]


def _loop_overhead(method, config, parts, amp, device, step_s: float) -> dict:
    """One evaluate + one checkpoint capture on the demo set, as a fraction of ``report_every`` steps."""
    import numpy as np

    from audiostyle.data import synth
    from audiostyle.methods.checkpoint import capture_state
    from audiostyle.methods.trained import evaluation

    data = method.prepare(synth.demo_dataset(), config)
    t = time.perf_counter()
    with evaluation(parts, device):
        method.evaluate(parts, config, data, device)
    eval_s = time.perf_counter() - t
    t = time.perf_counter()
    capture_state(parts, 1, config, amp, np.random.default_rng(0))
    ckpt_s = time.perf_counter() - t
    every = config.report_every
    return {"eval_s": eval_s, "checkpoint_s": ckpt_s, "report_every": every,
            "overhead": (eval_s + ckpt_s) / (every * step_s)}


# ================================================================================================
# driver
# ================================================================================================
def run_one(args, worker_name: str, size: int, blocks: int, amp: str, compiled: str = "off") -> dict:
    cmd = [sys.executable, __file__, "--worker", worker_name, "--size", str(size), "--blocks", str(blocks),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
           "--device", args.device, "--amp-one", amp, "--compile-one", compiled]
    if args.overhead and worker_name == "ours":
        cmd.append("--overhead")
    if args.no_channels_last:
        cmd.append("--no-channels-last")
    if args.profile:
        cmd += ["--profile", str(args.profile)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{worker_name} {size}x{size} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="128 × 128, 6 blocks only")
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--amp", nargs="+", default=["none"], help="amp modes of ours to run (auto none bf16 fp16; auto = the default, resolved as the loop does; "
                        "fp16 CUDA only)")
    p.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on", "auto"],
                   help="torch.compile settings of ours to run (the warm-up step includes compilation; auto = the "
                        "config's default, which compiles runs of the default 15 000 steps)")
    p.add_argument("--overhead", action="store_true", help="also measure the loop overhead (evaluate + checkpoint)")
    p.add_argument("--no-channels-last", action="store_true",
                   help="ours in contiguous (NCHW) format on CUDA (the CPU always is)")
    p.add_argument("--profile", type=int, default=0, metavar="K",
                   help="profile one extra step of each variant and print its K costliest operators side by side")
    p.add_argument("--sizes", default=None, help="comma list of SIZExBLOCKS, e.g. 256x9,128x6")
    p.add_argument("--worker", choices=["reference", "ours"], help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=256, help=argparse.SUPPRESS)
    p.add_argument("--blocks", type=int, default=9, help=argparse.SUPPRESS)
    p.add_argument("--amp-one", dest="amp_one", default="none", help=argparse.SUPPRESS)
    p.add_argument("--compile-one", dest="compile_one", default="off", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        args.amp, args.compile = args.amp_one, args.compile_one
        print(json.dumps(worker(args)))
        return 0

    if args.sizes:
        grid = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    else:
        grid = [(128, 6)] if args.quick else [(256, 9), (256, 6), (128, 6)]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import machine

    print(f"# CycleGAN step, reference vs ours ({args.threads} threads per variant, device {args.device})\n\n"
          f"Machine: {machine.describe(args.device)}.\n")
    print("| generator, size | amp, compile | ref s/step | ours s/step | time ratio | CPU-time ratio | ref peak MB | ours peak MB |"
          " mem ratio | loop overhead |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    profiles = []
    for size, blocks in grid:
        ref = run_one(args, "reference", size, blocks, "none")
        for amp, compiled in itertools.product(args.amp, args.compile):
            ours = run_one(args, "ours", size, blocks, amp, compiled)
            over = f"{100 * ours['overhead']:.2f} % (eval {ours['eval_s']:.1f} s / {ours['report_every']} steps)" \
                if "overhead" in ours else "–"
            mode = f"{amp} → {ours['amp_resolved']}, {compiled} → {'on' if ours['compiled'] else 'off'}"
            profiles.append((f"resnet_{blocks}blocks {size} × {size}, ours {mode}", ref.get("profile"),
                             ours.get("profile")))
            print(f"| resnet_{blocks}blocks, {size} × {size} | {mode} | {ref['median_s']:.2f} | {ours['median_s']:.2f} | "
                  f"{ours['median_s'] / ref['median_s']:.2f} | {ours['median_cpu_s'] / ref['median_cpu_s']:.2f} | "
                  f"{ref['peak_mb']:.0f} | {ours['peak_mb']:.0f} | "
                  f"{ours['peak_mb'] / ref['peak_mb']:.2f} | {over} |", flush=True)
    for title, ref_prof, ours_prof in profiles if args.profile else ():
        print(f"\nProfile of one step, {title}: self CPU time per operator (ms, share of the step)\n\n"
              "| reference operator | ms | share | ours operator | ms | share |\n|---|---|---|---|---|---|")
        for (rn, rms, rs), (on, oms, os_) in zip(ref_prof, ours_prof):
            print(f"| {rn} | {rms:.0f} | {100 * rs:.1f} % | {on} | {oms:.0f} | {100 * os_:.1f} % |")
    print(f"\nLoad at the end: {machine.load_now()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
