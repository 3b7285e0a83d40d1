"""audiostyle.sweep._monitor: dashboard names and the Ray metrics a sweep publishes."""

from __future__ import annotations

import json
import math
import textwrap
from types import SimpleNamespace

import pytest
from ray import tune
from ray.tune.experiment import Experiment

from audiostyle.errors import AudiostyleError
from audiostyle.sweep._monitor import (
    MonitorCallback,
    SweepMetrics,
    job_metadata,
    submission_id,
    trainable_name,
    trial_name_creator,
)
from tests.cluster_harness import Cluster, name_trainable, netns_skip_reason


def test_names_are_safe_and_carry_the_sweep():
    assert job_metadata("cyclegan", "s1", store="s3://b/p") == {
        "audiostyle.method": "cyclegan", "audiostyle.sweep_id": "s1", "audiostyle.store": "s3://b/p"}
    assert submission_id("shallow_cnn", "2026-11-21 09:30/x") == "audiostyle-shallow_cnn-2026-11-21-09-30-x"
    assert trainable_name("unet", "a b") == "audiostyle.unet.a-b"
    assert trial_name_creator("unet")(SimpleNamespace(trial_id="ab_00001")) == "unet_ab_00001"


def test_name_trainable_renames_a_copy_that_tune_registers_under_the_name():
    def train(config, data=None):
        return {"x": config["x"] + data}

    wrapped = tune.with_resources(tune.with_parameters(train, data=1), {"cpu": 1})
    named = name_trainable(wrapped, "unet", "s1")
    assert Experiment.get_trainable_name(named) == "audiostyle.unet.s1"
    assert train.__name__ == "train" and getattr(named, "_resources", None) == getattr(wrapped, "_resources", None)


def test_sweep_metrics_bookkeeping():
    m = SweepMetrics("s1", "unet", "transfer_score", "max")
    m.trial_started("a")
    m.trial_started("b")
    m.trial_started("a")  # a restart after a node failure is not a second trial
    assert m.running == 2
    m.steps(40, 2.0, "a")
    m.steps(10, 1.0, "b")
    assert m.total_steps == 50 and m.steps_per_second == pytest.approx(30.0)
    m.trial_result({"transfer_score": float("nan")})
    assert m.best is None
    m.trial_finished("finished", {"transfer_score": 0.4}, "a")
    m.trial_finished("finished", {"transfer_score": 0.9}, "a")  # reported twice: counted once
    m.trial_finished("stopped", {"transfer_score": 0.3}, "b")
    assert m.counts == {"finished": 1, "failed": 0, "stopped": 1}
    assert m.best == 0.4 and m.running == 0 and m.steps_per_second == 0.0
    low = SweepMetrics("s1", "spec_gan", "fad", "min")
    for value in (5.0, 2.0, 3.0):
        low.trial_result({"fad": value})
    assert low.best == 2.0
    with pytest.raises(AudiostyleError, match="status"):
        m.trial_finished("crashed", None, "c")
    with pytest.raises(AudiostyleError, match="mode"):
        SweepMetrics("s1", "unet", "x", "up")
    with pytest.raises(AudiostyleError, match="≥ 0"):
        m.steps(-1, 1.0)


DRIVER = textwrap.dedent(
    """
    import json, math, sys, time, urllib.request
    import ray
    from ray import tune
    from audiostyle.sweep._monitor import MonitorCallback
    from tests.cluster_harness import name_trainable

    ray.init(logging_level="ERROR")  # RAY_ADDRESS: the test cluster

    def train(config):
        if config["x"] < 0:
            raise RuntimeError("this trial fails on purpose")
        for step in range(5, 25, 5):
            tune.report({"score": config["x"] * step, "step": step})

    callback = MonitorCallback(
        "mon1", "toy", "score", "max",
        status_of=lambda trial: "stopped" if trial.config["x"] == 1 else "finished")
    tune.Tuner(
        name_trainable(train, "toy", "mon1"),
        param_space={"x": tune.grid_search([1, 2, 3, -1])},
        tune_config=tune.TuneConfig(max_concurrent_trials=4),
        run_config=tune.RunConfig(callbacks=[callback], storage_path=sys.argv[1], verbose=0),
    ).fit()

    wanted = ("ray_audiostyle_trials_total", "ray_audiostyle_best_metric", "ray_audiostyle_steps_total",
              "ray_audiostyle_trials_running")
    lines = []
    for _ in range(30):  # metrics reach the node's exporter about once a second
        callback.metrics.publish()  # as the callback does on every Tune step while a sweep runs
        page = urllib.request.urlopen("http://127.0.0.1:8080/metrics").read().decode()
        lines = [l for l in page.splitlines() if 'sweep_id="mon1"' in l]
        if all(any(l.startswith(w) for l in lines) for w in wanted) and sum(
                float(l.rsplit(" ", 1)[1]) for l in lines if l.startswith(wanted[0])) >= 4:
            break
        time.sleep(0.5)
    m = callback.metrics
    print("RESULT " + json.dumps({"counts": m.counts, "best": m.best, "steps": m.total_steps,
                                   "running": m.running, "lines": lines}))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(netns_skip_reason() is not None, reason=netns_skip_reason() or "")
def test_monitor_callback_publishes_ray_metrics_from_a_real_tune_run(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    with Cluster(workers=0, head_cpus=4) as cluster:
        out = cluster.run_driver(script, str(tmp_path / "ray"))
    (line,) = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    assert result["counts"] == {"finished": 2, "stopped": 1, "failed": 1}
    assert result["best"] == 60.0 and result["running"] == 0
    assert result["steps"] == 3 * 20
    exported: dict[tuple[str, str], float] = {}
    for l in result["lines"]:
        name = l.split("{")[0]
        tag = next((t for t in ("finished", "stopped", "failed") if f'status="{t}"' in l), "")
        exported[(name, tag)] = exported.get((name, tag), 0.0) + float(l.rsplit(" ", 1)[1])
    assert exported[("ray_audiostyle_trials_total", "finished")] == 2
    assert exported[("ray_audiostyle_trials_total", "stopped")] == 1
    assert exported[("ray_audiostyle_trials_total", "failed")] == 1
    assert exported[("ray_audiostyle_best_metric", "")] == 60.0
    assert exported[("ray_audiostyle_steps_total", "")] == 60.0
    assert exported[("ray_audiostyle_trials_running", "")] == 0.0
    assert not math.isnan(exported[("ray_audiostyle_steps_per_second", "")])


def test_monitor_callback_is_a_tune_callback():
    assert isinstance(MonitorCallback("s", "m"), tune.Callback)
