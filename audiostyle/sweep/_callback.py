"""The driver-side Ray Tune callback that writes every ended trial to the Parquet store.

It collects each trial's reports as they arrive (the store's ``history``) and, when the trial ends
(finished, early-stopped by the scheduler, failed), writes its row with
:meth:`audiostyle.store.Store.write_trial`, named by the trial id: a trial written again after a
``--resume`` replaces its row. Its state (start times, histories) is saved with Tune's experiment
checkpoint (:meth:`get_state`), so a restored sweep keeps the history of trials that were running
when the driver died.

Row rules
---------
``status``   ``trial.status`` of the trial's final result (``finished`` or ``failed``); a trial that
             ended without one was stopped by the scheduler (``stopped``); a Ray error (after its
             retries) is ``failed`` with Ray's message.
``metric.*`` a finished trial's final metrics (the method's return value); otherwise the latest value
             of each metric over its reports.
``wall_s``   Tune's ``time_total_s`` (running time summed over restores).
``artifact.clips`` the dataset clips behind the trial's examples (:mod:`audiostyle.methods.examples`), JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

from ray import tune

from audiostyle.methods.examples import INDEX, clips_of
from audiostyle.methods.base import Method
from audiostyle.metrics import SCORE_VERSION, Objective
from audiostyle.store import (
    ARTIFACT_AUDIO, ARTIFACT_CHECKPOINT, ARTIFACT_CLIPS, ARTIFACT_DIR, ARTIFACT_SPECTROGRAM, FAILED, FINISHED,
    METRICS_VERSION, STOPPED, Store,
)
from audiostyle.sweep._keys import (ARTIFACTS, CHECKPOINT_FILE, DEVICE, ERROR, FINAL, LEARNING_CURVES, METRICS, STATUS,
                                    STEP, TIME_TOTAL)
from audiostyle.sweep._scratch import scratch

log = logging.getLogger(__name__)


def status_of(last_result: Mapping[str, Any] | None, budget_steps: int = 0) -> str:
    """``finished``/``failed`` from a trial's final result; without one ``stopped``, unless its last report had
    reached the step budget (``budget_steps``): a scheduler's stop at the last report ends no work early."""
    result = last_result or {}
    if result.get(STATUS):
        return result[STATUS]
    return FINISHED if budget_steps and int(result.get(STEP) or 0) >= budget_steps else STOPPED


