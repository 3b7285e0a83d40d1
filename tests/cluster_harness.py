"""A real multi-node Ray cluster on one machine, each node in its own network namespace.

Every Ray node runs in a network namespace this harness creates (``ip netns add``), joined to the head's
namespace by a veth pair with private 10.x addresses that exist only inside those namespaces. Ray's ports
therefore never appear on the machine's own interfaces: nothing outside the test can reach them, and the
test reaches them only from inside the head's namespace (``ip netns exec``), on 127.0.0.1 or the veth.
Cutting a node off the network is ``ip link set … down``; killing it is SIGKILL to its namespace's processes.

Token authentication stays on: every node and client gets ``RAY_AUTH_MODE=token`` and a token file in
the cluster's own temporary HOME. Each node has its own ``--temp-dir`` (short, under /tmp, because Ray's
unix socket paths must stay under 108 characters).

Everything is torn down by :meth:`Cluster.close` (processes killed by namespace, namespaces deleted, temp
dirs removed); use it as a context manager or from a fixture finaliser.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DASHBOARD_PORT = 8265
GCS_PORT = 6379
METRICS_PORT = 8080
_counter = itertools.count()


def netns_skip_reason() -> str | None:
    """Why namespaced clusters cannot run here (not root, no ``ip``), or ``None`` when they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (ip netns)"
    if shutil.which("ip") is None:
        return "needs the `ip` command (iproute2) to create network namespaces"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


