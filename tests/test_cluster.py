"""A real two-node Ray cluster (each node in its own network namespace): jobs, dashboard, node failure.

The cluster is started with ``ray start`` (head + one worker, one CPU each, token authentication on) by
:mod:`tests.cluster_harness`; the smoke sweep is submitted as a Ray job exactly as a user would
(``ray job submit --working-dir . -- python sweeps/shallow_cnn.py --smoke ...``).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from audiostyle.sweep._monitor import job_metadata, submission_id
from audiostyle.store import Store
from tests.cluster_harness import REPO, Cluster, netns_skip_reason

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(netns_skip_reason() is not None, reason=netns_skip_reason() or ""),
]

METHOD = "shallow_cnn"
SWEEP = REPO / "sweeps" / f"{METHOD}.py"
JOB_TIMEOUT_S = 480  # a smoke sweep takes about 1 min alone; 4 min was seen under a load of 15 on 2 cores
# Fast failure detection, so a killed node is noticed in seconds rather than half a minute.
FAST_HEALTH_CHECKS = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
# shallow_cnn's best-known points lack `init`, which Optuna's warm start rejects while `init` is searched
# (sweep engine, 2026-11-21): fixing it keeps the smoke sweep running. Drop once seed points are complete.
WORKAROUND = ("--set", "init=content")


@pytest.fixture(scope="module")
def cluster():
    """Head and one worker, one CPU each, so two concurrent trials must use both nodes."""
    c = Cluster(workers=1, head_cpus=1, worker_cpus=1, env=FAST_HEALTH_CHECKS)
    try:
        yield c
    finally:
        c.close()


def submit(cluster: Cluster, sweep_id: str, store: Path, *flags: str) -> str:
    """``ray job submit --working-dir .`` of the smoke sweep, named like a user's; returns the submission id."""
    assert SWEEP.exists(), f"{SWEEP} is missing: the cluster tests submit the shallow_cnn smoke sweep"
    job = submission_id(METHOD, sweep_id)
    cluster.ray(
        cluster.head, "job", "submit", "--address", "http://127.0.0.1:8265", "--working-dir", ".",
        "--submission-id", job, "--metadata-json", json.dumps(job_metadata(METHOD, sweep_id)), "--no-wait",
        "--", "python", f"sweeps/{METHOD}.py", "--smoke", "--store", str(store), "--name", sweep_id, *flags,
    )
    return job


def watch(cluster: Cluster, job: str, on_poll=None, timeout: float = JOB_TIMEOUT_S) -> dict:
    """Poll the dashboard's Jobs API until the job ends; ``on_poll(job_info)`` runs at every poll."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, info = cluster.http(f"/api/jobs/{job}")
        assert status == 200, info
        if on_poll is not None:
            on_poll(info)
        if info["status"] in TERMINAL:
            return info
        time.sleep(1)
    logs = cluster.ray(cluster.head, "job", "logs", "--address", "http://127.0.0.1:8265", job, check=False)
    pytest.fail(f"job {job} still {info['status']} after {timeout} s:\n{logs.stdout[-3000:]}")


def job_logs(cluster: Cluster, job: str) -> str:
    status, payload = cluster.http(f"/api/jobs/{job}/logs")
    return payload.get("logs", "") if status == 200 and isinstance(payload, dict) else str(payload)


def trial_nodes(cluster: Cluster) -> set[str]:
    """Node ids of the sweep's trial actors (Tune's function trainables, alive or dead), from the state API."""
    return {a["node_id"] for a in cluster.actors() if a["class_name"] == "ImplicitFunc" and a.get("node_id")}


def stored_trials(store: Path, sweep_id: str):
    """The store's trial rows of one sweep and the trial files behind them."""
    files = sorted((store / "trials" / f"method={METHOD}" / f"sweep={sweep_id}").glob("*.parquet"))
    return Store(str(store)).trials(METHOD, sweep_id), files


def manifest(store: Path, sweep_id: str) -> dict:
    """The sweep's manifest (its args, and where Ray Tune kept its experiment state)."""
    (found,) = [m for m in Store(str(store)).sweeps(METHOD) if m.get("sweep_id") == sweep_id]
    return found


def planned_trials(store: Path, sweep_id: str) -> int:
    """How many trials the sweep's manifest says it ran (``--samples``, the smoke budget)."""
    return int(manifest(store, sweep_id)["args"]["samples"])


