"""A sweep on a local Ray of the benchmark's own, started patiently: what ``bench_quality`` and
``bench_generators`` run their sweeps with."""

from __future__ import annotations

import sys
import time

from audiostyle import analysis, sweep

RAY_START_WAIT_S = 90.0
"""How long a local Ray's node may take to register (Ray waits 30 s, a constant in ``ray._private.node``)."""
RAY_STARTS = 3
"""Attempts at starting a local Ray (:func:`local_sweep`)."""


def patient_ray() -> None:
    """Give Ray's node start-up :data:`RAY_START_WAIT_S` instead of its fixed 30 s: on a 2-core machine under
    load its Python agents start slower than that and ``ray.init`` fails with "The current node timed out during
    startup". Ray polls ``services.get_node`` until the deadline; this one retries inside the call until the
    longer one. (The raylet itself also aborts when its dashboard agent has not written its port file within
    about 15 s, "Timed out waiting for file .../metrics_agent_port" in ``raylet.out``; that deadline is not
    configurable here (``RAY_raylet_start_wait_time_s`` did not move it), hence :func:`local_sweep`'s retries.)"""
    from ray._private import services

    if getattr(services.get_node, "patient", False):
        return
    plain = services.get_node

    def get_node(*a, **kw):
        deadline = time.monotonic() + RAY_START_WAIT_S
        while True:
            try:
                return plain(*a, **kw)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    get_node.patient = True
    services.get_node = get_node


def local_sweep(name: str, **settings):
    """``sweep.run`` on a local Ray of its own (``address="local"``: never a cluster another process started on
    this machine), with a patient start-up (:func:`patient_ray`), started again up to :data:`RAY_STARTS` times
    when Ray's node still fails to come up (under load 10-19 it did in five of seven starts)."""
    import ray

    patient_ray()
    for attempt in range(1, RAY_STARTS + 1):
        try:
            return sweep.run(name, address="local", dashboard=False, verbose=0, **settings)
        except Exception as exc:  # Ray raises a bare Exception for it
            if "timed out during startup" not in str(exc) or attempt == RAY_STARTS:
                raise
            print(f"{name}: Ray's node did not start (attempt {attempt} of {RAY_STARTS}); starting it again",
                  file=sys.stderr)
            ray.shutdown()
            time.sleep(10)


def searched_values(trial, method: str, space) -> dict:
    """The values ``trial`` (a store row) took for the parameters of ``space`` (the plan's searched space)."""
    return {k: v for k, v in analysis.config_of(trial, method).items() if k in space}


def preset_and_winner(result, method: str):
    """A preset sweep's finished trials, the one that ran the plan's first point (the preset with the reports'
    config), the winner's searched values and that first point: ``(trials, preset_trial, chosen, first)``.
    Exits with a message when no trial finished or none ran the first point."""
    trials = result.trials[result.trials["status"] == "finished"] if "status" in result.trials else result.trials
    if result.best is None or trials.empty:
        raise SystemExit(f"{method}: the sweep finished no trial")
    space, first = result.plan.space, (result.plan.points[0] if result.plan.points else None)
    searched = [searched_values(t, method, space) for _, t in trials.iterrows()]
    at_preset = [i for i, c in enumerate(searched) if first is not None and c == first]
    if not at_preset:
        raise SystemExit(f"{method}: no finished trial ran the preset's config {first}")
    chosen = searched_values(result.best, method, space)
    return trials, trials.iloc[at_preset[0]], chosen, first
