"""GPU paths of the sweep without a GPU: GPU shares and memory caps, GPU failures as platform errors, trials
waiting for resources, weights-only checkpoints, shared paths. The Ray tests run a real local Ray; where it
must declare a GPU this CPU machine lacks (``ray.init(num_gpus=1)``), the sweep runs in its own process."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from audiostyle import methods
from audiostyle.errors import AudiostyleError
from audiostyle.sweep import Choice
from audiostyle.store import Store
from audiostyle.sweep._gpu import GPU_CHECK, cap_memory, cuda_mismatch, is_gpu_platform_failure, memory_fraction
from audiostyle.sweep._plan import Settings, new_plan
from audiostyle.sweep._ray import trials_fitting
from audiostyle.sweep._shared import filesystem_type, on_network_filesystem
from audiostyle.sweep._trial import _restore
from tests.test_sweep_ray import ray_results, saved_study, toy_sweep

REPO = Path(__file__).resolve().parents[1]
methods.register("toy", "tests.toy_method:Toy")


# -- shares, caps, classification ------------------------------------------------------------------
def test_a_tenth_of_a_gpu_fits_ten_trials():
    assert 1 // 0.1 == 9.0  # why a plain floor division is wrong
    assert [trials_fitting(1, 0.1), trials_fitting(1, 0.3), trials_fitting(4, 0.25), trials_fitting(2, 3)] == [10, 3, 16, 0]


@pytest.mark.parametrize("share", [2, 1.5, -0.5])
def test_a_gpu_share_a_trial_cannot_use_is_refused_with_the_reason(share):
    with pytest.raises(AudiostyleError, match=rf"gpus_per_trial={share}"):
        new_plan("toy", Settings(gpus_per_trial=share), "/tmp/unused")
    assert new_plan("toy", Settings(gpus_per_trial=1), "/tmp/unused").gpus_per_trial == 1


def test_more_than_one_gpu_names_the_one_device_a_trial_trains_on():
    with pytest.raises(AudiostyleError, match="a trial trains on one GPU.*--gpus-per-trial 1"):
        new_plan("toy", Settings(gpus_per_trial=2), "/tmp/unused")


def test_a_shared_gpu_caps_each_trial_at_its_share_of_the_memory():
    assert [memory_fraction(s) for s in (0.25, 0.5, 0.1)] == [0.25, 0.5, 0.1]
    assert memory_fraction(1) is None and memory_fraction(0) is None
    assert cap_memory("cpu", 0.25) is None  # nothing to cap without CUDA


def test_gpu_failures_are_the_platforms_and_the_methods_own_are_not():
    assert is_gpu_platform_failure(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_gpu_platform_failure(torch.AcceleratorError("device-side assert triggered"))  # sticky: typed by torch
    assert is_gpu_platform_failure(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert is_gpu_platform_failure(RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling cublasSgemm"))
    for own in (FloatingPointError("loss became nan"), AudiostyleError("bad config"), RuntimeError("shape mismatch"),
                ValueError("CUDA out of memory")):
        assert not is_gpu_platform_failure(own), own


def test_a_driver_mismatch_message_names_the_build_and_the_check():
    text = cuda_mismatch([0], "2.13.0", "13.0")
    assert "CUDA 13.0 build" in text and "driver" in text and GPU_CHECK in text and "cluster/README.md" in text
    assert "CPU-only build" in cuda_mismatch(["0"], "2.13.0+cpu", None)


# -- checkpoints -----------------------------------------------------------------------------------
class Payload:
    """Not a tensor, number, string or container: ``weights_only`` loading must refuse to build it."""

    def __reduce__(self):
        return (print, ("unpickling ran code",))


def _checkpoint(folder: Path, state: object):
    from ray import tune

    from audiostyle.sweep._keys import CHECKPOINT_FILE, TRIAL_FILE

    folder.mkdir()
    torch.save(state, folder / CHECKPOINT_FILE)
    (folder / TRIAL_FILE).write_text(json.dumps({"step": 3, "tracked": {"transfer_score": 0.5}, "trial_id": "t1"}))
    return tune.Checkpoint.from_directory(str(folder))


def test_checkpoints_are_loaded_weights_only(tmp_path):
    state = {"format": 1, "step": 3, "modules": {"net": {"w": torch.ones(2)}}, "rng": {"python": (3, (1, 2), None)}}
    resumed = _restore(_checkpoint(tmp_path / "good", state))
    assert resumed.step == 3 and torch.equal(resumed.state["modules"]["net"]["w"], torch.ones(2))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        _restore(_checkpoint(tmp_path / "bad", {"step": 3, "payload": Payload()}))


# -- shared paths ------------------------------------------------------------------------------------
MOUNTS = """\
/dev/root / ext4 rw 0 0
tmpfs /tmp tmpfs rw 0 0
fs-1.efs.us-west-2.amazonaws.com:/ /mnt/efs nfs4 rw 0 0
s3fs /mnt/bucket fuse.s3fs rw 0 0
/dev/nvme1n1 /mnt/efs/local ext4 rw 0 0
"""


def test_the_filesystem_of_a_path_is_its_longest_mount_point():
    assert filesystem_type("/home/me/results", MOUNTS) == "ext4"
    assert filesystem_type("/tmp/x", MOUNTS) == "tmpfs"
    assert filesystem_type("/mnt/efs/results", MOUNTS) == "nfs4"
    assert filesystem_type("/mnt/efs/local/results", MOUNTS) == "ext4"
    assert [on_network_filesystem(p, MOUNTS) for p in ("/mnt/efs/r", "/mnt/bucket/r", "/tmp/r", "/mnt/efsx")] == [
        True, True, False, False]


# -- real Ray ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cuda_out_of_memory_is_retried_in_a_new_worker_and_never_taught_as_a_score(tmp_path, ray_session):
    result = toy_sweep(
        tmp_path, space={"fail": Choice(("none", "oom")), "y": Choice((4, 5))},
        points=[{"fail": "oom", "y": 5}, {"fail": "none", "y": 4}, {"fail": "none", "y": 5}], samples=3, max_concurrent=1, scheduler="none", max_failures=1, overrides={"sleep_s": 0.05, "x": 0.3},
    )
    rows = result.trials.set_index("trial_id")
    (oom,) = rows.index[rows["config.fail"] == "oom"]
    fine = list(rows.index[rows["config.fail"] == "none"])
    assert rows.loc[oom, "status"] == "failed" and "OutOfMemoryError" in rows.loc[oom, "error"]
    assert "GPU failure" in rows.loc[oom, "error"] and len(fine) == 2 and set(rows.loc[fine, "status"]) == {"finished"}
    logged = ray_results(result.experiment_path)
    pids = {t: {r["pid"] for r in logged[t]} for t in logged}
    # The failed trial's workers: those that logged its results (none when the error overtook them, under load)
    # and the one named in its error (Ray's "(pid=…)" of the last attempt).
    oom_pids = pids.get(oom, set()) | {int(p) for p in re.findall(r"\(pid=(\d+),", rows.loc[oom, "error"])}
    # Tune reuses actors (the two fine trials ran in one worker) but not the one the GPU failure poisoned
    assert oom_pids and pids[fine[0]] == pids[fine[1]] and not oom_pids & pids[fine[0]]
    # Ray retried it from its step-2 checkpoint: no step is logged twice (a retry from scratch would report step 1
    # again). Ray may drop the step-2 result, or both, when the error overtakes them: the log is [1, 2], [1] or [].
    steps = [r["step"] for r in logged.get(oom, [])]
    assert steps in ([1, 2], [1], []), steps
    study = saved_study(result.experiment_path)
    states = sorted((t.params["fail"], t.state.name, t.values is None) for t in study.trials)
    assert states == [("none", "COMPLETE", False), ("none", "COMPLETE", False), ("oom", "FAIL", True)]


GPU_DRIVER = textwrap.dedent(
    """
    import json, logging, sys
    import ray
    from audiostyle import methods, sweep
    from audiostyle.data.synth import demo_dataset

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    methods.register("toy", "tests.toy_method:Toy")
    # A Ray that declares one GPU on a machine without any: Ray grants GPU shares that torch cannot use.
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="WARNING")
    result = sweep.run("toy", data=demo_dataset(n_melodies=2, seconds=0.5), dashboard=False, verbose=0,
                       **json.loads(sys.argv[1]))
    print("EXPERIMENT " + result.experiment_path, flush=True)
    """
)


def gpu_sweep(tmp_path: Path, log: Path, **settings) -> subprocess.Popen:
    """The toy sweep in its own process, on a local Ray with one declared GPU; output to ``log``."""
    script = tmp_path / "gpu_driver.py"
    script.write_text(GPU_DRIVER)
    options = {"store": str(tmp_path / "store"), "cache_dir": str(tmp_path / "cache"), "scheduler": "none", **settings}
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}  # Ray checks it against num_gpus
    env["PYTHONPATH"] = str(REPO)
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, str(script), json.dumps(options)], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    """Wait for the driver; its output. (Killed, with its Ray, if it outlives ``timeout``.)"""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return log.read_text()


@pytest.mark.slow
def test_a_gpu_share_torch_cannot_use_fails_as_a_platform_error_naming_the_mismatch(tmp_path):
    log = tmp_path / "driver.log"
    out = finish(gpu_sweep(tmp_path, log, samples=2, gpus_per_trial=0.5, max_failures=1), log)
    (line,) = [l for l in out.splitlines() if l.startswith("EXPERIMENT ")]
    experiment = line.removeprefix("EXPERIMENT ")
    trials = Store(str(tmp_path / "store")).trials("toy")
    assert len(trials) == 2 and set(trials["status"]) == {"failed"}, out[-3000:]
    for error in trials["error"]:
        assert "PlatformError" in error and "finds no usable CUDA device" in error and "driver" in error
    # it never trained on the CPU while holding the GPU share: no trial reported a single step
    assert ray_results(experiment) == {}
    study = saved_study(experiment)
    assert [(t.state.name, t.values) for t in study.trials] == [("FAIL", None), ("FAIL", None)]


@pytest.mark.slow
def test_a_sweep_waiting_for_resources_says_so_once(tmp_path):
    log = tmp_path / "driver.log"
    # two CPUs in the cluster, three asked per trial: the trial waits for a node that never comes
    proc = gpu_sweep(tmp_path, log, samples=1, cpus_per_trial=3, wait_warning_s=2)
    deadline = time.monotonic() + 240
    while "waited" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(3)  # more Tune steps past the threshold: the warning must not repeat
    proc.send_signal(signal.SIGINT)  # Tune stops the experiment and the driver exits
    out = finish(proc, log, timeout=120)
    warnings = [l for l in out.splitlines() if "have waited" in l]
    assert len(warnings) == 1, out[-3000:]
    assert "each asks 3 CPU and 0 GPU" in warnings[0] and "'CPU': 2.0" in warnings[0]
    assert "iam:PassRole" in warnings[0] and "cluster/README.md" in warnings[0]
