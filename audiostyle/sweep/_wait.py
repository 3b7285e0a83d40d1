"""Say so when trials have waited long for resources, instead of a sweep that waits silently.

A trial stays PENDING while no node has the CPUs and GPUs it asks for free. Where some node has them in all, the
trial waits its turn behind the trials running there (more trials than the cluster holds at once), and that says
nothing. Where no node of the cluster as it stands has them: on an autoscaling cluster that is normal for a minute
or two while a worker boots; much longer means the autoscaler cannot launch one (on AWS most often a head role
without ``iam:PassRole`` on the workers' role, see ``cluster/README.md``), or the trials ask for more than any node
type has.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ray
from ray import tune

log = logging.getLogger(__name__)

RESOURCE_WAIT_WARN_S = 60.0
"""A trial pending this long (seconds) for resources no node has makes the sweep warn, once."""


class ResourceWaitCallback(tune.Callback):
    """Warn once when a trial has been PENDING for more than ``warn_after_s`` seconds and no node has what it asks.

    Parameters
    ----------
    cpus_per_trial, gpus_per_trial : float
        What each trial asks for (named in the warning).
    warn_after_s : float
        Seconds a trial may wait before the warning (:data:`RESOURCE_WAIT_WARN_S`).
    """

    def __init__(self, cpus_per_trial: float, gpus_per_trial: float, warn_after_s: float = RESOURCE_WAIT_WARN_S) -> None:
        self.cpus, self.gpus = cpus_per_trial, gpus_per_trial
        self.asked = f"{cpus_per_trial:g} CPU and {gpus_per_trial:g} GPU"
        self.warn_after_s = warn_after_s
        self.pending_since: dict[str, float] = {}
        self.warned = False

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if self.warned:
            return
        now = time.monotonic()
        pending = {t.trial_id for t in trials if t.status == "PENDING"}
        self.pending_since = {k: self.pending_since.get(k, now) for k in pending}
        waited = max((now - since for since in self.pending_since.values()), default=0.0)
        if waited <= self.warn_after_s:
            return
        if fits_a_node(self.cpus, self.gpus):  # queued behind running trials: look again after another wait
            self.pending_since = dict.fromkeys(pending, now)
            return
        self.warned = True
        log.warning(waiting_message(len(pending), waited, self.asked))


def fits_a_node(cpus: float, gpus: float) -> bool:
    """Whether some live node of the cluster has ``cpus`` CPUs and ``gpus`` GPUs in all (free or not)."""
    return any(node["Alive"] and node["Resources"].get("CPU", 0) >= cpus and node["Resources"].get("GPU", 0) >= gpus
               for node in ray.nodes())


def waiting_message(pending: int, waited_s: float, asked: str) -> str:
    """The warning: how many trials wait, for how long, for what, what the cluster has, and where to look."""
    have = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
    return (
        f"{pending} trial(s) have waited {waited_s:.0f} s for resources (each asks {asked}; the cluster has "
        f"{have or 'nothing'}). On an autoscaling cluster the autoscaler is not adding a node that fits: see its log "
        "(ray exec cluster/gpu.yaml 'tail -n 100 /tmp/ray/session_latest/logs/monitor.*'); on AWS the head's role "
        "must be allowed iam:PassRole on the workers' role (policy in cluster/README.md). Otherwise ask for less "
        "(--gpus-per-trial, --cpus-per-trial)."
    )
