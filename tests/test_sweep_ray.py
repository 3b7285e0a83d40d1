"""Integration tests of the sweep engine on a real local Ray: store contents, concurrency, failures,
Pareto sweeps, an s3:// store on a real S3 server, a killed driver resumed, every method's smoke sweep."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest
import ray
import soundfile as sf

from audiostyle import methods, metrics, sweep
from audiostyle.data.synth import demo_dataset
from audiostyle.methods.space import Choice, Float, Given
from audiostyle.store import Store
from audiostyle.sweep._keys import RAY_TRIAL_ID
from audiostyle.sweep._scratch import MARKER, PREFIX
from audiostyle.sweep._study import journal_storage
from tests.fixtures.stores import smoke_sweep
from tests.toy_method import ROOM_NAMESPACE, Room, ToyConfig, quality

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
methods.register("toy", "tests.toy_method:Toy")


def toy_sweep(tmp_path: Path, **kwargs):
    options = dict(
        data=demo_dataset(n_melodies=2, seconds=0.5),
        store=str(tmp_path / "store"),
        cache_dir=str(tmp_path / "cache"),
        samples=6,
        max_concurrent=2,
        overrides={"sleep_s": 0.1},
        dashboard=False,
        verbose=0,
    )
    options.update(kwargs)
    return sweep.run("toy", **options)


def ray_results(experiment_path: str) -> dict[str, list[dict]]:
    """Every result Ray Tune logged (result.json of each trial folder), by trial id."""
    out: dict[str, list[dict]] = {}
    for path in Path(experiment_path).glob("*/result.json"):
        for line in path.read_text().splitlines():
            result = json.loads(line)
            out.setdefault(result["trial_id"], []).append(result)
    return out


def saved_study(experiment_path: str):
    """The Optuna study of the sweep's searcher, from the searcher state Ray Tune saved in the experiment folder."""
    from audiostyle.sweep._search import RestorableOptunaSearch

    searcher = RestorableOptunaSearch()
    searcher.restore_from_dir(experiment_path)
    return searcher._ot_study


