"""gpu.yaml's worker types scale up from zero and back down, on Ray's fake multi-node provider.

The autoscaler that `ray up` would run on the head is started for real (``RAY_FAKE_CLUSTER=1 ray start
--head --autoscaling-config=…``) with gpu.yaml's node types; only the cloud is replaced: the provider
starts each "instance" as a local raylet advertising that type's CPUs and GPUs. Runs in a network
namespace of its own, like the other cluster tests.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tests.cluster_harness import REPO, Cluster, netns_skip_reason

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(netns_skip_reason() is not None, reason=netns_skip_reason() or ""),
]

IDLE_MINUTES = 0.1  # 6 s: scale-down is quick enough for a test


def fake_config(path: Path) -> dict:
    """gpu.yaml's node types (resources, min/max workers) under the fake provider."""
    gpu = yaml.safe_load((REPO / "cluster" / "gpu.yaml").read_text())
    types = {
        "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
        **{
            name: {"resources": spec["resources"], "node_config": {}, "min_workers": spec["min_workers"],
                   "max_workers": min(spec["max_workers"], 1)}
            for name, spec in gpu["available_node_types"].items() if name != gpu["head_node_type"]
        },
    }
    config = {
        "cluster_name": "audiostyle-fake",
        "max_workers": 2,
        "upscaling_speed": gpu["upscaling_speed"],
        "idle_timeout_minutes": IDLE_MINUTES,
        "provider": {"type": "fake_multinode"},
        "available_node_types": types,
        "head_node_type": "ray.head.default",
        "auth": {"ssh_user": "ubuntu"},
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [], "initialization_commands": [], "setup_commands": [],
        "head_setup_commands": [], "worker_setup_commands": [], "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }
    path.write_text(yaml.safe_dump(config))
    return config


DRIVER = textwrap.dedent(
    """
    import json, ray
    ray.init(logging_level="ERROR")  # RAY_ADDRESS: the test cluster

    @ray.remote(num_cpus=1)
    def where():
        ctx = ray.get_runtime_context()
        return {"node": ctx.get_node_id(), "gpus": ctx.get_accelerator_ids().get("GPU", [])}

    # One trial asking for one GPU, one asking for four: each needs a different worker type.
    refs = [where.options(num_gpus=1).remote(), where.options(num_gpus=4).remote()]
    print("RESULT " + json.dumps(ray.get(refs, timeout=150)))
    """
)


def gpu_nodes(cluster: Cluster) -> dict[str, float]:
    return {n["node_id"]: n["resources_total"].get("GPU", 0.0) for n in cluster.nodes()
            if n["state"] == "ALIVE" and n["resources_total"].get("GPU")}


def test_gpu_worker_types_scale_from_zero_and_back(tmp_path):
    config = tmp_path / "fake.yaml"
    types = fake_config(config)["available_node_types"]
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    with Cluster(workers=0, head_cpus=0, env={"RAY_FAKE_CLUSTER": "1"},
                 head_args=[f"--autoscaling-config={config}"]) as cluster:
        assert gpu_nodes(cluster) == {}, "nothing but the head before any work"
        out = cluster.run_driver(script, timeout=200)
        (line,) = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        placed = json.loads(line.removeprefix("RESULT "))
        # The two pending demands launch one worker of each GPU type. Which worker serves the 1-GPU task is Ray's
        # choice: when the 4-GPU worker registers first it may run both tasks, one after the other, while the
        # 1-GPU worker is still starting; so the workers are collected as they come up.
        expected = sorted(t["resources"]["GPU"] for t in types.values() if t["resources"].get("GPU"))
        up: dict[str, float] = {}
        deadline = time.monotonic() + 60
        while sorted(up.values()) != expected and time.monotonic() < deadline:
            up.update(gpu_nodes(cluster))
            time.sleep(1)
        assert sorted(up.values()) == expected, f"GPU workers launched: {up}"
        assert [len(p["gpus"]) for p in placed] == [1, 4]
        assert all(p["node"] in up and up[p["node"]] >= len(p["gpus"]) for p in placed)
        deadline = time.monotonic() + 90
        while gpu_nodes(cluster) and time.monotonic() < deadline:
            time.sleep(2)
        assert gpu_nodes(cluster) == {}, "idle GPU workers were not removed"
