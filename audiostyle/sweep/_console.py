"""The sweep's console: quiet by default, Ray's detail with ``-v``.

Quiet (``verbose=0``, what ``make sweep`` shows): one line per ended trial (:class:`ProgressCallback`; a diverged GAN
is flagged on it) and the
summary the caller prints; Ray's live table, its per-checkpoint INFO lines ("Checkpoint successfully created
at …", logged by every trial worker) and the log-deduplication hint are off. Verbose (``verbose=1``): Ray Tune's
table and every INFO line of Ray and audiostyle.

Ray's workers read their logging level from ``RAY_LOGGER_LEVEL`` when they start: a local Ray's workers inherit
the driver's environment, a cluster's get it through the job's ``runtime_env`` (:func:`worker_env`).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from typing import Any, Callable, Mapping

from ray import tune

from audiostyle.methods.base import DIVERGED
from audiostyle.metrics import Objective
from audiostyle.store import FAILED
from audiostyle.sweep._keys import ERROR, FINAL, METRICS, STEP, STEP_SECONDS, tracked

DIVERGED_NOTE = " (diverged: a discriminator wins outright; lower its lr or raise the generator's)"
"""Appended to the line of a trial whose final report is flagged :data:`~audiostyle.methods.base.DIVERGED`."""

QUIET_ENV = {
    "RAY_LOGGER_LEVEL": "warning",  # the workers' "ray" logger: no per-checkpoint INFO line
    "RAY_DEDUP_LOGS": "0",  # no deduplication, hence no hint about it (quiet workers print next to nothing)
}
"""The environment of a quiet sweep (driver and workers); each variable the user set wins."""
QUIET_LOGGERS = ("ray._private.authentication.authentication_token_setup",)
"""Driver loggers a quiet sweep raises to ERROR: Ray's notice that a new local Ray enables token authentication
(its secure default, which the sweep keeps)."""


RAY_FAILURE_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune", "ray.tune.analysis.experiment_analysis")
"""Driver loggers whose lines about failed trials a quiet sweep drops (:class:`QuietRayErrors`)."""
REASON_CHARS = 200
"""Most characters of a failed trial's reason on its console line."""


def configure_logging(verbose: int) -> None:
    """A command's logging: stderr, ``levelname name: message``, at WARNING (quiet) or INFO (``verbose``).

    Ray Tune's advice after an interrupted run (``Tuner.restore(...)``) is dropped: the sweep prints its own
    ``--resume`` command (:func:`audiostyle.sweep._cli.resume_command`).
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(TUNE_RUN_LOGGER).addFilter(lambda record: "Tuner.restore" not in record.getMessage())


TUNE_RUN_LOGGER = "ray.tune.tune"
"""The logger of Ray Tune's run loop (its interrupt advice)."""


def quiet_env(verbose: int) -> dict[str, str]:
    """Unless ``verbose``: :data:`QUIET_ENV` set in the driver (a value the user set wins) and
    :data:`QUIET_LOGGERS` raised; returns the environment the workers need."""
    if verbose:
        return {}
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in RAY_FAILURE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietRayErrors) for f in logger.filters):
            logger.addFilter(QuietRayErrors())
    env = {key: os.environ.get(key, value) for key, value in QUIET_ENV.items()}
    os.environ.update(env)
    return env


def drop_stop_tracebacks() -> None:
    """In a trial's process: drop the "Exception ignored in ... SystemExit: 1" traceback Python prints when Ray stops
    the trial's actor while a weakref callback runs (Ray's SIGTERM handler raises SystemExit, which such a callback
    cannot raise). Ray forwards it to the sweep's console, where a trial stopped at a rung looked like a crash. Any
    other exception Python cannot raise is printed as before."""
    if getattr(sys.unraisablehook, "drops_stop", False):
        return
    plain = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, SystemExit):
            plain(unraisable)

    hook.drops_stop = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def worker_env(env: Mapping[str, str]) -> dict[str, Any]:
    """A ``runtime_env`` passing ``env`` to the workers of a cluster (empty when there is nothing to pass)."""
    return {"env_vars": dict(env)} if env else {}


def progress_line(done: int, total: int, trial_id: str, status: str, steps: int, headline: Objective,
                  value: float | None) -> str:
    """``[2/4] trial 59bf6502 finished at step 12: transfer_score 0.8777`` (``nan`` when it has no value)."""
    shown = f"{value:.4g}" if value is not None and math.isfinite(value) else "nan"
    return f"[{done}/{total}] trial {trial_id} {status} at step {steps}: {headline.metric} {shown}"


class ProgressCallback(tune.Callback):
    """Print :func:`progress_line` when a trial ends (finished, stopped early, failed).

    Parameters
    ----------
    headline : Objective
        The metric each line shows (the final metrics' value, else the latest tracked one).
    total : int
        The sweep's number of trials.
    status_of : callable
        ``status_of(last_result) -> str``: the store's status rule.
    echo : callable, optional
        Where lines go (default ``print`` at the time of the line: the callback is pickled with Tune's
        experiment state, and a captured ``print`` does not pickle).
    """

    def __init__(self, headline: Objective, total: int, status_of: Callable[[Mapping[str, Any] | None], str],
                 echo: Callable[[str], None] | None = None) -> None:
        self.headline, self.total, self.status_of, self.echo = headline, total, status_of, echo
        self.ended: set[str] = set()

    def _line(self, trial: Any, status: str, error: str | None = None) -> None:
        if trial.trial_id in self.ended:
            return
        self.ended.add(trial.trial_id)
        result = trial.last_result or {}
        final = result.get(METRICS, {}) if result.get(FINAL) else {}
        value = final.get(self.headline.metric, result.get(tracked(self.headline.metric)))
        line = progress_line(len(self.ended), self.total, trial.trial_id, status, int(result.get(STEP, 0)),
                             self.headline, None if value is None else float(value))
        seconds = (result.get(METRICS) or {}).get(STEP_SECONDS)
        cost = f" ({seconds:.3g} s/step)" if seconds else ""
        why = f": {failure_reason(error)}" if status == FAILED and error else ""
        (self.echo or print)(line + cost + (DIVERGED_NOTE if final.get(DIVERGED) == 1.0 else "") + why)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._line(trial, self.status_of(trial.last_result), (trial.last_result or {}).get(ERROR))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from audiostyle.sweep._callback import ray_error

        self._line(trial, FAILED, ray_error(trial))


def failure_reason(error: str, width: int = REASON_CHARS) -> str:
    """The line of a trial's error text a person reads first: its last non-empty line (the exception), cut to
    ``width`` characters; the whole text is in the store's ``error`` column."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else error.strip()
    return last if len(last) <= width else last[: width - 1] + "…"


class QuietRayErrors(logging.Filter):
    """Drops what Ray's driver logs about a failed trial (its worker's traceback, once per attempt, and the list of
    trials that did not complete): a quiet sweep's console says it in the trial's own line."""

    MESSAGES = ("Trial task failed for trial", "Trials did not complete", "Failed to fetch metrics")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.MESSAGES)
