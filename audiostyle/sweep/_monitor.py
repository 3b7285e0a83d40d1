"""Make a sweep visible in the Ray dashboard: names for its work and Ray metrics a user can chart.

Names
    :func:`job_metadata` and :func:`submission_id` label the Ray job (``ray job submit --metadata-json``
    / ``--submission-id``, or ``ray.init(job_config=JobConfig(metadata=...))`` in the driver).
    :func:`trainable_name` is the name a sweep's trial actors carry (a Tune trainable of that ``__name__`` is
    what Ray shows as their *repr name*: dashboard → Actors, and the ``(name pid=…)`` prefix of their log
    lines); :func:`trial_name_creator` names the trials themselves.

Metrics (``ray.util.metrics``; the dashboard's Metrics tab and Prometheus show them with a ``ray_`` prefix)
    ``audiostyle_trials_running``        Gauge, trials running now
    ``audiostyle_trials``                Counter, trials ended, tag ``status`` = finished | failed | stopped
    ``audiostyle_best_metric``           Gauge, best objective value reported so far, tag ``metric``
    ``audiostyle_steps``                 Counter, training steps done
    ``audiostyle_steps_per_second``      Gauge, summed step rate of the running trials (steps / s)
Every metric carries the tags ``sweep_id`` and ``method``.

:class:`SweepMetrics` records them; :class:`MonitorCallback` feeds it from a Ray Tune run.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Callable, Mapping

from ray import tune
from ray.util import metrics as ray_metrics

from audiostyle.errors import AudiostyleError, check_choice
from audiostyle.store import FAILED, FINISHED, STATUSES
from audiostyle.sweep._keys import STEP, TIME_THIS_ITER, tracked

#: Prefix of every metric this module publishes.
METRIC_PREFIX = "audiostyle_"
#: How often :class:`MonitorCallback` re-sends the gauges (s); Ray forgets a gauge after 2 export intervals.
PUBLISH_EVERY_S = 0.5
_TAG_KEYS = ("sweep_id", "method")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _safe(text: str) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9_.-]`` replaced by ``-``."""
    return _SAFE.sub("-", str(text)).strip("-") or "x"


# ----------------------------------------------------------------------------------------------- names
def job_metadata(method: str, sweep_id: str, **extra: Any) -> dict[str, str]:
    """Metadata that names a sweep's Ray job in the dashboard's Jobs view.

    Parameters
    ----------
    method, sweep_id
        The sweep's method name and id.
    **extra
        Further ``key=value`` pairs (e.g. ``store="s3://…"``); values are turned into strings.

    Returns
    -------
    dict[str, str]
        Keys ``audiostyle.method``, ``audiostyle.sweep_id`` and ``audiostyle.<key>`` for each extra,
        ready for ``JobConfig(metadata=...)`` or ``ray job submit --metadata-json``.
    """
    meta = {"audiostyle.method": str(method), "audiostyle.sweep_id": str(sweep_id)}
    meta.update({f"audiostyle.{key}": str(value) for key, value in extra.items()})
    return meta


def submission_id(method: str, sweep_id: str) -> str:
    """A Ray job submission id for a sweep, e.g. ``audiostyle-shallow_cnn-20261121T0930-ab12``."""
    return f"audiostyle-{_safe(method)}-{_safe(sweep_id)}"


def trainable_name(method: str, sweep_id: str) -> str:
    """The name trial actors of a sweep carry in the dashboard, e.g. ``audiostyle.shallow_cnn.<sweep_id>``."""
    return f"audiostyle.{_safe(method)}.{_safe(sweep_id)}"


def trial_name_creator(method: str) -> Callable[[Any], str]:
    """A ``TuneConfig(trial_name_creator=..., trial_dirname_creator=...)`` naming trials ``<method>_<trial_id>``."""
    prefix = _safe(method)

    def create(trial: Any) -> str:
        return f"{prefix}_{trial.trial_id}"

    return create