def test_cluster_is_private_and_token_protected(cluster):
    nodes = cluster.wait_nodes(2)
    assert sorted(n["node_ip"] for n in nodes) == sorted([cluster.head_ip, *cluster.worker_ips])
    # The namespaces hold no address but their own loopback and the test's private 10.x links: nothing
    # any Ray process binds is reachable from the machine's network.
    for ns in cluster.namespaces:
        addrs = re.findall(r"inet (\S+)/", ns.run(["ip", "-4", "-o", "addr"], cluster.env).stdout)
        assert addrs and all(a.startswith("127.") or a.startswith(Cluster.subnet + ".") for a in addrs), addrs
    assert any(":8265" in s and "127.0.0.1" in s for s in cluster.listening()), "dashboard bound to loopback"
    assert cluster.http("/api/jobs/", token=None)[0] == 401
    assert cluster.http("/api/jobs/", token="0" * 64)[0] == 403
    assert cluster.http("/api/jobs/")[0] == 200


def test_smoke_sweep_job_runs_on_both_nodes_and_is_reported(cluster, tmp_path):
    sweep_id = "clusterjob"
    store = tmp_path / "store"
    job = submit(cluster, sweep_id, store, *WORKAROUND)
    exported: list[str] = []
    seen_on: set[str] = set()

    def poll(info: dict) -> None:
        if info["status"] == "RUNNING":
            page = cluster.metrics()
            exported.extend(line for line in page.splitlines() if f'sweep_id="{sweep_id}"' in line)
            # While the job runs: the GCS may drop a finished job's dead actors from the state API.
            seen_on.update(trial_nodes(cluster))

    info = watch(cluster, job, poll)
    assert info["status"] == "SUCCEEDED", job_logs(cluster, job)[-3000:]
    # The dashboard's Jobs API names the sweep.
    assert info["metadata"] == job_metadata(METHOD, sweep_id)
    assert info["entrypoint"].startswith(f"python sweeps/{METHOD}.py --smoke")
    status, jobs = cluster.http("/api/jobs/")
    assert status == 200 and job in {j.get("submission_id") for j in jobs}
    # Trials ran on both nodes.
    node_ids = {n["node_id"] for n in cluster.wait_nodes(2)}
    assert seen_on | trial_nodes(cluster) == node_ids
    # Every trial is in the store once.
    trials, files = stored_trials(store, sweep_id)
    n = planned_trials(store, sweep_id)
    assert len(trials) == len(files) == trials["trial_id"].nunique() == n
    assert set(trials["status"]) <= {"finished", "stopped"}
    # The sweep published its Ray metrics from the driver on the head.
    names = {line.split("{")[0] for line in exported}
    assert {"ray_audiostyle_trials_running", "ray_audiostyle_steps_total"} <= names, sorted(names)


@pytest.mark.parametrize("failure", ["killed", "cut_off"])
def test_worker_lost_mid_sweep_loses_no_trial(cluster, tmp_path, failure):
    """The worker dies (SIGKILL to all its processes) or vanishes (network cut, processes frozen)."""
    sweep_id = f"cluster{failure.replace('_', '')}"
    store = tmp_path / "store"
    alive = {n["node_ip"]: n["node_id"] for n in cluster.nodes() if n["state"] == "ALIVE"}
    if cluster.worker_ips[0] not in alive:  # a previous case took it down
        cluster.restart_worker()
        alive = {n["node_ip"]: n["node_id"] for n in cluster.wait_nodes(2)}
    worker_id = alive[cluster.worker_ips[0]]
    lose = cluster.kill_worker if failure == "killed" else cluster.cut_worker
    job = submit(cluster, sweep_id, store, *WORKAROUND)
    killed: list[int] = []

    def poll(info: dict) -> None:
        # Kill the worker while one of its trials is training (Tune's `train` call on the trial actor runs).
        if not killed and info["status"] == "RUNNING" and any(
            t["name"].endswith(".train") and t.get("node_id") == worker_id for t in cluster.running_tasks()
        ):
            killed.append(lose())

    info = watch(cluster, job, poll)
    assert killed and killed[0] > 0, "no trial ever ran on the worker node"
    state = {n["node_id"]: n["state"] for n in cluster.nodes()}
    assert state[worker_id] == "DEAD"
    assert info["status"] == "SUCCEEDED", job_logs(cluster, job)[-3000:]
    trials, files = stored_trials(store, sweep_id)
    n = planned_trials(store, sweep_id)
    assert len(trials) == len(files) == trials["trial_id"].nunique() == n
    assert not (trials["status"] == "failed").any(), trials[["trial_id", "status", "error"]]
    # Tune recorded the trial(s) the dead node interrupted (error.txt) and re-ran them from a checkpoint:
    # each is in the store once, with valid metrics.
    errors = list((store / manifest(store, sweep_id)["experiment_path"]).glob("*/error.txt"))  # relative to the store
    assert errors, "the node died between trials: no trial was interrupted"
    interrupted = {p.parent.name for p in errors}
    rows = trials[trials["trial_id"].map(lambda t: any(name.endswith(str(t)) for name in interrupted))]
    assert len(rows) == len(interrupted) and rows["status"].isin(["finished", "stopped"]).all()
    assert rows["metric.transfer_score"].notna().all()
