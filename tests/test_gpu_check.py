"""``benchmarks/gpu_check.sh``, the first GPU run's one command, on its CPU path (``--device cpu --quick``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_times_every_trained_method_and_the_instance_norm_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", str(out), "--device", "cpu", "--quick", "--steps", "1",
                           "--warmup", "0", "--sections", "steps", "instance_norm"], cwd=REPO, capture_output=True,
                          text=True, timeout=900, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert not report["errors"]
    rows = {row["method"]: row for row in report["steps"]}
    assert set(rows) == {"cyclegan", "segnet", "unet", "spec_gan", "wave_vae", "wave_vae_pool"}
    assert all(row["finite"] and row["step_s"] > 0 and row["peak_mb"] > 0 for row in rows.values())
    assert {r["layout"] for r in report["instance_norm"]} == {"nchw", "channels_last"}
    table = (out / "gpu_check.md").read_text()
    assert "| cyclegan | none | default |" in table and "cores" in table.splitlines()[0]


def test_gpu_check_refuses_cuda_without_a_gpu(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "torch sees no GPU; use --device cpu" in proc.stderr