# --------------------------------------------------------------------------------------------- metrics
class SweepMetrics:
    """Ray metrics of one sweep, recorded from the driver (or any Ray worker).

    Call it from the process that runs the ``Tuner`` (Ray must be initialised). All methods are cheap
    and idempotent per trial id, so a trial restarted after a node failure is not counted twice.
    Ray drops a gauge value that is not refreshed within two metric export intervals, so a long-running
    caller should call :meth:`publish` every few seconds (:class:`MonitorCallback` does, on every Tune step).

    Parameters
    ----------
    sweep_id, method
        Tags on every metric.
    objective
        Name of the metric whose best value :meth:`trial_result` tracks (e.g. ``"transfer_score"``);
        ``None`` tracks none.
    mode
        ``"max"`` or ``"min"``: which direction is better for ``objective``.
    """

    def __init__(self, sweep_id: str, method: str, objective: str | None = None, mode: str = "max") -> None:
        check_choice("mode", mode, ("max", "min"))
        self.sweep_id, self.method, self.objective, self.mode = str(sweep_id), str(method), objective, mode
        tags = {"sweep_id": self.sweep_id, "method": self.method}
        self._running_gauge = ray_metrics.Gauge(
            METRIC_PREFIX + "trials_running", "Trials of the sweep running now.", _TAG_KEYS
        ).set_default_tags(tags)
        self._ended = ray_metrics.Counter(
            METRIC_PREFIX + "trials", "Trials of the sweep that ended, by status.", _TAG_KEYS + ("status",)
        ).set_default_tags(tags)
        self._best_gauge = ray_metrics.Gauge(
            METRIC_PREFIX + "best_metric", "Best objective value reported so far.", _TAG_KEYS + ("metric",)
        ).set_default_tags(tags)
        self._steps = ray_metrics.Counter(
            METRIC_PREFIX + "steps", "Training steps done by the sweep's trials.", _TAG_KEYS
        ).set_default_tags(tags)
        self._rate_gauge = ray_metrics.Gauge(
            METRIC_PREFIX + "steps_per_second", "Summed training step rate of running trials (steps/s).", _TAG_KEYS
        ).set_default_tags(tags)
        self._running: set[str] = set()
        self._ended_ids: set[str] = set()
        self._rates: dict[str, float] = {}
        self.counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        self.best: float | None = None
        self.total_steps = 0
        self.publish()

    @property
    def running(self) -> int:
        """Number of trials running now."""
        return len(self._running)

    @property
    def steps_per_second(self) -> float:
        """Summed step rate of the running trials (steps / s)."""
        return float(sum(self._rates.get(t, 0.0) for t in self._running))

    def publish(self) -> None:
        """(Re)send the current values of the gauges: trials running, steps per second, best metric."""
        self._running_gauge.set(self.running)
        self._rate_gauge.set(self.steps_per_second)
        if self.best is not None:
            self._best_gauge.set(self.best, tags={"metric": self.objective})

    def trial_started(self, trial_id: str = "") -> None:
        """Record that trial ``trial_id`` started (or restarted after a failure)."""
        self._running.add(str(trial_id))
        self._ended_ids.discard(str(trial_id))
        self._running_gauge.set(self.running)

    def trial_finished(self, status: str, metrics: Mapping[str, Any] | None = None, trial_id: str = "") -> None:
        """Record that trial ``trial_id`` ended with ``status`` and final ``metrics``.

        Parameters
        ----------
        status
            ``"finished"``, ``"failed"`` or ``"stopped"`` (early-stopped by the scheduler).
        metrics
            The trial's final metrics; the objective in it updates the best value.
        trial_id
            Its id; a second call for the same id (without a restart between) is ignored.
        """
        check_choice("status", status, STATUSES)
        key = str(trial_id)
        if key in self._ended_ids:
            return
        self._ended_ids.add(key)
        self._running.discard(key)
        self._rates.pop(key, None)
        self.counts[status] += 1
        self._ended.inc(1, tags={"status": status})
        if metrics and status != FAILED:
            self.trial_result(metrics)
        self.publish()

    def trial_result(self, metrics: Mapping[str, Any]) -> None:
        """Update the best objective value from one report's ``metrics`` (NaN and missing values ignored)."""
        if self.objective is None or self.objective not in metrics:
            return
        try:
            value = float(metrics[self.objective])
        except (TypeError, ValueError):
            return
        if math.isnan(value):
            return
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better:
            self.best = value
            self.publish()

    def steps(self, n: int, seconds: float, trial_id: str = "") -> None:
        """Record ``n`` training steps done by trial ``trial_id`` in ``seconds`` of wall time."""
        if n < 0 or seconds < 0:
            raise AudiostyleError(f"steps(n={n}, seconds={seconds}): both must be ≥ 0.")
        if n == 0:
            return
        self.total_steps += int(n)
        self._steps.inc(n)
        if seconds > 0:
            self._rates[str(trial_id)] = n / seconds
        self._rate_gauge.set(self.steps_per_second)


