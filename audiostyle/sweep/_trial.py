"""The Ray Tune trainable every sweep runs: one trial of one method, on whichever node Ray places it.

A trial builds the method's config from the sweep's fixed overrides plus the values the searcher
proposed, picks its device, restores from Tune's checkpoint when there is one, and calls
``method.train(config, data, ctx)``. Each ``ctx.report(step, metrics, state)`` becomes one
``tune.report`` with the keys of :mod:`audiostyle.sweep._keys`; the trial ends with one more result
marked ``trial.final`` holding the method's final metrics, its status and error.

Failures are told apart on purpose: anything the *method* raises (a NaN loss as ``FloatingPointError``,
an :class:`~audiostyle.errors.AudiostyleError` for a bad config, a bug) is deterministic, so the trial ends
normally with status ``failed`` and its reason, and Ray never retries it; its final result carries NaN
objectives, and the searcher records it as failed. Failures of the *platform* (a checkpoint that cannot be
persisted, a lost node, a killed worker, a GPU share torch cannot use, CUDA out of memory or a CUDA error:
:mod:`audiostyle.sweep._gpu`) raise :class:`~audiostyle.errors.PlatformError` to Ray, whose
``FailureConfig(max_failures=...)`` retries the trial from its last checkpoint in a new worker process (Ray
never reuses the actor of a failed trial); the searcher learns only that the trial failed, never a score.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from audiostyle.errors import PlatformError
from audiostyle.methods.base import Method, TrialContext
from audiostyle.store import FAILED, FINISHED
from audiostyle.store import Store
from audiostyle.sweep._console import drop_stop_tracebacks
from audiostyle.sweep._exit import join_at_exit
from audiostyle.sweep._gpu import cap_memory, is_gpu_platform_failure, pick_device
from audiostyle.sweep._keys import (ARTIFACTS, CHECKPOINT_FILE, DEVICE, ERROR, FINAL, LEARNING_CURVES, METRICS,
                                    RESTORED_FROM, STATUS, STEP, STEP_SECONDS, TRAIN_SECONDS, TRIAL_FILE,
                                    tracked)
from audiostyle.sweep._kernels import compile_librosa_kernels
from audiostyle.sweep._scratch import scratch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of a sweep shares (pickled once into Ray's object store).

    Attributes
    ----------
    method : Method
        The method instance (pickled by class reference: its module must import on the workers).
    sweep_id : str
    store_root : str
        Where artifacts go (local path shared by the nodes, or ``s3://``).
    overrides : dict
        Fixed config values of the sweep; the searcher's values come on top.
    tracked : tuple of str
        Metrics carried forward as ``tracked.<metric>`` (objectives and the scheduler's metric).
    seed : int
        The sweep's seed, passed to every trial's :class:`TrialContext`.
    gpus_per_trial : float
        The trial's GPU share; a fraction also caps its share of the GPU's memory
        (:func:`audiostyle.sweep._gpu.cap_memory`).
    """

    method: Method
    sweep_id: str
    store_root: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    tracked: tuple[str, ...] = ()
    seed: int = 0
    gpus_per_trial: float = 0.0


class ArtifactSync:
    """A local artifact folder mirrored to the store whenever its contents change.

    Called after every report, so an early-stopped trial keeps the artifacts it had written.
    """

    def __init__(self, store: Store, spec: TrialSpec, trial_id: str, folder: Path) -> None:
        self.store, self.spec, self.trial_id, self.dir = store, spec, trial_id, folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.uris: dict[str, str] = {}
        self._seen: tuple = ()

    def sync(self) -> dict[str, str]:
        """Upload the folder if anything in it changed since the last call; the URIs of its files."""
        seen = tuple(
            sorted((str(p.relative_to(self.dir)), p.stat().st_size, p.stat().st_mtime_ns) for p in self.dir.rglob("*") if p.is_file())
        )
        if seen != self._seen:
            self.uris = self.store.put_artifacts(self.spec.method.name, self.spec.sweep_id, self.trial_id, self.dir)
            self._seen = seen
        return self.uris


