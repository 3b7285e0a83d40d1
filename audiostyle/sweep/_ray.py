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

    if address not in (None, "local", "auto"):
        check_reachable(address)
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


REACH_TIMEOUT_S = 10.0
"""How long :func:`check_reachable` waits for a Ray head's port to answer."""


def check_reachable(address: str) -> None:
    """Refuse a ``host:port`` Ray address nothing listens on (``ray.init`` would retry it for ever); ``auto``,
    ``ray://`` client addresses and anything without a port are left to Ray."""
    import socket

    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except (OSError, OverflowError) as exc:
        raise AudiostyleError(
            f"--address {address}: no Ray head answers there ({getattr(exc, 'strerror', None) or exc}). Start the "
            "cluster (ray start --head), pass its GCS address (host:6379), or --address local for a local Ray."
        ) from None


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

    Raises :class:`AudiostyleError` when trials ask for a GPU that a local Ray does not have, or more CPUs than
    the local Ray this sweep started has (it never grows: they would wait for ever). A Ray the caller started
    (``"existing"``) may be given more resources, so trials asking for more CPUs wait for them (:mod:`._wait`).
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
    if mode == "local" and cpus_per_trial > resources.get("CPU", 0) * (1 + SHARE_TOLERANCE):
        raise AudiostyleError(
            f"cpus_per_trial={cpus_per_trial} but this Ray ({mode}) has {resources.get('CPU', 0):g} CPUs: no trial "
            f"could ever start. Pass --cpus-per-trial {resources.get('CPU', 0):g} or less, or submit to a cluster."
        )
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
