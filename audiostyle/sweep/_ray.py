"""The Ray connection: join a cluster or start a local Ray, Ray's storage, and what the cluster holds."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from audiostyle.errors import AudiostyleError

log = logging.getLogger(__name__)


def connect(address: str | None = None, *, num_cpus: int | None = None, dashboard: bool = True,
            runtime_env: dict[str, Any] | None = None) -> str:
    """Join a Ray cluster or start a local one; returns ``"existing"``, ``"cluster"`` or ``"local"``.

    Parameters
    ----------
    address : str, optional
        ``None``: ``RAY_ADDRESS`` when set, else the cluster ``ray start`` runs on this machine (as under
        ``ray submit``), else a new local Ray. ``"auto"``: a running cluster or an error. ``"local"``:
        always a new local Ray. Anything else: that cluster's address.
    num_cpus : int, optional
        CPUs of a new local Ray (default: the machine's).
    dashboard : bool
        Start the dashboard of a new local Ray (on 127.0.0.1).
    runtime_env : dict, optional
        The job's runtime environment (e.g. the workers' logging level, :mod:`audiostyle.sweep._console`).
    """
    import ray
    from ray._private.services import canonicalize_bootstrap_address

    if ray.is_initialized():
        return "existing"
    found = None if address == "local" else canonicalize_bootstrap_address(address)
    if found is not None or address not in (None, "local"):
        ray.init(address=found or address, logging_level=logging.WARNING, runtime_env=runtime_env or None)
        log.info("connected to the Ray cluster at %s", found or address)
        return "cluster"
    ray.init(
        address="local",
        runtime_env=runtime_env or None,
        num_cpus=num_cpus or os.cpu_count(),
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        logging_level=logging.WARNING,
    )
    log.info("started a local Ray with %s CPUs (dashboard %s)", num_cpus or os.cpu_count(), "on" if dashboard else "off")
    return "local"


def default_storage(store: str) -> str:
    """Where Ray keeps a sweep's checkpoints and experiment state unless told: ``<store>/_ray``."""
    return f"{store.rstrip('/')}/_ray"


def storage(path: str) -> tuple[str, Any]:
    """Ray's ``storage_path`` and ``storage_filesystem`` for a storage location.

    A local path is made absolute (no filesystem). An ``s3://`` location becomes ``bucket/prefix`` on
    s3fs (wrapped for pyarrow), the same client the store uses: endpoint from ``AWS_ENDPOINT_URL``,
    credentials from the usual AWS settings. (pyarrow's own S3 client failed multipart uploads against
    moto's server here.)
    """
    if not path.startswith("s3://"):
        return str(Path(path).expanduser().absolute()), None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    from audiostyle import fsio

    fs, inner = fsio.filesystem(path)
    return inner, PyFileSystem(FSSpecHandler(fs))


def experiment_path(path: str, sweep_id: str) -> str:
    """The sweep's Ray experiment folder (a URL when ``path`` is on S3)."""
    return f"{path.rstrip('/')}/{sweep_id}"


def fit_concurrency(samples: int, cpus_per_trial: float, gpus_per_trial: float, mode: str) -> int:
    """Trials at once that the connected cluster holds now (all ``samples`` while an autoscaler grows it).

    Raises :class:`AudiostyleError` when trials ask for a GPU that a local Ray does not have.
    """
    import ray

    resources = ray.cluster_resources()
    if gpus_per_trial and not resources.get("GPU"):
        if mode != "cluster":
            raise AudiostyleError(
                f"gpus_per_trial={gpus_per_trial} but this Ray ({mode}) has no GPU: pass --gpus-per-trial 0, "
                "or submit to a GPU cluster (ray submit cluster/gpu.yaml sweeps/<method>.py -- ...)."
            )
        log.warning("no GPU in the Ray cluster yet: trials wait until the autoscaler adds GPU nodes")
    by_cpu = trials_fitting(resources["CPU"], cpus_per_trial) if cpus_per_trial and resources.get("CPU") else samples
    by_gpu = trials_fitting(resources["GPU"], gpus_per_trial) if gpus_per_trial and resources.get("GPU") else samples
    return max(1, min(by_cpu, by_gpu, samples))


SHARE_TOLERANCE = 1e-9
"""Relative slack when dividing resources by a share: ``1 / 0.1`` is 9.999… in floating point, yet ten trials fit."""


def trials_fitting(total: float, share: float) -> int:
    """How many trials asking ``share > 0`` of a resource fit in ``total`` of it.

    ``trials_fitting(1, 0.1) == 10`` although ``1 // 0.1 == 9.0``.
    """
    return math.floor(total / share * (1 + SHARE_TOLERANCE))
