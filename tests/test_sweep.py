"""Unit tests of the sweep engine's Ray-free parts: spaces, overrides, objectives, ranking, CLI, data cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from audiostyle import methods, sweep
from audiostyle.data.synth import demo_dataset
from audiostyle.errors import AudiostyleError
from audiostyle.methods.base import Objective
from audiostyle.space import Choice, Float, Int
from audiostyle.sweep_space import (
    describe,
    from_description,
    parse_overrides,
    restrict,
    seed_points,
    to_optuna,
    to_tune,
)

REPO = Path(__file__).resolve().parents[1]
methods.register("toy", "tests.toy_method:Toy")
SPACE = {"x": Float(1e-3, 1.0, log=True), "y": Int(0, 10), "kind": Choice(("a", "b"))}


def test_space_maps_to_optuna_and_tune_with_the_same_bounds() -> None:
    dists = to_optuna(SPACE)
    assert dists["x"] == optuna.distributions.FloatDistribution(1e-3, 1.0, log=True)
    assert dists["y"] == optuna.distributions.IntDistribution(0, 10)
    assert dists["kind"].choices == ("a", "b")
    domains = to_tune(SPACE)
    rng = np.random.default_rng(0)
    ys = {domains["y"].sample(random_state=rng) for _ in range(300)}
    assert ys == set(range(11))  # inclusive upper bound survives Tune's exclusive randint
    xs = [domains["x"].sample(random_state=rng) for _ in range(300)]
    assert 1e-3 <= min(xs) and max(xs) <= 1.0


def test_space_round_trips_through_the_manifest_description() -> None:
    import json

    assert from_description(json.loads(json.dumps(describe(SPACE)))) == SPACE


def test_overrides_pin_fields_and_best_known_points_are_restricted() -> None:
    searched = restrict(SPACE, {"kind": "b"})
    assert set(searched) == {"x", "y"}
    points = seed_points([{"x": 0.3, "y": 5, "kind": "b"}, {"x": 7.0, "y": 2}, {"kind": "a"}], searched, {"x": 0.5})
    # x=7 out of range, kind not searched; missing fields from the defaults (or the low end)
    assert points == [{"x": 0.3, "y": 5}, {"y": 2, "x": 0.5}]
    assert seed_points([{"y": 3}], searched, {"x": 50.0}) == [{"y": 3, "x": 1e-3}]


def test_set_values_parse_as_python_literals() -> None:
    assert parse_overrides(["alpha=0.006", "filters=512", "activation=tanh", "amp=True", "w=None", "l=[1, 2]"]) == {
        "alpha": 0.006, "filters": 512, "activation": "tanh", "amp": True, "w": None, "l": [1, 2]
    }
    with pytest.raises(AudiostyleError, match="KEY=VALUE"):
        parse_overrides(["alpha"])


def test_objectives_parse_and_reject_bad_modes() -> None:
    toy = methods.get("toy")
    assert sweep.parse_objectives(None, toy) == [Objective("transfer_score", "max")]
    assert sweep.parse_objectives(["melody:max", ("timbre_dist", "min")], toy) == list(sweep.PARETO)
    with pytest.raises(AudiostyleError, match="mode"):
        sweep.parse_objectives([("fad", "lowest")], toy)


def test_rank_and_pareto_front() -> None:
    trials = pd.DataFrame(
        {
            "trial_id": list("abcde"),
            "status": ["finished", "stopped", "finished", "failed", "finished"],
            "metric.melody": [0.9, 0.5, 0.4, 0.99, 0.8],
            "metric.timbre_dist": [2.0, 1.0, 1.5, 0.1, 2.5],
        }
    )
    ranked = sweep.rank(trials, Objective("timbre_dist", "min"))
    assert list(ranked["trial_id"]) == ["b", "c", "a", "e"]  # failed trials never rank
    front = sweep.pareto_front(trials, sweep.PARETO)
    assert sorted(front["trial_id"]) == ["a", "b"]  # c dominated by b, e by a


def test_prepared_data_comes_from_the_cache_the_second_time(tmp_path: Path) -> None:
    toy = methods.get("toy")
    data = demo_dataset(n_melodies=2, seconds=0.5)
    config = toy.make_config({})
    first = sweep.prepare_data(toy, data, config, str(tmp_path))
    second = sweep.prepare_data(toy, data, config, str(tmp_path))
    assert not first.hit and second.hit
    assert second.data["n_clips"] == len(data.clips)
    np.testing.assert_array_equal(second.data["first"], first.data["first"])
    other = sweep.prepare_data(toy, demo_dataset(n_melodies=2, seconds=0.5, seed=1), config, str(tmp_path))
    assert not other.hit  # different audio, different key


def test_bad_arguments_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AudiostyleError, match="unknown method"):
        sweep.run("no_such_method", store=str(tmp_path))
    with pytest.raises(AudiostyleError, match="scheduler='fifo'"):
        sweep.run("toy", store=str(tmp_path), scheduler="fifo")
    with pytest.raises(AudiostyleError, match="samples=0"):
        sweep.run("toy", store=str(tmp_path), samples=0)
    with pytest.raises(AudiostyleError, match="unknown config key"):
        sweep.run("toy", store=str(tmp_path), overrides={"nope": 1})
    with pytest.raises(AudiostyleError, match="nothing left to search"):
        sweep.run("toy", store=str(tmp_path), overrides={"x": 0.3, "y": 5, "kind": "b"})
    with pytest.raises(AudiostyleError, match="found no manifest"):
        sweep.run("toy", store=str(tmp_path), resume=True)


@pytest.mark.slow
def test_every_sweep_script_has_help_from_any_directory() -> None:
    scripts = ["shallow_cnn", "cyclegan", "segnet", "spec_gan", "wave_vae"]
    procs = {
        name: subprocess.Popen([sys.executable, str(REPO / "sweeps" / f"{name}.py"), "--help"], cwd="/",
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in scripts
    }  # in parallel: each pays Python's and the library's import time
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        for flag in ("--data", "--store", "--samples", "--steps", "--gpus-per-trial", "--cpus-per-trial",
                     "--max-concurrent", "--resume", "--smoke", "--seed", "--name", "--pareto", "--set", "--storage"):
            assert flag in stdout, (name, flag)
        assert ("--variant" in stdout) == (name in ("segnet", "wave_vae"))


def test_config_file_from_best_export_fixes_values(tmp_path: Path) -> None:
    path = tmp_path / "best.yaml"
    path.write_text("alpha: 0.01\nfilters: 512\nactivation: tanh\n")
    values = sweep.load_config_file(str(path))
    assert values == {"alpha": 0.01, "filters": 512, "activation": "tanh"}
    config = methods.get("shallow_cnn").make_config(values)
    assert (config.alpha, config.filters, config.activation) == (0.01, 512, "tanh")
    fixed, start = sweep.split_config({**values, "steps": 50}, {"alpha": Float(1e-4, 100.0, log=True)})
    assert fixed == {"filters": 512, "activation": "tanh", "steps": 50} and start == {"alpha": 0.01}
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(AudiostyleError, match="mapping"):
        sweep.load_config_file(str(tmp_path / "list.yaml"))
    with pytest.raises(AudiostyleError, match="cannot read config file"):
        sweep.load_config_file(str(tmp_path / "missing.yaml"))


def test_sweep_loads_only_the_domains_the_config_uses(tmp_path: Path) -> None:
    from audiostyle.data.synth import render_demo

    root = render_demo(tmp_path / "demo", n_melodies=4, seconds=4.0)
    cyclegan = methods.get("cyclegan")
    config = cyclegan.make_config({"domain_x": "piano", "domain_y": "violin"})
    assert cyclegan.data_domains(config) == ("piano", "violin")
    dataset = sweep.load_data(str(root), cache_dir=str(tmp_path / "cache"), domains=cyclegan.data_domains(config))
    assert dataset.domains == ("piano", "violin")
    shallow = methods.get("shallow_cnn")
    assert shallow.data_domains(shallow.make_config()) is None  # unnamed domains: load all, pick two


def test_store_links_the_output_wav_not_the_input_beside_it():
    from audiostyle.sweep_callback import _first

    uris = {n: f"s3://b/{n}" for n in ("a_input.wav", "transfer_x2y_input.wav", "transfer_x2y.wav", "transfer_x2y.png")}
    assert _first(uris, ".wav") == "s3://b/transfer_x2y.wav"
    assert _first({"reconstruction_0_input.wav": "r"}, ".wav") == "r"  # only an input: still linked
