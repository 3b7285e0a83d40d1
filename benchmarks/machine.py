"""One line naming the machine a benchmark ran on: CPU model and flags that matter, load, torch, date.

Every results table starts with it (BENCHMARKS.md: a figure states its machine), and ratios taken side by side
in one run are the headline because the load on a shared machine changes absolute seconds.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
"""``/proc/cpuinfo`` flags that decide which kernels torch can use (bf16 runs natively with avx512_bf16 or amx)."""


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and which of :data:`FLAGS` it has (Linux; the platform's string elsewhere)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return model, [f for f in FLAGS if f in flags]


def load_averages() -> tuple[float, float, float]:
    """The 1, 5 and 15 min load averages (zeros where the platform has none)."""
    return os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)


def load_now() -> str:
    """``a / b / c, <UTC date>``: the load averages (1/5/15 min) and the time, as :func:`describe` ends."""
    load = " / ".join(f"{v:.1f}" for v in load_averages())
    return f"{load}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"


def describe(device: str = "cpu") -> str:
    """``<CPU or GPU>, N cores, flags …, torch …, load average a / b / c (1/5/15 min), <UTC date>``."""
    import torch

    model, flags = cpu_model_and_flags()
    where = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else model
    return (f"{where}, {os.cpu_count()} cores, flags {' '.join(flags) or 'none of ' + ' '.join(FLAGS)}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load_now()}")


def peak_mb(device) -> float:
    """Peak memory so far in MiB: allocated by torch on CUDA (reset it with ``torch.cuda.reset_peak_memory_stats``),
    the process's peak resident set on the CPU."""
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def sync(device) -> None:
    """Wait for the device's queued work (CUDA), so a timer around it measures the work."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
