"""On a cluster, refuse a local ``--store``/``--storage`` that the nodes running trials cannot see.

Trials write their artifacts to the store, and Ray persists their checkpoints to ``storage``, from the node
each trial runs on. A path on the driver's own disk is a different, empty folder on every other node: Ray
refuses to persist the first checkpoint a worker saves, the trial is retried and fails, and artifacts land on
the workers' own disks. :func:`check_shared` tells before the sweep starts, by evidence: it writes a marker
file under each local path and asks every node that can run a trial whether it sees it. A cluster whose only
node runs no trials (an autoscaler's head, before any worker exists) cannot be asked: a local path is then
accepted only on a network filesystem (:data:`NETWORK_FILESYSTEMS`).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Iterable

from audiostyle import fsio
from audiostyle.errors import AudiostyleError

PROBE_TIMEOUT_S = 120.0
"""How long the nodes may take to answer whether they see the marker (a node starts a worker process first)."""

NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "lustre", "ceph", "glusterfs", "gpfs", "beegfs",
                                 "9p", "virtiofs", "efs"})
"""Filesystem types (``/proc/mounts``) every node of a cluster can mount; ``fuse.*`` (s3fs, gcsfuse, …) too."""


def _sees(path: str) -> bool:
    """Run on a node: whether ``path`` exists there."""
    return os.path.exists(path)


def filesystem_type(path: str, mounts: str) -> str:
    """The type of the filesystem holding ``path``, from the text of ``/proc/mounts`` (``""`` when none matches)."""
    target = os.path.realpath(path)
    best, kind = "", ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def on_network_filesystem(path: str, mounts: str) -> bool:
    """Whether ``path`` lies on a filesystem other machines can mount (:data:`NETWORK_FILESYSTEMS`, ``fuse.*``)."""
    kind = filesystem_type(path, mounts)
    return kind in NETWORK_FILESYSTEMS or kind.startswith("fuse.")


def _refusal(flag: str, path: str, where: str) -> AudiostyleError:
    return AudiostyleError(
        f"{flag} {path} is a folder on this machine's disk, but {where}: Ray would refuse the first checkpoint "
        "a worker saves (the trial is retried, then fails) and artifacts would land on the workers' own disks. "
        f"Use {flag} s3://YOUR-BUCKET/prefix, or a path on a filesystem every node mounts (NFS, EFS, Lustre)."
    )


def _trial_nodes() -> list[dict[str, Any]]:
    """The alive nodes that can run a trial: those with CPUs (the heads of cluster/ advertise none)."""
    import ray

    return [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]


def _blind_nodes(folder: Path, nodes: list[dict[str, Any]]) -> list[str]:
    """Addresses of the ``nodes`` that do not see a marker file written under ``folder`` here."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f".audiostyle-shared-{uuid.uuid4().hex}"
    marker.write_text("written by the sweep driver to see which nodes share this folder\n")
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(_sees)
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(str(marker))
                for n in nodes]
        seen = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError as exc:
        raise AudiostyleError(
            f"the cluster's nodes did not say within {PROBE_TIMEOUT_S:.0f} s whether they see {folder}: check them "
            "with `ray status`, or use an s3:// store and storage (they need no such check)."
        ) from exc
    finally:
        marker.unlink(missing_ok=True)
    return [n["NodeManagerAddress"] for n, ok in zip(nodes, seen) if not ok]


def check_shared(paths: Iterable[tuple[str, str]], mode: str, mounts_file: str = "/proc/mounts") -> None:
    """Raise :class:`AudiostyleError` for a local path of ``paths`` (``(flag, path)`` pairs, e.g.
    ``("--store", "results")``) that the nodes running trials would not share; nothing for a local Ray
    (``mode == "local"``) or ``s3://`` paths."""
    local = [(flag, path) for flag, path in paths if not fsio.is_remote(path)]
    if mode == "local" or not local:
        return
    nodes = _trial_nodes()
    if not nodes:
        mounts = Path(mounts_file).read_text() if Path(mounts_file).exists() else ""
        for flag, path in local:
            if not on_network_filesystem(path, mounts):
                raise _refusal(flag, path, "no node of this cluster runs trials yet: they will run on workers the "
                               "autoscaler adds, which do not see it")
        return
    import ray

    here = ray.get_runtime_context().get_node_id()
    others = [n for n in nodes if n["NodeID"] != here]  # the driver's own node shares its disk
    for flag, path in local if others else ():
        blind = _blind_nodes(Path(path).expanduser().absolute(), others)
        if blind:
            raise _refusal(flag, path, f"the trials run on node(s) {', '.join(blind)}, which do not see it")