def toy_cli(log: Path, *args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    """The toy sweep through the shared sweep CLI, in its own process (and its own local Ray), output to ``log``."""
    command = [sys.executable, "-m", "tests.toy_method", "--smoke", "--address", "local", "--no-dashboard", *args]
    with open(log, "w") as out:  # a file, not a pipe: Tune's table would fill a pipe nobody drains
        return subprocess.Popen(command, cwd=REPO, env={**os.environ, **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT, text=True, **popen)


def room(name: str):
    """A :class:`~tests.toy_method.Room` actor that toy trials given ``meet=name`` train inside."""
    return ray.remote(Room).options(name=name, namespace=ROOM_NAMESPACE).remote()


def test_store_rows_equal_what_trials_reported_and_trials_overlap(
    tmp_path: Path, ray_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative store path means the driver's folder, not the trial's
    meeting = room("overlap")
    result = toy_sweep(tmp_path, samples=6, overrides={"sleep_s": 0.15, "meet": "overlap"}, store="store")
    # max_concurrent=2 trials really ran at the same time: two were inside the room at once
    assert ray.get(meeting.most_inside.remote()) == 2
    trials = result.trials
    assert len(trials) == 6 and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"finished", "stopped"} and (trials["status"] == "finished").any()
    assert set(trials["device"]) == {"cpu"} and set(trials["metrics_version"]) == {metrics.SCORE_VERSION}

    # Optuna tried the method's best-known config first, and it wins with its known score
    assert result.best["config.x"] == 0.3 and result.best["config.y"] == 5 and result.best["config.kind"] == "b"
    assert result.best["metric.transfer_score"] == pytest.approx(quality(ToyConfig(x=0.3, y=5, kind="b")))

    # every stored history row and final metric is what the trial reported to Ray Tune
    store = Store(result.store)
    logged = ray_results(result.experiment_path)
    for _, row in trials.iterrows():
        reports = [r for r in logged[row["trial_id"]] if not r.get("trial.final")]
        history = store.history("toy", result.sweep_id, row["trial_id"])
        assert list(history["step"]) == [r["step"] for r in reports]
        for name in ("loss", "transfer_score"):
            want = [r["metrics"].get(name, math.nan) for r in reports]
            np.testing.assert_allclose(history[f"metric.{name}"], want, rtol=1e-12)
        assert row["wall_s"] == pytest.approx(logged[row["trial_id"]][-1]["time_total_s"])
        assert row["metric.step_s"] >= 0.15  # each step sleeps 0.15 s: the measured cost per step says so
        if row["status"] == "finished":
            final = logged[row["trial_id"]][-1]
            assert final["trial.final"] and final["trial.status"] == "finished"
            for name, value in final["metrics"].items():
                assert row[f"metric.{name}"] == pytest.approx(value)
            assert row["artifact.audio"].startswith(str(tmp_path / "store" / "artifacts"))
            audio, sr = sf.read(row["artifact.audio"])
            assert sr == 22050 and audio.shape == (2048,) and np.abs(audio).max() > 0
            from PIL import Image

            with Image.open(row["artifact.spectrogram"]) as image:
                assert image.size == (24, 16)
            assert store.load_checkpoint(row["artifact.checkpoint"]) == {"step": 8, "x": row["config.x"]}
        else:  # stopped by ASHA at its first rung: its metrics are the latest it reported
            assert row["steps"] < 8 and row["metric.transfer_score"] == pytest.approx(reports[-1]["metrics"]["transfer_score"])

    manifest = store.sweeps("toy")[0]
    assert manifest["sweep_id"] == result.sweep_id and manifest["objectives"] == [{"metric": "transfer_score", "mode": "max"}]
    assert "transfer_score" in result.summary()


def test_trials_one_at_a_time_never_meet(tmp_path: Path, ray_session: None) -> None:
    """The overlap check above can fail: with max_concurrent=1 no trial is ever inside the room with another."""
    meeting = room("alone")
    result = toy_sweep(tmp_path, samples=2, max_concurrent=1, overrides={"meet": "alone", "meet_s": 1.0})
    assert len(result.trials) == 2 and ray.get(meeting.most_inside.remote()) == 1


def test_trials_queued_behind_running_ones_raise_no_resource_warning(tmp_path: Path, ray_session: None,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Three trials of 2 CPUs on a 2-CPU Ray run one after another, the later ones pending for 2-4 s past a 0.5 s
    threshold: waiting one's turn is not a stall (a trial no node can hold does warn: ``test_sweep_gpu.py``)."""
    with caplog.at_level(logging.WARNING, logger="audiostyle.sweep._wait"):
        result = toy_sweep(tmp_path, samples=3, max_concurrent=3, cpus_per_trial=2, wait_warning_s=0.5,
                           scheduler="none", overrides={"sleep_s": 0.25})
    spans = sorted(zip(result.trials["started_at"], result.trials["ended_at"]))
    assert len(spans) == 3 and all(start >= end for (_, end), (start, _) in zip(spans, spans[1:]))
    assert (spans[2][0] - spans[0][0]).total_seconds() > 2 * 0.5  # the last one waited its turn past the threshold
    assert not [r.getMessage() for r in caplog.records if "have waited" in r.getMessage()]


RISING = [{"x": x, "y": 5, "kind": "a"} for x in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.35)]
"""Configs in rising order of quality (the toy's best-known config, better still, runs after them)."""


@pytest.mark.parametrize("scheduler", ["asha", "halving"])
def test_halving_promotes_by_score_where_asha_passes_draws_that_arrive_in_rising_order(
    scheduler: str, tmp_path: Path, ray_session: None
) -> None:
    """One trial at a time, each better than every one before it: asynchronous ASHA meets each at a rung with only
    worse trials recorded and lets all nine run their budget; synchronous halving waits for the nine at the first
    rung (steps 2 of 8), lets the best three go on to the second (step 6) and the best one finish."""
    result = toy_sweep(tmp_path, samples=len(RISING) + 1, max_concurrent=1, points=RISING, scheduler=scheduler,
                       search="random", overrides={"sleep_s": 0.02})
    trials = result.trials.sort_values("metric.transfer_score")
    assert len(trials) == 9 and trials["trial_id"].is_unique
    if scheduler == "asha":
        assert list(trials["status"]) == ["finished"] * 9 and trials["steps"].sum() == 72
        return
    # every CPU comes back (placement groups are removed asynchronously, in well under a second): with reused
    # actors one CPU stayed allocated after the sweep, with no actor or placement group alive, and the next
    # sweep in the session found one CPU short
    deadline = time.monotonic() + 10
    while ray.available_resources().get("CPU") != ray.cluster_resources()["CPU"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU") == ray.cluster_resources()["CPU"]
    assert list(trials["steps"]) == [2] * 6 + [6] * 2 + [8]
    assert list(trials["status"]) == ["stopped"] * 8 + ["finished"]
    assert (trials["config.x"].iloc[-1], trials["config.kind"].iloc[-1]) == (0.3, "b")
    # a trial stopped while it waited at a rung keeps the metrics it reached there, and Optuna learnt it as pruned
    stopped = trials[trials["status"] == "stopped"]
    np.testing.assert_allclose(stopped["metric.transfer_score"],
                               [quality(ToyConfig(x=x, y=5)) * s / 8 for x, s in zip(stopped["config.x"], stopped["steps"])])
    study = optuna.load_study(study_name=result.sweep_id, storage=journal_storage(result.store))
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE"] + ["PRUNED"] * 8
    assert [t.value for t in study.trials if t.state.name == "COMPLETE"] == [pytest.approx(quality(ToyConfig(0.3, 5, "b")))]


def test_a_ray_snapshot_of_no_trials_is_not_restored(tmp_path: Path, ray_session: None) -> None:
    """A driver stopped while Ray starts can leave a snapshot with no trials, whose restore Ray fails ("Failed to
    restore the run state") and then runs one trial: ``--resume`` must start such a sweep again from its plan."""
    from ray.tune.utils.serialization import TuneFunctionEncoder

    from audiostyle.sweep._run import _snapshot_saved

    result = toy_sweep(tmp_path, samples=1, max_concurrent=1)
    experiment = Path(result.experiment_path)
    assert _snapshot_saved(str(experiment), None)
    newest = max(experiment.glob("experiment_state-*.json"))
    state = json.loads(newest.read_text())
    assert state["trial_data"], "the finished sweep's snapshot names its trial"
    newest.write_text(json.dumps({**state, "trial_data": []}, cls=TuneFunctionEncoder))
    assert not _snapshot_saved(str(experiment), None)


def test_failing_and_diverging_trials_are_recorded_once_and_the_sweep_completes(tmp_path: Path, ray_session: None) -> None:
    result = toy_sweep(
        tmp_path,
        space={"fail": Choice(("none", "raise", "nan"))},
        points=[{"fail": "none"}, {"fail": "raise"}, {"fail": "nan"}],
        samples=3,
        scheduler="none",
        overrides={"sleep_s": 0.05, "x": 0.3},
    )
    rows = {row["config.fail"]: row for _, row in result.trials.iterrows()}
    assert set(rows) == {"none", "raise", "nan"}
    assert rows["none"]["status"] == "finished" and not isinstance(rows["none"]["error"], str)
    assert rows["raise"]["status"] == "failed" and rows["raise"]["error"].startswith("AudiostyleError: toy: asked to fail")
    assert rows["nan"]["status"] == "failed" and rows["nan"]["error"].startswith("FloatingPointError: toy: loss became nan")
    logged = ray_results(result.experiment_path)
    for kind in ("raise", "nan"):
        results = logged[rows[kind]["trial_id"]]
        # reports of steps 1 and 2 then the failure, once: the method's failure was not retried
        assert [r["step"] for r in results] == [1, 2, 2] and sum(bool(r.get("trial.final")) for r in results) == 1
        assert list(Store(result.store).history("toy", result.sweep_id, rows[kind]["trial_id"])["step"]) == [1, 2]
    assert result.best["trial_id"] == rows["none"]["trial_id"]
    # the searcher's own study (as Ray saved it) learnt the failures as failures, not as their last good score
    study = saved_study(result.experiment_path)
    states = {t.params["fail"]: (t.state.name, t.values) for t in study.trials}
    assert states == {"none": ("COMPLETE", [pytest.approx(rows["none"]["metric.transfer_score"])]),
                      "raise": ("FAIL", None), "nan": ("FAIL", None)}


def test_a_conditional_space_draws_each_field_from_its_parents_case(tmp_path: Path, ray_session: None) -> None:
    """A sweep of a define-by-run space: every trial's x lies in its kind's range, the store names the field, and
    the study (in the store's journal) keeps one Optuna parameter per case."""
    space = {"kind": Choice(("a", "b")), "x": Given("kind", {"a": Float(0.0, 0.2), "b": Float(0.8, 1.0)})}
    result = toy_sweep(tmp_path, space=space, samples=6, scheduler="none", search="random",
                       overrides={"sleep_s": 0.0})
    rows = result.trials
    assert len(rows) == 6 and set(rows["status"]) == {"finished"}
    assert not [c for c in rows.columns if "|" in c]  # config columns are fields, not Optuna's case parameters
    assert set(rows["config.kind"]) == {"a", "b"}
    for _, row in rows.iterrows():
        low, high = (0.0, 0.2) if row["config.kind"] == "a" else (0.8, 1.0)
        assert low <= row["config.x"] <= high, (row["config.kind"], row["config.x"])
    study = optuna.load_study(study_name=result.sweep_id, storage=journal_storage(result.store))
    assert len(study.trials) == 6 and {t.state.name for t in study.trials} == {"COMPLETE"}
    for trial in study.trials:
        kind = trial.params["kind"]
        assert set(trial.params) == {"kind", f"x|kind={kind}"}
        assert trial.distributions[f"x|kind={kind}"].high == (0.2 if kind == "a" else 1.0)
    manifest = Store(result.store).sweeps("toy")[0]
    assert manifest["space"]["x"]["type"] == "Given"  # a resumed sweep reads it back (test_sweep: round trip)


def test_pareto_sweep_uses_nsga2_and_returns_a_non_dominated_front(tmp_path: Path, ray_session: None) -> None:
    result = toy_sweep(tmp_path, objectives=sweep.PARETO_OBJECTIVES, samples=6, overrides={})
    manifest = Store(result.store).sweeps("toy")[0]
    assert manifest["args"]["search"] == "nsga2" and manifest["args"]["scheduler"] == "asha"
    assert saved_study(result.experiment_path).sampler._population_size == 2  # a quarter of 6 trials, at least 2
    assert [o["metric"] for o in manifest["objectives"]] == ["melody", "timbre_dist"]
    front = result.pareto
    assert len(front) >= 1
    values = result.trials[["metric.melody", "metric.timbre_dist"]].to_numpy()
    for cc, sd in front[["metric.melody", "metric.timbre_dist"]].to_numpy():
        assert not np.any((values[:, 0] >= cc) & (values[:, 1] <= sd) & ((values[:, 0] > cc) | (values[:, 1] < sd)))


def test_pbt_sweep_runs_and_stores_every_trial(tmp_path: Path, ray_session: None) -> None:
    # four trials at once on two CPUs, so that PBT compares them while they run
    result = toy_sweep(tmp_path, scheduler="pbt", samples=4, max_concurrent=4, cpus_per_trial=0.5, grace_steps=2,
                       overrides={"sleep_s": 0.1, "steps": 12, "report_every": 2})
    trials = result.trials
    assert len(trials) == 4 and set(trials["status"]) == {"finished"} and set(trials["steps"]) == {12}
    logged = ray_results(result.experiment_path)
    for _, row in trials.iterrows():  # the stored config is the one the trial ended with
        assert row["config.x"] == pytest.approx(logged[row["trial_id"]][-1]["config"]["x"])
        assert 0.0 <= row["config.x"] <= 1.0 and 0 <= row["config.y"] <= 10


def test_pbt_on_a_real_method_exploits_with_the_donors_weights_and_the_mutated_lr(tmp_path: Path, ray_session: None) -> None:
    from audiostyle.methods.space import Float, Int

    smoke = methods.get("wave_vae").smoke_overrides()
    result = sweep.run(
        "wave_vae", data="demo", smoke=True, store=str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"),
        space={"lr": Float(1e-4, 3e-3, log=True), "width": Int(4, 8)},  # width shapes the network
        overrides={**{k: v for k, v in smoke.items() if k != "width"}, "sr": 3150, "steps": 12},
        scheduler="pbt", samples=4, max_concurrent=4, cpus_per_trial=0.5, grace_steps=2, dashboard=False, verbose=0,
    )
    trials = result.trials.set_index("trial_id")
    assert set(trials["status"]) == {"finished"}, trials["error"].tolist()  # no donor checkpoint failed to load
    logged = ray_results(result.experiment_path)
    exploits = [(trial_id, after) for trial_id, results in logged.items() for before, after in zip(results, results[1:])
                if after.get("trial.restored_from") not in (None, trial_id, before.get("trial.restored_from"))]
    assert exploits, "PBT exploited no trial"
    for trial_id, after in exploits:
        donor = [r["config"] for r in logged[after["trial.restored_from"]]]
        # the donor's network (its architecture came with its weights), a learning rate of its own
        assert after["config"]["width"] in {c["width"] for c in donor}
        assert after["config"]["lr"] not in {c["lr"] for c in donor}
        # the mutated lr is the one the optimiser ran with: the trial's last checkpoint holds it
        state = Store(result.store).load_checkpoint(trials.loc[trial_id, "artifact.checkpoint"])
        assert state["optimizers"]["vae"]["param_groups"][0]["lr"] == pytest.approx(trials.loc[trial_id, "config.lr"])
        assert state["config"]["width"] == trials.loc[trial_id, "config.width"]


def test_driver_killed_mid_sweep_on_s3_resumes_with_one_row_per_trial(s3_bucket: str, tmp_path: Path) -> None:
    """Store and Ray storage on a real S3 server; the driver (and its local Ray) SIGKILLed mid-sweep, a trial
    running; ``--resume`` restores from S3, runs only the unfinished trials, keeps Optuna's history and removes the
    killed trials' scratch folders."""
    root = f"{s3_bucket}/results"
    args = ["--store", root, "--name", "killed", "--samples", "8", "--max-concurrent", "2",
            "--set", "sleep_s=0.2", "--scheduler", "none"]
    proc = toy_cli(tmp_path / "killed.log", *args, env={"TUNE_GLOBAL_CHECKPOINT_S": "1"}, start_new_session=True)
    store = Store(root)
    deadline = time.monotonic() + 180
    try:
        while len(store.trials("toy")) < 2:
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "the sweep wrote no rows within 180 s"
            time.sleep(0.5)
        time.sleep(1.5)  # let the experiment state catch up with the running trials
        while not (leaked := running_scratch("killed", store)):
            assert time.monotonic() < deadline, "no trial was running"
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait()
    before = store.trials("toy")
    assert 2 <= len(before) < 8
    assert all(folder.exists() for folder in leaked)  # a killed trial cannot remove its own

    resumed = toy_cli(tmp_path / "resumed.log", *args, "--resume")
    resumed.wait(timeout=240)
    output = (tmp_path / "resumed.log").read_text()
    assert resumed.returncode == 0, output[-4000:]
    after = store.trials("toy")
    assert len(after) == 8 and after["trial_id"].is_unique
    assert set(after["status"]) == {"finished"}, after[["trial_id", "status", "error"]].to_string()
    kept = after.set_index("trial_id").loc[before["trial_id"]]
    np.testing.assert_allclose(kept["metric.transfer_score"], before["metric.transfer_score"])
    # a trial that ended after Tune's last experiment snapshot re-runs from its last checkpoint (and its
    # row is replaced); the others were not run again
    rerun = (kept["ended_at"].to_numpy() != before["ended_at"].to_numpy()).sum()
    assert rerun <= 2, f"{rerun} of {len(before)} finished trials ran again"
    assert "best config" in output
    assert not any(folder.exists() for folder in leaked)  # reclaimed by the resumed sweep's trials
    # the sweep's Optuna study (in the store's journal on S3) went on with the sweep: every trial told once
    study = optuna.load_study(study_name="killed", storage=journal_storage(root))
    told = [t.user_attrs.get(RAY_TRIAL_ID) for t in study.trials if t.state.is_finished()]
    assert set(after["trial_id"]) <= set(told) and len(told) == len(set(told))
    # the trial the killed driver had asked for and never ran (if any) was taken up: one study trial per sample
    assert len(study.trials) == 8 and [t.number for t in study.trials if not t.state.is_finished()] == [], [
        (t.number, t.state.name, t.user_attrs.get(RAY_TRIAL_ID), t.params) for t in study.trials]

    # rows, history, artifacts and checkpoints all live on S3
    finished = after.iloc[0]
    assert finished["artifact.audio"].startswith(f"{root}/artifacts/method=toy/sweep=killed/")
    with store.fs.open(finished["artifact.audio"], "rb") as fh:
        audio, sr = sf.read(io.BytesIO(fh.read()))
    assert sr == 22050 and len(audio) == 2048
    assert store.load_checkpoint(finished["artifact.checkpoint"])["step"] == 8
    assert sorted(store.history("toy").groupby("trial_id")["step"].max()) == [8] * 8

    # the restored Optuna searcher kept its study: all 8 trials in one history, best-known first
    from ray.tune.search.optuna import OptunaSearch

    experiment = f"{root.removeprefix('s3://')}/_ray/killed"
    local = Path(tempfile.mkdtemp())
    for path in store.fs.glob(f"{experiment}/searcher-state-*.pkl"):
        store.fs.get(path, str(local / Path(path).name))
    searcher = OptunaSearch()
    searcher.restore_from_dir(str(local))
    study = searcher._ot_study
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 8 and len(study.trials) == 8
    assert study.trials[0].params == {"x": 0.3, "y": 5, "kind": "b"}
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in study.trials)


def running_scratch(sweep_id: str, store: Store) -> list[Path]:
    """The scratch folders of sweep ``sweep_id``'s trials that have no row in ``store`` yet."""
    done = set(store.trials("toy")["trial_id"])
    prefix = f"{PREFIX}{sweep_id}-"
    return [marker.parent for marker in Path(tempfile.gettempdir()).glob(f"{prefix}*/{MARKER}")
            if marker.parent.name.removeprefix(prefix).rsplit("-", 1)[0] not in done]


def wait_for_rows(store: Store, n: int, proc: subprocess.Popen, log: Path, within_s: float = 300) -> None:
    """Wait until ``store`` holds ``n`` toy rows, the sweep ``proc`` (output in ``log``) still running."""
    deadline = time.monotonic() + within_s
    while len(store.trials("toy")) < n:
        assert proc.poll() is None, log.read_text()[-4000:]
        assert time.monotonic() < deadline, f"the sweep wrote {len(store.trials('toy'))} of {n} rows in {within_s} s"
        time.sleep(0.3)


def study_trials(root: str, name: str) -> list:
    """The trials of sweep ``name``'s Optuna study in the store at ``root`` (none before its journal exists)."""
    try:
        return optuna.load_study(study_name=name, storage=journal_storage(root)).trials
    except KeyError:  # the study is not created yet
        return []


def reached(point: str, proc: subprocess.Popen, root: str, name: str, store: Store, samples: int) -> bool:
    """Whether the sweep ``name`` of the driver ``proc`` in the store at ``root`` has reached ``point``."""
    if point == "manifest written":
        return bool(store.sweeps("toy"))
    if point == "ray.init running":  # it has started Ray's first process and not yet connected
        return bool(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split())
    if point == "first trial asked":
        return bool(study_trials(root, name))
    return len(running_scratch(name, store)) == samples  # "every trial running"


@pytest.mark.parametrize(("point", "stop"), [("manifest written", signal.SIGKILL),
                                             ("first trial asked", signal.SIGKILL), ("ray.init running", signal.SIGTERM),
                                             ("manifest written", signal.SIGTERM), ("every trial running", signal.SIGTERM)])
def test_a_driver_stopped_before_its_first_trial_resumes_to_exactly_its_samples(point: str, stop: signal.Signals,
                                                                                 tmp_path: Path) -> None:
    """SIGKILL of the driver and its local Ray, or SIGTERM of the driver alone, before any trial ended: inside
    ``ray.init`` (Ray's own SIGTERM handler in place, nothing stored yet), once the manifest is written (no Ray state
    saved), once Optuna has handed out the first config (a study trial that never ran), or while every trial of the
    sweep runs (Ray marks the trials it stops TERMINATED, as if they had finished). SIGTERM stops it as Ctrl-C does:
    exit 130 and the command that goes on (``--resume``, or the same command where nothing was stored). That
    command ends with exactly ``--samples`` trials in the study, all complete, one row each."""
    root = str(tmp_path / "store")
    name = f"early-{uuid.uuid4().hex[:8]}"  # its own: scratch folders of other sweeps named alike must not count
    samples, concurrent = (2, 2) if point == "every trial running" else (3, 1)
    args = ["--store", root, "--name", name, "--samples", str(samples), "--max-concurrent", str(concurrent),
            "--set", "sleep_s=0.4", "--scheduler", "none"]
    log = tmp_path / "killed.log"
    proc = toy_cli(log, *args, env={"TUNE_GLOBAL_CHECKPOINT_S": "1"}, start_new_session=True)
    store = Store(root)
    stored = point != "ray.init running"
    deadline = time.monotonic() + 180
    try:
        while not reached(point, proc, root, name, store, samples):
            assert proc.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, f"no {point!r} within 180 s"
            time.sleep(0.1)
        if stop == signal.SIGTERM:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=180) == 130, log.read_text()[-4000:]
            said = log.read_text()
            assert ("Continue it with: " in said and "--resume" in said) if stored else "Start it again with: " in said
    finally:
        with contextlib.suppress(ProcessLookupError):  # the driver and its local Ray, or what SIGTERM left running
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(store.trials("toy")) == 0, "a trial ended before the stop: the test stops it too late"
    assert bool(store.sweeps("toy")) == stored

    again = toy_cli(tmp_path / "again.log", *args, *(["--resume"] if stored else []))
    assert again.wait(timeout=300) == 0, (tmp_path / "again.log").read_text()[-4000:]
    after = store.trials("toy")
    assert len(after) == samples and after["trial_id"].is_unique and set(after["status"]) == {"finished"}
    trials = study_trials(root, name)
    assert [t.state.name for t in trials] == ["COMPLETE"] * samples
    assert sorted(t.user_attrs[RAY_TRIAL_ID] for t in trials) == sorted(after["trial_id"])


def test_a_sweep_stopped_by_sigterm_then_sigkill_finishes_in_a_copy_of_its_store(tmp_path: Path) -> None:
    """SIGTERM between trials stops the driver as Ctrl-C does (exit 130, the ``--resume`` command printed);
    the store is copied; ``--resume`` of the copy is SIGKILLed mid-trial and resumed again: the copy ends with
    exactly one row and one Optuna trial per sample, its own artifacts, a working ``best --render``, and the
    original store is untouched."""
    from audiostyle import best

    original, copy = tmp_path / "store", tmp_path / "copy"
    args = ["--name", "stopped", "--samples", "4", "--max-concurrent", "2", "--set", "sleep_s=0.3", "--scheduler", "none"]
    env = {"TUNE_GLOBAL_CHECKPOINT_S": "1"}
    logs = [tmp_path / f"driver{i}.log" for i in range(3)]
    first = toy_cli(logs[0], "--store", str(original), *args, env=env)
    wait_for_rows(Store(str(original)), 1, first, logs[0])
    first.send_signal(signal.SIGTERM)  # the driver alone, as `kill PID` or a scheduler's stop does
    assert first.wait(timeout=180) == 130, logs[0].read_text()[-4000:]
    said = logs[0].read_text()
    assert f"Continue it with: python {REPO}/tests/toy_method.py --resume --store {original} --name stopped" in said
    assert "Tuner.restore" not in said
    before = Store(str(original)).trials("toy")
    assert 1 <= len(before) < 4
    shutil.copytree(original, copy)
    untouched = {p: p.stat().st_mtime_ns for p in original.rglob("*") if p.is_file()}

    second = toy_cli(logs[1], "--store", str(copy), *args, "--resume", env=env, start_new_session=True)
    wait_for_rows(Store(str(copy)), len(before) + 1, second, logs[1])
    os.killpg(second.pid, signal.SIGKILL)  # the driver and its local Ray, mid-trial
    second.wait()
    third = toy_cli(logs[2], "--store", str(copy), *args, "--resume", env=env)
    assert third.wait(timeout=300) == 0, logs[2].read_text()[-4000:]

    after = Store(str(copy)).trials("toy")
    assert len(after) == 4 and after["trial_id"].is_unique and set(after["status"]) == {"finished"}
    for column in ("artifact.dir", "artifact.audio", "artifact.checkpoint"):
        assert after[column].str.startswith(f"{copy}/artifacts/method=toy/sweep=stopped/").all(), after[column]
    assert all(Path(uri).is_file() for uri in after["artifact.audio"])
    study = optuna.load_study(study_name="stopped", storage=journal_storage(str(copy)))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert sorted(t.user_attrs[RAY_TRIAL_ID] for t in study.trials) == sorted(after["trial_id"])
    assert {p: p.stat().st_mtime_ns for p in original.rglob("*") if p.is_file()} == untouched
    assert len(Store(str(original)).trials("toy")) == len(before)

    content = tmp_path / "in.wav"
    sf.write(content, np.linspace(-0.5, 0.5, 4096, dtype=np.float32), 22050)
    argv = ["--method", "toy", "--store", str(copy), "--render", str(content), "--out", str(tmp_path / "out.wav")]
    assert best.main(argv) == 0
    best_x = after.sort_values("metric.transfer_score").iloc[-1]["config.x"]
    np.testing.assert_allclose(sf.read(tmp_path / "out.wav")[0], sf.read(content)[0] * best_x, atol=1e-6)


def test_a_halving_sweep_killed_after_its_first_rung_resumes_to_one_row_per_trial(tmp_path: Path) -> None:
    """The driver of a halving sweep is SIGKILLed once the first rung is decided (the losers' rows are written,
    the winners run or wait at the next rung); its scheduler's records die with it. The resumed sweep does not
    hang on a rung that lost its records: one row and one closed Optuna trial per sample. A trial stopped after
    Ray's last snapshot comes back paused and is ranked again at its rung; its row is replaced, never added."""
    store = tmp_path / "store"
    args = ["--name", "halving", "--samples", "6", "--max-concurrent", "2", "--set", "sleep_s=0.3",
            "--scheduler", "halving", "--search", "random"]
    env = {"TUNE_GLOBAL_CHECKPOINT_S": "1"}
    logs = [tmp_path / f"driver{i}.log" for i in range(2)]
    first = toy_cli(logs[0], "--store", str(store), *args, env=env, start_new_session=True)
    wait_for_rows(Store(str(store)), 1, first, logs[0])
    before = Store(str(store)).trials("toy")
    os.killpg(first.pid, signal.SIGKILL)  # the driver and its local Ray
    first.wait()
    assert set(before["status"]) == {"stopped"} and set(before["steps"]) == {2}, before[["status", "steps"]]
    second = toy_cli(logs[1], "--store", str(store), *args, "--resume", env=env)
    assert second.wait(timeout=300) == 0, logs[1].read_text()[-4000:]

    after = Store(str(store)).trials("toy")
    assert len(after) == 6 and after["trial_id"].is_unique, after[["trial_id", "status", "steps"]]
    assert (after["status"] == "finished").sum() >= 1 and (after[after["status"] == "stopped"]["steps"] < 8).all()
    kept = after.set_index("trial_id").loc[before["trial_id"]]
    assert (kept["steps"].to_numpy() >= before["steps"].to_numpy()).all()
    states = [t.state.name for t in study_trials(str(store), "halving")]
    assert len(states) == 6 and set(states) <= {"COMPLETE", "PRUNED"} and "COMPLETE" in states


def test_a_store_synced_to_s3_and_back_and_one_moved_each_resume_on_their_own(s3_bucket: str, tmp_path: Path) -> None:
    """A sweep stopped by SIGTERM; its store synced to the S3 server and back into a new folder (as ``aws s3 sync``
    would), and the original moved elsewhere. Each resumes to the full sweep, writing only to itself: the
    round-tripped copy's resume leaves the moved store as it was."""
    from audiostyle import fsio

    original, back, moved = tmp_path / "store", tmp_path / "back", tmp_path / "moved"
    args = ["--name", "synced", "--samples", "3", "--max-concurrent", "1", "--set", "sleep_s=0.3", "--scheduler", "none"]
    env = {"TUNE_GLOBAL_CHECKPOINT_S": "1"}
    first = toy_cli(tmp_path / "first.log", "--store", str(original), *args, env=env)
    wait_for_rows(Store(str(original)), 1, first, tmp_path / "first.log")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=180) == 130, (tmp_path / "first.log").read_text()[-4000:]
    before = Store(str(original)).trials("toy")
    assert 1 <= len(before) < 3

    fs, remote = fsio.filesystem(f"{s3_bucket}/synced")
    fs.put(f"{original}/", remote, recursive=True)
    fs.get(f"{remote}/", f"{back}/", recursive=True)
    shutil.move(original, moved)
    untouched = {p: p.stat().st_mtime_ns for p in moved.rglob("*") if p.is_file()}

    for store, log in ((back, tmp_path / "back.log"), (moved, tmp_path / "moved.log")):
        resumed = toy_cli(log, "--store", str(store), *args, "--resume", env=env)
        assert resumed.wait(timeout=300) == 0, log.read_text()[-4000:]
        after = Store(str(store)).trials("toy")
        assert len(after) == 3 and after["trial_id"].is_unique and set(after["status"]) == {"finished"}
        assert after["artifact.audio"].str.startswith(f"{store}/artifacts/").all(), after["artifact.audio"]
        assert all(Path(uri).is_file() for uri in after["artifact.audio"])
        kept = after.set_index("trial_id").loc[before["trial_id"]]
        np.testing.assert_allclose(kept["metric.transfer_score"], before["metric.transfer_score"])
        if store == back:  # the moved store saw nothing of the copy's resume
            assert {p: p.stat().st_mtime_ns for p in moved.rglob("*") if p.is_file()} == untouched
    assert not original.exists()