class MonitorCallback(tune.Callback):
    """A Ray Tune callback that feeds :class:`SweepMetrics` from a running ``Tuner``.

    Add it to ``tune.RunConfig(callbacks=[MonitorCallback(sweep_id, method, objective, mode)])``.
    A trial's steps are read from the result key ``step_key`` (the method's own step counter); where a
    result has none, each report counts as one step. Its wall time is the result's ``time_this_iter_s``.
    Tune's result does not say whether a completed trial ran to its end or was stopped early by the
    scheduler (both carry ``done=True``): pass ``status_of`` to tell them apart, else every completed
    trial counts as ``"finished"``.

    Parameters
    ----------
    sweep_id, method, objective, mode
        As for :class:`SweepMetrics`.
    step_key
        Result key holding the trial's cumulative step count.
    status_of
        ``status_of(trial) -> "finished" | "stopped"`` for a completed trial (e.g. the store's rule).
    """

    def __init__(
        self,
        sweep_id: str,
        method: str,
        objective: str | None = None,
        mode: str = "max",
        step_key: str = STEP,
        status_of: Callable[[Any], str] | None = None,
    ) -> None:
        self.sweep_id, self.method, self.objective, self.mode = sweep_id, method, objective, mode
        self.step_key, self.status_of = step_key, status_of
        self.metrics: SweepMetrics | None = None
        self._last_step: dict[str, float] = {}
        self._published = 0.0

    def setup(self, **info: Any) -> None:
        """Create the metrics once Ray runs (Tune calls this in the driver)."""
        self.metrics = SweepMetrics(self.sweep_id, self.method, self.objective, self.mode)

    def _sweep(self) -> SweepMetrics:
        if self.metrics is None:
            self.setup()
        return self.metrics

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if now - self._published >= PUBLISH_EVERY_S:
            self._published = now
            self._sweep().publish()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._sweep().trial_started(trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        sweep = self._sweep()
        sweep.trial_started(trial.trial_id)  # a restored trial reports without a new start on some paths
        sweep.trial_result(result)
        if self.step_key in result:
            step = float(result[self.step_key])
            done = step - self._last_step.get(trial.trial_id, 0.0)
            self._last_step[trial.trial_id] = step
        else:
            done = 1.0
        if done > 0:
            sweep.steps(int(round(done)), float(result.get(TIME_THIS_ITER) or 0.0), trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        status = self.status_of(trial) if self.status_of else FINISHED
        self._sweep().trial_finished(status, trial.last_result or {}, trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._sweep().trial_finished(FAILED, None, trial.trial_id)


# ------------------------------------------------------------------------------------------- console
def progress_reporter(objectives: list[Any], headline: Any, parameters: list[str]) -> Any:
    """Ray Tune's console table: the objectives' latest values, the step, the first six searched fields.

    The legacy table needs ``RAY_AIR_NEW_OUTPUT=0`` (set by :func:`audiostyle.sweep.run` unless set).
    """
    shown = {tracked(o.metric): o.metric for o in [headline, *objectives]}
    shown[STEP] = STEP
    return tune.CLIReporter(metric_columns=shown, parameter_columns=parameters[:6], max_report_frequency=15,
                            max_progress_rows=12)


def monitor_callback(sweep_id: str, method: str, headline: Any, budget_steps: int = 0) -> MonitorCallback:
    """The dashboard metrics of a sweep (trials running/ended, best headline, steps/s), statuses by the store's rule."""
    from audiostyle.sweep._callback import status_of

    return MonitorCallback(sweep_id, method, tracked(headline.metric), headline.mode,
                           status_of=lambda trial: status_of(trial.last_result, budget_steps))