class NetNS:
    """One network namespace with its loopback up.

    Parameters
    ----------
    name
        Namespace name (unique on the machine; at most 14 characters keeps veth names valid).
    create
        Create it (else wrap an existing one, e.g. to delete it).
    """

    def __init__(self, name: str, create: bool = True) -> None:
        self.name = name
        if create:
            _ip("netns", "add", name)
            _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed to run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: Sequence[str], env: Mapping[str, str], timeout: float = 120, check: bool = True,
            cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
        """Run ``argv`` inside the namespace and wait for it; output captured as text."""
        proc = subprocess.run(self.command(argv), env=dict(env), capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}) in {self.name}:\n"
                               f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    def pids(self) -> list[int]:
        """Ids of every process whose network namespace is this one."""
        out = _ip("netns", "pids", self.name, check=False).stdout
        return [int(p) for p in out.split()]

    def kill_all(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to every process in the namespace; returns how many there were."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return len(pids)

    def delete(self) -> None:
        """Kill everything in the namespace (SIGKILL: test nodes need no graceful stop) and delete it."""
        deadline = time.monotonic() + 10
        while self.kill_all(signal.SIGKILL) and time.monotonic() < deadline:
            time.sleep(0.1)
        _ip("netns", "del", self.name, check=False)


_OURS = re.compile(r"^as(\d+)x\d+(h|w\d+)$")


def reap_stale_namespaces() -> list[str]:
    """Delete namespaces (and their processes) left by a test process killed before its clean-up ran.

    Only names this harness gives (``as<pid>x<n>h``, ``as<pid>x<n>w<i>``) whose creating process is gone.
    """
    reaped = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _OURS.match(name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            NetNS(name, create=False).delete()
            reaped.append(name)
    return reaped


class Cluster:
    """A head node and ``workers`` worker nodes, each started with ``ray start`` in its own namespace.

    Parameters
    ----------
    workers
        Number of worker nodes.
    head_cpus, worker_cpus
        ``--num-cpus`` of the head and of each worker.
    env
        Extra environment for every Ray process and client (e.g. ``RAY_health_check_period_ms``).
    head_args
        Extra ``ray start --head`` arguments (e.g. ``--autoscaling-config=…``).

    Attributes
    ----------
    head : NetNS
        The head's namespace; clients (``ray job``, HTTP) run here against 127.0.0.1.
    worker_ns : list[NetNS]
        The workers' namespaces.
    token : str
        The cluster's authentication token (also in ``home/.ray/auth_token``).
    """

    subnet = "10.213.7"

    def __init__(self, workers: int = 1, head_cpus: int = 1, worker_cpus: int = 1,
                 env: Mapping[str, str] | None = None, head_args: Sequence[str] = ()) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="asr", dir="/tmp"))
        self.home = self.root / "home"
        self.token = secrets.token_hex(32)
        token_file = self.home / ".ray" / "auth_token"
        token_file.parent.mkdir(parents=True)
        token_file.write_text(self.token)
        token_file.chmod(0o600)
        self.env = {
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token_file),
            "RAY_USAGE_STATS_ENABLED": "0",
            # Anything Ray starts without an explicit --temp-dir (e.g. the fake autoscaler's nodes) stays here.
            "RAY_TMPDIR": str(self.root / "t"),
            "PYTHONUNBUFFERED": "1",
            # Metrics reach the Prometheus endpoint within a second or so, not the default 10 s.
            "RAY_metrics_report_interval_ms": "1000",
            **(env or {}),
        }
        reap_stale_namespaces()
        tag = f"as{os.getpid()}x{next(_counter)}"
        self.worker_cpus, self._restarts = worker_cpus, 0
        self.namespaces: list[NetNS] = []
        self.head = self.worker_ns = None
        try:
            self.head = self._ns(f"{tag}h")
            self.worker_ns = []
            self.head_ip = f"{self.subnet}.1"
            self.worker_ips = [f"{self.subnet}.{i + 2}" for i in range(workers)]
            self.worker_devs = []
            self._start_head(head_cpus, head_args)
            for i, ip in enumerate(self.worker_ips):
                ns = self._ns(f"{tag}w{i}")
                self.worker_ns.append(ns)
                self.worker_devs.append(self._link_worker(ns, ip))
                self._start_worker(ns, ip, worker_cpus, i)
            self.wait_nodes(1 + workers)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------------------------------ set-up
    def _ns(self, name: str) -> NetNS:
        ns = NetNS(name)
        self.namespaces.append(ns)
        return ns

    def _link_worker(self, ns: NetNS, ip: str) -> str:
        """A veth from the head's namespace to worker namespace ``ns``; returns the worker's device.

        Addresses are /32s with host routes, so every worker reaches the head's one address (which lives
        on the loopback device of the head's namespace) through its own veth.
        """
        dev_head, dev_worker = f"{ns.name}a", f"{ns.name}b"
        # Created inside the head's namespace with its peer moved straight into the worker's: no device
        # ever appears in the machine's own namespace.
        self.head.run(["ip", "link", "add", dev_head, "type", "veth", "peer", "name", dev_worker,
                       "netns", ns.name], self.env)
        self.head.run(["ip", "link", "set", dev_head, "up"], self.env)
        self.head.run(["ip", "route", "add", f"{ip}/32", "dev", dev_head, "src", self.head_ip], self.env)
        ns.run(["ip", "addr", "add", f"{ip}/32", "dev", dev_worker], self.env)
        ns.run(["ip", "link", "set", dev_worker, "up"], self.env)
        ns.run(["ip", "route", "add", f"{self.head_ip}/32", "dev", dev_worker], self.env)
        return dev_worker

    def _start_head(self, cpus: int, extra: Sequence[str]) -> None:
        # The head's address lives on the namespace's own loopback device: it exists before any worker's veth.
        self.head.run(["ip", "addr", "add", f"{self.head_ip}/32", "dev", "lo"], self.env)
        self.head_temp = self.root / "h"
        self.ray(self.head, "start", "--head", f"--node-ip-address={self.head_ip}", f"--port={GCS_PORT}",
                 f"--num-cpus={cpus}", "--num-gpus=0", "--include-dashboard=true",
                 "--dashboard-host=127.0.0.1", f"--dashboard-port={DASHBOARD_PORT}",
                 f"--metrics-export-port={METRICS_PORT}", f"--temp-dir={self.head_temp}",
                 "--disable-usage-stats", *extra)

    def _start_worker(self, ns: NetNS, ip: str, cpus: int, i: int | str) -> None:
        """Start worker node ``i``; its processes get their own ``TMPDIR``, as a machine of its own has its own
        ``/tmp`` (a frozen worker process holding a file lock in a shared one stalled every trial on the head)."""
        tmp = self.root / f"tmp-w{i}"
        tmp.mkdir(parents=True, exist_ok=True)
        ns.run([str(VENV_BIN / "ray"), "start", f"--address={self.head_ip}:{GCS_PORT}", f"--node-ip-address={ip}",
                f"--num-cpus={cpus}", "--num-gpus=0", f"--temp-dir={self.root / f'w{i}'}", "--disable-usage-stats"],
               {**self.env, "TMPDIR": str(tmp)}, timeout=180, check=True, cwd=REPO)

    # ---------------------------------------------------------------------------------------- clients
    def driver_env(self) -> dict[str, str]:
        """Environment for a driver script run in the head's namespace: this cluster's address, the repo."""
        return {**self.env, "RAY_ADDRESS": f"{self.head_ip}:{GCS_PORT}", "PYTHONPATH": str(REPO)}

    def run_driver(self, script: str | os.PathLike, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """Run a Python driver script in the head's namespace against this cluster (``ray.init()``)."""
        return self.head.run([str(VENV_BIN / "python"), str(script), *args], self.driver_env(), timeout=timeout)

    def ray(self, ns: NetNS, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        """Run the ``ray`` CLI inside ``ns`` with the cluster's environment."""
        return ns.run([str(VENV_BIN / "ray"), *args], self.env, timeout=timeout, check=check, cwd=REPO)

    def http(self, path: str, method: str = "GET", body: Any = None, token: str | None = "default",
             timeout: float = 20) -> tuple[int, Any]:
        """Call the dashboard's HTTP API from inside the head's namespace.

        Parameters
        ----------
        path
            URL path, e.g. ``/api/jobs/``.
        token
            Bearer token to send; ``"default"`` sends the cluster's, ``None`` sends none.

        Returns
        -------
        (status, payload)
            HTTP status and the decoded JSON body (or text when it is not JSON).
        """
        argv = ["curl", "-s", "-X", method, "-o", "-", "-w", "\n%{http_code}", "--max-time", str(timeout)]
        if token is not None:
            argv += ["-H", f"Authorization: Bearer {self.token if token == 'default' else token}"]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
        argv.append(f"http://127.0.0.1:{DASHBOARD_PORT}{path}")
        out = self.head.run(argv, self.env, timeout=timeout + 5).stdout
        text, _, code = out.rpartition("\n")
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
        return int(code or 0), payload

    def metrics(self, timeout: float = 20) -> str:
        """The head node's Prometheus metrics page (``ray_*`` lines), fetched inside its namespace."""
        argv = ["curl", "-s", "--max-time", str(timeout), f"http://127.0.0.1:{METRICS_PORT}/metrics"]
        return self.head.run(argv, self.env, timeout=timeout + 5, check=False).stdout

    def nodes(self) -> list[dict]:
        """The state API's node list: ``node_id``, ``node_ip``, ``state`` ("ALIVE"/"DEAD"), …"""
        status, payload = self.http("/api/v0/nodes?limit=100&detail=true")
        if status != 200:
            raise RuntimeError(f"/api/v0/nodes answered {status}: {payload}")
        return payload["data"]["result"]["result"]

    def actors(self) -> list[dict]:
        """The state API's actor list (alive and dead): ``class_name``, ``repr_name``, ``node_id``, ``state``."""
        status, payload = self.http("/api/v0/actors?limit=10000&detail=true")
        if status != 200:
            raise RuntimeError(f"/api/v0/actors answered {status}: {payload}")
        return payload["data"]["result"]["result"]

    def running_tasks(self) -> list[dict]:
        """The state API's RUNNING tasks (actor method calls included): ``name``, ``node_id``, …"""
        query = "filter_keys=state&filter_predicates=%3D&filter_values=RUNNING&limit=10000&detail=true"
        status, payload = self.http(f"/api/v0/tasks?{query}")
        if status != 200:
            raise RuntimeError(f"/api/v0/tasks answered {status}: {payload}")
        return payload["data"]["result"]["result"]

    def wait_nodes(self, n: int, timeout: float = 90) -> list[dict]:
        """Wait until ``n`` nodes are alive; returns them."""
        deadline = time.monotonic() + timeout
        alive: list[dict] = []
        while time.monotonic() < deadline:
            try:
                alive = [x for x in self.nodes() if x["state"] == "ALIVE"]
            except (RuntimeError, KeyError, TypeError):
                alive = []
            if len(alive) >= n:
                return alive
            time.sleep(1)
        raise TimeoutError(f"only {len(alive)} of {n} Ray nodes alive after {timeout} s")

    def kill_worker(self, i: int = 0) -> int:
        """Crash worker node ``i``: SIGKILL to every process in its namespace; returns how many."""
        return self.worker_ns[i].kill_all(signal.SIGKILL)

    def cut_worker(self, i: int = 0) -> int:
        """Make worker node ``i`` vanish without dying: its veth goes down and its processes are frozen
        (SIGSTOP), as a machine that hangs or drops off the network. Returns how many processes."""
        self.worker_ns[i].run(["ip", "link", "set", self.worker_devs[i], "down"], self.env)
        return self.worker_ns[i].kill_all(signal.SIGSTOP)

    def restart_worker(self, i: int = 0) -> None:
        """Replace worker node ``i`` by a fresh Ray node in the same namespace (link up again)."""
        ns = self.worker_ns[i]
        ns.kill_all(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while ns.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        ns.run(["ip", "link", "set", self.worker_devs[i], "up"], self.env)
        ns.run(["ip", "route", "replace", f"{self.head_ip}/32", "dev", self.worker_devs[i]], self.env)
        self._restarts += 1
        self._start_worker(ns, self.worker_ips[i], self.worker_cpus, f"{i}r{self._restarts}")

    def listening(self) -> list[str]:
        """Local addresses of every listening TCP socket of every namespace (``ss -ltn``)."""
        found = []
        for ns in self.namespaces:
            out = ns.run(["ss", "-Hltn"], self.env).stdout
            found += [f"{ns.name} {line.split()[3]}" for line in out.splitlines() if line.strip()]
        return found

    def close(self) -> None:
        """Kill every node, delete every namespace, remove the temp dirs (safe to call twice)."""
        for ns in reversed(self.namespaces):
            ns.delete()
        self.namespaces = []
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def name_trainable(fn: Callable[[dict], Any], method: str, sweep_id: str) -> Callable[[dict], Any]:
    """A copy of a function trainable ``fn(config)`` that Ray shows as the sweep's :func:`trainable_name`.

    Apply it to the finished trainable (after ``tune.with_parameters`` / ``tune.with_resources``):
    attributes those set on the function (e.g. ``_resources``) are carried over. ``fn`` itself is not
    changed, so one function can serve several sweeps in one process.

    Parameters
    ----------
    fn
        A Tune function trainable taking the single argument ``config``.
    method, sweep_id
        The sweep's method name and id.

    Returns
    -------
    Callable[[dict], Any]
        The renamed trainable (Tune registers it under its ``__name__``).
    """

    def named(config: dict) -> Any:
        return fn(config)

    named.__dict__.update(getattr(fn, "__dict__", {}))
    from audiostyle.sweep._monitor import trainable_name

    named.__name__ = named.__qualname__ = trainable_name(method, sweep_id)
    named.__doc__ = getattr(fn, "__doc__", None)
    return named