@dataclass(frozen=True)
class _Resumed:
    """What a Tune checkpoint gave a trial: the method state, tracked values, step and reports so far, and the
    trial that wrote it (another trial's after a PBT exploit)."""

    state: Mapping[str, Any] | None = None
    tracked: Mapping[str, float] = field(default_factory=dict)
    step: int = 0
    writer: str | None = None
    history: tuple[Mapping[str, float], ...] = ()
    train_s: float = 0.0


def _restore(checkpoint: Any) -> _Resumed:
    """The :class:`_Resumed` of a Tune checkpoint (or nothing)."""
    if checkpoint is None:
        return _Resumed()
    import torch

    with checkpoint.as_directory() as folder:
        meta = json.loads((Path(folder) / TRIAL_FILE).read_text())
        # tensors, numbers, strings and containers only (audiostyle.methods.checkpoint.capture_state): no pickled code
        state = torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
    log.info("trial resumes from the checkpoint of trial %s at step %d", meta.get("trial_id"), meta["step"])
    return _Resumed(state, {k: float(v) for k, v in meta["tracked"].items()}, int(meta["step"]), meta.get("trial_id"),
                    tuple(meta.get("history", ())), float(meta.get("train_s", 0.0)))


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 2000 else text[:2000] + " …"


class _Reporter:
    """A trial's ``ctx.report``: each report becomes one ``tune.report`` (with a checkpoint when it has state).

    It keeps the trial's reports (carried in its checkpoints, so a restored trial keeps its earlier ones) and draws
    them as :data:`LEARNING_CURVES` in the artifact folder with every checkpoint and at the end.
    """

    def __init__(self, spec: TrialSpec, trial_id: str, device: str, workdir: Path, artifacts: ArtifactSync,
                 resumed: _Resumed) -> None:
        self.trial_id, self.device, self.workdir, self.artifacts = trial_id, device, workdir, artifacts
        self.step, self.restored_from = resumed.step, resumed.writer
        self.tracked = {m: resumed.tracked.get(m, math.nan) for m in spec.tracked}
        self.history = [dict(h) for h in resumed.history]
        self.title = f"{spec.method.name} {trial_id}"
        self.started, self.first_step, self.train_s_before = time.perf_counter(), resumed.step, resumed.train_s

    def train_seconds(self) -> float:
        """:data:`TRAIN_SECONDS` now: the seconds before the last restore plus those since this process resumed."""
        return self.train_s_before + time.perf_counter() - self.started

    def step_seconds(self, step: int) -> dict[str, float]:
        """``{STEP_SECONDS: wall seconds per step}`` since this process started the trial (evaluation included)."""
        done = step - self.first_step
        return {STEP_SECONDS: (time.perf_counter() - self.started) / done} if done > 0 else {}

    def draw_history(self) -> None:
        """Write the learning curves so far into the artifact folder (a failed drawing is logged, never fatal)."""
        if not self.history:
            return
        from audiostyle import plots

        try:
            plots.fig_trial_history(self.history, self.title).savefig(self.artifacts.dir / LEARNING_CURVES, dpi=80)
        except Exception as exc:  # noqa: BLE001 - a figure must never fail the trial
            log.warning("trial %s: learning curves not drawn: %s", self.trial_id, exc)

    def result(self, step: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The Tune result of a report: metrics as given, objectives carried forward, device, artifacts."""
        values = {k: float(v) for k, v in metrics.items()}
        self.tracked.update({k: v for k, v in values.items() if k in self.tracked})
        return {
            STEP: int(step),
            METRICS: values,
            **{tracked(k): v for k, v in self.tracked.items()},
            DEVICE: self.device,
            TRAIN_SECONDS: self.train_seconds(),
            ARTIFACTS: json.dumps(self.artifacts.sync(), sort_keys=True),
            **({RESTORED_FROM: self.restored_from} if self.restored_from else {}),
        }

    def __call__(self, step: int, metrics: Mapping[str, Any], state: Mapping[str, Any] | None = None) -> None:
        from ray import tune

        self.step = int(step)
        metrics = {**metrics, **self.step_seconds(self.step)}
        self.history.append({STEP: float(step), **{k: float(v) for k, v in metrics.items()}})
        if state is not None:
            self.draw_history()
        out = self.result(step, metrics)
        try:
            if state is None:
                tune.report(out)
                return
            import torch

            folder = Path(tempfile.mkdtemp(prefix="ckpt-", dir=self.workdir))
            torch.save(dict(state), folder / CHECKPOINT_FILE)
            meta = {"step": int(step), "tracked": self.tracked, "trial_id": self.trial_id, "history": self.history,
                    "train_s": out[TRAIN_SECONDS]}
            (folder / TRIAL_FILE).write_text(json.dumps(meta))
            tune.report(out, checkpoint=tune.Checkpoint.from_directory(str(folder)))
            shutil.rmtree(folder, ignore_errors=True)
        except Exception as exc:  # noqa: BLE001 - persisting the result/checkpoint failed: Ray retries
            raise PlatformError(f"reporting step {step} to Ray Tune failed: {_error_text(exc)}") from exc

    def final(self, metrics: Mapping[str, Any], error: str | None) -> dict[str, Any]:
        """The trial's last result: final metrics, status and error; a failed trial's objectives are NaN."""
        if error is not None:
            self.tracked = dict.fromkeys(self.tracked, math.nan)
        self.draw_history()
        out = self.result(self.step, {**metrics, **self.step_seconds(self.step)} if metrics else metrics)
        out.update({STATUS: FAILED if error is not None else FINISHED, ERROR: error or "", FINAL: True})
        return out


def _train(spec: TrialSpec, config: Mapping[str, Any], data: Any, ctx: TrialContext, trial_id: str) -> tuple[dict, str | None]:
    """The method's final metrics and None, or ``({}, reason)`` when the method failed (never retried)."""
    started = time.perf_counter()
    try:
        return spec.method.train(spec.method.make_config({**spec.overrides, **config}), data, ctx), None
    except PlatformError:
        raise
    except Exception as exc:  # noqa: BLE001 - the method's own failure: recorded, never retried
        if is_gpu_platform_failure(exc):  # a co-tenant's memory or a poisoned CUDA context, not the config
            raise PlatformError(f"GPU failure (not the method's; Ray retries the trial in a new worker): "
                                f"{_error_text(exc)}") from exc
        log.warning("trial %s failed after %.1f s: %s", trial_id, time.perf_counter() - started, _error_text(exc))
        return {}, _error_text(exc)


def run_trial(config: dict[str, Any], data: Any = None, spec: TrialSpec | None = None) -> None:
    """The function trainable (wrap with ``tune.with_parameters(run_trial, data=..., spec=...)``).

    Parameters
    ----------
    config : dict
        The searcher's values for the searched fields only.
    data : object
        ``method.prepare(dataset, base_config)``, shared through Ray's object store.
    spec : TrialSpec
    """
    from ray import tune

    assert spec is not None, "run_trial needs spec= (tune.with_parameters)"
    drop_stop_tracebacks()
    join_at_exit()
    compile_librosa_kernels()
    trial_id = tune.get_context().get_trial_id()
    device = pick_device()
    cap_memory(device, spec.gpus_per_trial)
    resumed = _restore(tune.get_checkpoint())
    with scratch(f"{spec.sweep_id}-{trial_id}") as workdir:  # /tmp/audiostyle-<sweep>-<trial>-*
        artifacts = ArtifactSync(Store(spec.store_root), spec, trial_id, workdir / "artifacts")
        report = _Reporter(spec, trial_id, device, workdir, artifacts, resumed)
        ctx = TrialContext(report=report, resume_state=resumed.state, artifact_dir=artifacts.dir, device=device, seed=spec.seed)
        final, error = _train(spec, config, data, ctx, trial_id)
        try:
            tune.report(report.final(final, error))
        except Exception as exc:  # noqa: BLE001
            raise PlatformError(f"reporting the final result to Ray Tune failed: {_error_text(exc)}") from exc
