"""A trial's GPU: which device it trains on, how much of that device's memory it may take, and which GPU
failures belong to the platform rather than to the method.

- :func:`pick_device`: ``cuda:0`` when Ray gave the trial a GPU share; a share that torch cannot use (a driver
  older than the torch build needs, a CPU build of torch) fails the trial as a
  :class:`~audiostyle.errors.PlatformError` instead of training on one CPU while holding the GPU.
- :func:`memory_fraction` / :func:`cap_memory`: trials sharing a GPU (``gpus_per_trial < 1``) each get their
  share of its memory (``torch.cuda.set_per_process_memory_fraction``), so one trial cannot take a co-tenant's.
- :func:`is_gpu_platform_failure`: CUDA out of memory and CUDA errors (sticky: they poison the process) are
  raised to Ray as platform errors: retried in a new worker process, never taught to the searcher as a score.

The supported CUDA / driver / image combination is stated once, in ``cluster/README.md`` ("GPU stack").
"""

from __future__ import annotations

from typing import Sequence

from audiostyle.errors import PlatformError

GPU_CHECK = 'python -c "import torch; print(torch.version.cuda, torch.cuda.is_available())"'
"""Run on a node: prints torch's CUDA build (None for a CPU build) and whether it can use a GPU there."""

GPU_FAILURE_MARKS = ("CUDA out of memory", "CUDA error", "CUBLAS_STATUS_", "CUDNN_STATUS_", "cuDNN error")
"""Text of the ``RuntimeError``s torch raises for GPU failures that older code paths do not type."""


def cuda_mismatch(gpu_ids: Sequence[object], torch_version: str, cuda_build: str | None) -> str:
    """The message of a trial that Ray gave ``gpu_ids`` but whose torch cannot use them."""
    build = f"a CUDA {cuda_build} build" if cuda_build else "a CPU-only build"
    return (
        f"Ray gave this trial GPU {', '.join(map(str, gpu_ids))} but torch {torch_version} ({build}) finds no usable "
        "CUDA device (torch.cuda.is_available() is False): the node's NVIDIA driver is missing or older than this "
        "torch build needs, or torch is a CPU build. Install the GPU stack of cluster/README.md (torch build, "
        f"driver and image that agree) and check it on the node with {GPU_CHECK}; or sweep with --gpus-per-trial 0."
    )


def pick_device() -> str:
    """``cuda:0`` when Ray gave this trial a GPU share, else ``cpu``.

    Ray sets ``CUDA_VISIBLE_DEVICES`` to the trial's own GPU (several trials may share one with
    ``gpus_per_trial < 1``), so the first visible device is the trial's; a trial without a GPU share runs on
    the CPU even on a GPU node. Raises :class:`PlatformError` (:func:`cuda_mismatch`) when the trial has a GPU
    share that torch cannot use.
    """
    import ray

    gpu_ids = ray.get_gpu_ids()
    if not gpu_ids:
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise PlatformError(cuda_mismatch(gpu_ids, torch.__version__, torch.version.cuda))
    return "cuda:0"


def memory_fraction(gpus_per_trial: float) -> float | None:
    """The fraction of its GPU's memory a trial may allocate: its share when it shares the GPU
    (``0 < gpus_per_trial < 1``), else None (a whole GPU, or none)."""
    return float(gpus_per_trial) if 0 < gpus_per_trial < 1 else None


def cap_memory(device: str, gpus_per_trial: float) -> float | None:
    """Cap this process's CUDA allocations on ``device`` at :func:`memory_fraction`; the fraction set, or None
    (a CPU device or a whole GPU: nothing to cap)."""
    fraction = memory_fraction(gpus_per_trial)
    if fraction is None or not device.startswith("cuda"):
        return None
    import torch

    torch.cuda.set_per_process_memory_fraction(fraction, torch.device(device))
    return fraction


def is_gpu_platform_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a GPU failure (out of memory, a CUDA/cuBLAS/cuDNN error) rather than the method's own.

    On a shared GPU such failures come from a co-tenant's memory use, and a CUDA error leaves the process's CUDA
    context unusable: neither says anything about the config being tried.
    """
    import torch

    if isinstance(exc, (torch.OutOfMemoryError, torch.AcceleratorError)):
        return True
    return isinstance(exc, RuntimeError) and any(mark in str(exc) for mark in GPU_FAILURE_MARKS)