class StoreCallback(tune.Callback):
    """Write each ended trial (row + history + checkpoint copy) to the store.

    Parameters
    ----------
    store_root : str
    method : Method
    sweep_id : str
    objective : Objective
        Recorded as ``objective.metric`` / ``objective.mode`` (the first objective of the sweep).
    overrides : dict
        The sweep's fixed config values (the trial's own values come on top).
    seed : int
    """

    def __init__(
        self,
        store_root: str,
        method: Method,
        sweep_id: str,
        objective: Objective,
        overrides: Mapping[str, Any],
        seed: int,
    ) -> None:
        self.store = Store(store_root)
        self.method, self.sweep_id, self.objective = method, sweep_id, objective
        self.overrides, self.seed = dict(overrides), seed
        self.budget_steps = int(getattr(method.make_config(overrides), "steps", 0) or 0)
        self.trials: dict[str, dict[str, Any]] = {}

    # -- Tune's checkpointed state --------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Running trials' start times, histories and artifact URIs (saved with Tune's experiment state)."""
        return {"trials": self.trials}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state` after ``Tuner.restore``."""
        self.trials = state.get("trials", {})

    def relocate(self, store_root: str) -> None:
        """Write to the store at ``store_root`` from now on (a resumed sweep's store, copied or moved since Ray
        pickled this callback)."""
        self.store = Store(store_root)

    # -- events --------------------------------------------------------------------------------
    def _entry(self, trial: Any) -> dict[str, Any]:
        return self.trials.setdefault(
            trial.trial_id, {"started_at": time.time(), "history": {}, "artifacts": {}, "device": None}
        )

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._entry(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        entry = self._entry(trial)
        entry["device"] = result.get(DEVICE, entry["device"])
        if result.get(ARTIFACTS):
            entry["artifacts"] = json.loads(result[ARTIFACTS])
        if result.get(FINAL) or STEP not in result:
            return
        # keyed by step: steps re-run after a restore replace the lost run's rows
        entry["history"][int(result[STEP])] = {
            STEP: int(result[STEP]),
            "time_s": float(result.get(TIME_TOTAL, float("nan"))),
            **result.get(METRICS, {}),
        }

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        self._write(trial, status_of(result, self.budget_steps), result.get(ERROR) or None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = ray_error(trial)
        self._write(trial, FAILED, f"Ray: {error}" if error else "Ray: the trial's worker failed")

    # -- the row -------------------------------------------------------------------------------
    def _config(self, trial_config: Mapping[str, Any]) -> dict[str, Any]:
        values = {**self.overrides, **trial_config}
        try:
            return dataclasses.asdict(self.method.make_config(values))
        except Exception:  # noqa: BLE001 - an invalid config is recorded as given (the trial failed on it)
            return values

    def _clips(self, artifacts: Mapping[str, str]) -> str | None:
        """The clip names behind the trial's examples (:data:`audiostyle.methods.examples.INDEX`), as JSON, or None."""
        uri = artifacts.get(INDEX)
        if uri is None:
            return None
        with self.store.fs.open(uri.removeprefix("s3://"), "rb") as fh:
            return clips_of(fh.read())

    def _checkpoint_uri(self, trial: Any) -> str | None:
        """Copy the trial's last Tune checkpoint state into its artifact folder; its URI."""
        checkpoint = trial.checkpoint
        if checkpoint is None:
            return None
        with scratch("ckpt") as folder:
            try:
                source = f"{checkpoint.path.rstrip('/')}/{CHECKPOINT_FILE}"
                with checkpoint.filesystem.open_input_stream(source) as fh, open(folder / CHECKPOINT_FILE, "wb") as out:
                    shutil.copyfileobj(fh, out)
                uris = self.store.put_artifacts(self.method.name, self.sweep_id, trial.trial_id, folder)
                return uris.get(CHECKPOINT_FILE)
            except (OSError, FileNotFoundError) as exc:
                log.warning("trial %s: could not copy its checkpoint to the store: %s", trial.trial_id, exc)
                return None

    def _write(self, trial: Any, status: str, error: str | None) -> None:
        entry = self._entry(trial)
        result = trial.last_result or {}
        history = [entry["history"][k] for k in sorted(entry["history"])]
        if result.get(FINAL) and status == FINISHED:
            metrics = dict(result.get(METRICS, {}))
        else:
            metrics = {}
            for row in history:
                metrics.update({k: v for k, v in row.items() if k not in (STEP, "time_s")})
        ended = time.time()
        wall = float(result.get(TIME_TOTAL) or (ended - entry["started_at"]))
        artifacts = entry["artifacts"]
        row = {
            "trial_id": trial.trial_id,
            "sweep_id": self.sweep_id,
            "method": self.method.name,
            "status": status,
            "error": error,
            "started_at": dt.datetime.fromtimestamp(entry["started_at"], tz=dt.timezone.utc),
            "ended_at": dt.datetime.fromtimestamp(ended, tz=dt.timezone.utc),
            "wall_s": wall,
            "steps": int(result.get(STEP, history[-1][STEP] if history else 0)),
            "device": entry["device"] or result.get(DEVICE),
            "seed": self.seed,
            METRICS_VERSION: SCORE_VERSION,
            "config": self._config(trial.config),
            "metrics": metrics,
            ARTIFACT_DIR: self.store.artifact_dir(self.method.name, self.sweep_id, trial.trial_id),
            ARTIFACT_AUDIO: _first(artifacts, ".wav"),
            ARTIFACT_SPECTROGRAM: _first(artifacts, ".png"),
            ARTIFACT_CLIPS: self._clips(artifacts),
            ARTIFACT_CHECKPOINT: self._checkpoint_uri(trial),
            "objective.metric": self.objective.metric,
            "objective.mode": self.objective.mode,
        }
        self.store.write_trial(row, history)
        self.trials.pop(trial.trial_id, None)  # driver memory stays flat however many trials end
        log.info("stored trial %s (%s)%s", trial.trial_id, status, f": {error}" if error else "")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""A terminal colour code."""


def ray_error(trial: Any) -> str | None:
    """Ray's text of the trial's last failure: from the driver's own error file (written as the failure is handled),
    else from the trial's storage (``trial.get_error()``, which sees the file only once Ray has synced it there)."""
    local = Path(trial.error_file) if trial.error_file else None
    text = local.read_text() if local is not None and local.is_file() else trial.get_error()
    if not text:
        return None
    if "Failure # " in text:  # "Failure # <n> (occurred at <time>)\n<error>" for each failure: the last one
        text = text.rsplit("Failure # ", 1)[1].split("\n", 1)[-1]
    return _ANSI.sub("", text).strip()  # Ray colours the worker's name in it


def _first(uris: Mapping[str, str], suffix: str) -> str | None:
    """The first artifact (by name) with ``suffix``, preferring names that say output/transfer/sample (not inputs);
    never the learning curves (:data:`~audiostyle.sweep._keys.LEARNING_CURVES`)."""
    names = sorted(n for n in uris if n.lower().endswith(suffix) and n != LEARNING_CURVES)
    preferred = [n for n in names if any(w in n.lower() for w in ("output", "transfer", "sample", "generated"))
                 and not n.lower().endswith("_input" + suffix)]
    chosen = (preferred or names or [None])[0]
    return uris[chosen] if chosen else None
