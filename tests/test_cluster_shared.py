"""A local --store on a real two-node cluster (each node in its own network namespace): refused up front when
the worker node does not see it, accepted when it does; on a cluster whose only node runs no trials (an
autoscaler's head before its first worker), refused unless it is on a network filesystem.

The driver runs in the head's namespace in a mount namespace of its own, with a tmpfs over one folder: that
folder is the driver's alone (as a head's local disk is on a real cluster), while the rest of /tmp is shared by
both nodes (as a shared mount would be).
"""

from __future__ import annotations

import textwrap

import pytest

from tests.cluster_harness import VENV_BIN, Cluster, netns_skip_reason

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(netns_skip_reason() is not None, reason=netns_skip_reason() or ""),
]

DRIVER = textwrap.dedent(
    """
    import sys
    from audiostyle import sweep
    from audiostyle.errors import AudiostyleError
    from audiostyle.sweep._ray import connect
    from audiostyle.sweep._shared import check_shared

    private, shared = sys.argv[1:3]
    try:  # the whole sweep, as a user starts it: refused before any data is prepared or any trial runs
        sweep.run("shallow_cnn", store=private, smoke=True, samples=1, dashboard=False, verbose=0)
        print("RAN")
    except AudiostyleError as exc:
        print("REFUSED " + str(exc))
    check_shared([("--store", shared)], connect(None))
    print("ACCEPTED " + shared)
    """
)


def test_a_store_the_worker_node_does_not_see_is_refused_and_a_shared_one_accepted(tmp_path):
    script, private, shared = tmp_path / "driver.py", tmp_path / "private", tmp_path / "shared"
    script.write_text(DRIVER)
    private.mkdir()
    python = VENV_BIN / "python"
    command = f"mount -t tmpfs tmpfs {private} && exec {python} {script} {private}/store {shared}/store"
    with Cluster(workers=1, head_cpus=1, worker_cpus=1) as cluster:
        out = cluster.head.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", command],
                               cluster.driver_env(), timeout=300)
    lines = out.stdout.splitlines()
    (refused,) = [line for line in lines if line.startswith("REFUSED ")]
    assert f"--store {private}/store is a folder on this machine's disk" in refused, out.stdout[-3000:]
    assert f"node(s) {cluster.worker_ips[0]}" in refused and "s3://" in refused
    assert f"ACCEPTED {shared}/store" in lines, out.stdout[-3000:] + out.stderr[-3000:]
    assert "RAN" not in lines


AUTOSCALING_DRIVER = textwrap.dedent(
    """
    import sys
    from audiostyle.errors import AudiostyleError
    from audiostyle.sweep._ray import connect
    from audiostyle.sweep._shared import check_shared

    mode = connect(None)
    check_shared([("--store", "s3://bucket/audiostyle")], mode)
    print("ACCEPTED s3")
    try:
        check_shared([("--store", sys.argv[1])], mode)
        print("ACCEPTED local")
    except AudiostyleError as exc:
        print("REFUSED " + str(exc))
    """
)


def test_a_local_store_is_refused_while_no_node_runs_trials(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(AUTOSCALING_DRIVER)
    with Cluster(workers=0, head_cpus=0) as cluster:  # the head of cluster/gpu.yaml: no CPU, workers to come
        out = cluster.run_driver(script, str(tmp_path / "store"), timeout=120)
    lines = out.stdout.splitlines()
    assert "ACCEPTED s3" in lines, out.stdout[-3000:] + out.stderr[-3000:]
    (refused,) = [line for line in lines if line.startswith("REFUSED ")]
    assert "no node of this cluster runs trials yet" in refused and "s3://" in refused