@pytest.mark.parametrize("method", methods.BUILTIN)
def test_smoke_sweep_of_every_method(method: str, smoke_store: str, tmp_path: Path) -> None:
    if method in ("shallow_cnn", "segnet"):  # the session's smoke store already ran these sweeps
        store = Store(smoke_store)
        trials = store.trials(method)
    else:
        result = smoke_sweep(method, str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
        store, trials = Store(result.store), result.trials
    assert len(trials) == 2 and trials["trial_id"].is_unique
    headline = methods.get(method).headline
    done = trials[trials["status"].isin(["finished", "stopped"])]
    assert len(done) >= 1, trials[["status", "error"]].to_string()
    assert np.isfinite(done[f"metric.{headline.metric}"]).all()
    assert len(store.history(method)) >= 1
    finished = done[done["status"] == "finished"]
    for uri in finished["artifact.audio"].dropna():
        audio, _ = sf.read(uri)
        assert audio.size > 0 and np.isfinite(audio).all()


def test_a_trial_past_its_time_budget_is_stopped_and_pruned_with_its_last_metrics(tmp_path: Path,
                                                                                    ray_session: None) -> None:
    result = toy_sweep(tmp_path, samples=2, scheduler="none", trial_budget_s=1.5,
                       overrides={"sleep_s": 0.4, "steps": 40, "report_every": 1})
    trials = result.trials
    assert len(trials) == 2 and set(trials["status"]) == {"stopped"}
    assert (trials["steps"] < 40).all() and (trials["steps"] >= 1).all()
    store = Store(result.store)
    for _, row in trials.iterrows():  # its last report is what the row keeps
        history = store.history("toy", result.sweep_id, row["trial_id"])
        assert row["metric.transfer_score"] == pytest.approx(history["metric.transfer_score"].iloc[-1])
    assert {t.state.name for t in saved_study(result.experiment_path).trials} == {"PRUNED"}


@pytest.mark.alone  # under a second test worker's load a cheap step's overhead outgrew the costly steps' sleep
def test_with_a_trial_budget_halving_ranks_trials_after_the_same_seconds_not_the_same_steps(
    tmp_path: Path, ray_session: None
) -> None:
    """Three configs with the best score per step but steps 15× as costly (0.3 s) against three cheap ones (0.02 s):
    rungs in seconds (a quarter of the 12 s budget, then three quarters) rank the trials on what they reached in the
    same running time, so the costly ones stop at the first rung with a few steps done and the two trials promoted
    past it (a third of six) are cheap ones."""
    slow = [{"x": x, "sleep_s": 0.3} for x in (0.30, 0.31, 0.32)]
    fast = [{"x": x, "sleep_s": 0.02} for x in (0.45, 0.46, 0.47)]
    result = toy_sweep(tmp_path, samples=6, points=slow + fast, scheduler="halving", search="random",
                       trial_budget_s=12.0, overrides={"y": 5, "kind": "a", "steps": 300, "report_every": 5},
                       space={"x": sweep.Float(0.0, 1.0), "sleep_s": sweep.Choice((0.02, 0.3))})
    trials = result.trials.set_index("config.sleep_s")
    assert len(trials) == 6
    costly, cheap = trials.loc[[0.3]], trials.loc[[0.02]]
    assert set(costly["status"]) == {"stopped"} and (costly["steps"] <= 15).all(), costly[["steps", "status"]]
    assert (cheap["steps"] > costly["steps"].max()).all()
    # the clock is the training seconds, carried over each pause and restore in a fresh process (never reset, and
    # never charged the process start: Ray's time_total_s, which is, runs ahead of it). A report made after the
    # pause was decided is replayed from the checkpoint: the replay's value is the one that counts
    for results in ray_results(result.experiment_path).values():
        by_step = {r["step"]: r["trial.train_s"] for r in results}
        assert [by_step[s] for s in sorted(by_step)] == sorted(by_step.values())
        assert results[-1]["trial.train_s"] < results[-1]["time_total_s"]
    assert set(trials.sort_values("steps").index[-2:]) == {0.02}  # the two that went on are cheap
    # ranked on steps, the costly configs would have won: at any equal step their score is the higher
    assert quality(ToyConfig(x=0.32, y=5)) > quality(ToyConfig(x=0.45, y=5))


def test_a_new_sweep_starts_from_the_best_configs_of_earlier_sweeps_in_the_store(tmp_path: Path,
                                                                                   ray_session: None) -> None:
    from audiostyle.sweep._plan import WARM_START_CONFIGS, Settings, new_plan

    first = toy_sweep(tmp_path, samples=4, scheduler="none", overrides={"sleep_s": 0.0})
    ranked = first.trials.sort_values("metric.transfer_score", ascending=False)
    best = [{k: row[f"config.{k}"] for k in ("x", "y", "kind")} for _, row in ranked.iterrows()]
    plan = new_plan("toy", Settings(overrides={"sleep_s": 0.0}), first.store)
    assert plan.warm_points == WARM_START_CONFIGS
    assert plan.points[:WARM_START_CONFIGS] == best[:WARM_START_CONFIGS]  # best first, then the reports' configs
    cold = new_plan("toy", Settings(overrides={"sleep_s": 0.0}, warm_start=False), first.store)
    assert cold.warm_points == 0 and cold.points == [{"x": 0.3, "y": 5, "kind": "b"}]
    assert new_plan("toy", Settings(), str(tmp_path / "empty")).warm_points == 0
