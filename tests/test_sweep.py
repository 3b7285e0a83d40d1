"""Unit tests of the sweep engine's Ray-free parts: spaces, overrides, objectives, ranking, CLI, data cache."""

from __future__ import annotations

import json

import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from audiostyle import analysis, methods, sweep
from audiostyle.data.synth import demo_dataset
from audiostyle.errors import AudiostyleError
from audiostyle.metrics import PARETO_OBJECTIVES, Objective, parse_objectives
from audiostyle.methods.space import (
    Choice, DefineByRun, Float, Given, Int, check_space, describe, draw, flat, from_description, from_params,
    optuna_params, restrict, seed_points, to_optuna,
)
from audiostyle.sweep._cli import load_config_file, parse_overrides, split_config
from audiostyle.sweep._prepare import load_data, prepare_data
from audiostyle.sweep._search import to_tune

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


CONDITIONAL = {"kind": Choice(("a", "b")), "x": Given("kind", {"a": Float(0.0, 0.2), "b": Float(0.8, 1.0)}),
               "y": Given("kind", {"a": Int(0, 3), "b": Choice((7, 9))})}


def test_a_conditional_field_is_drawn_and_checked_in_the_case_its_parent_took() -> None:
    rng = np.random.default_rng(0)
    points = [draw(CONDITIONAL, rng) for _ in range(200)]
    assert {p["kind"] for p in points} == {"a", "b"}
    assert all(0.0 <= p["x"] <= 0.2 and 0 <= p["y"] <= 3 for p in points if p["kind"] == "a")
    assert all(0.8 <= p["x"] <= 1.0 and p["y"] in (7, 9) for p in points if p["kind"] == "b")
    assert from_description(json.loads(json.dumps(describe(CONDITIONAL)))) == CONDITIONAL
    assert restrict(CONDITIONAL, {"kind": "b"}) == {"x": Float(0.8, 1.0), "y": Choice((7, 9))}  # the case, plain
    assert flat(CONDITIONAL) == {"kind": Choice(("a", "b")), "x": Float(0.0, 1.0), "y": Int(0, 9)}
    # a first point's value from another case is dropped and refilled from this one (default, else its low end)
    assert seed_points([{"kind": "b", "x": 0.1, "y": 2}], CONDITIONAL, {"x": 0.5, "y": 9}) == [
        {"kind": "b", "x": 0.8, "y": 9}]
    with pytest.raises(AudiostyleError, match="depends on 'kind', which is not a Choice declared before it"):
        check_space({"x": CONDITIONAL["x"], "kind": CONDITIONAL["kind"]})
    with pytest.raises(AudiostyleError, match="kind='c' has no case"):
        check_space({"kind": Choice(("a", "c")), "x": CONDITIONAL["x"]})


def test_optuna_searches_a_conditional_space_with_one_parameter_per_case() -> None:
    """Define-by-run: each case is its own Optuna parameter with its own range, enqueued points land in their case,
    and the trial's config names the field (what the searcher hands Ray)."""
    import pickle

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial(optuna_params(CONDITIONAL, {"kind": "b", "x": 0.9, "y": 7})[0])
    space = pickle.loads(pickle.dumps(DefineByRun(CONDITIONAL)))  # Ray pickles the searcher with its space
    study.optimize(lambda t: space(t) or float(t.params.get("x|kind=a", 0.0)), n_trials=20)
    first = study.trials[0]
    assert first.params == {"kind": "b", "x|kind=b": 0.9, "y|kind=b": 7}
    assert from_params(CONDITIONAL, first.params) == {"kind": "b", "x": 0.9, "y": 7}
    for trial in study.trials:
        kind = trial.params["kind"]
        assert set(trial.params) == {"kind", f"x|kind={kind}", f"y|kind={kind}"}
        assert trial.distributions[f"x|kind={kind}"] == to_optuna({"x": CONDITIONAL["x"].case(kind)})["x"]
    assert {t.params["kind"] for t in study.trials} == {"a", "b"}
    with pytest.raises(AudiostyleError, match="conditional space has no fixed distributions"):
        to_optuna(CONDITIONAL)


def test_a_conditional_searcher_restores_takes_up_a_half_asked_trial_and_adopts_a_foreign_one(tmp_path: Path) -> None:
    """What a resumed sweep asks of its searcher, on a define-by-run space: Ray's pickle of it restores, a trial the
    stopped driver asked with only its parent drawn is taken up and finished in its case, and a trial the restored
    snapshot lacks is adopted under its case's parameter names."""
    from audiostyle.sweep._keys import FINAL
    from audiostyle.sweep._search import RestorableOptunaSearch
    from audiostyle.sweep._study import journal_storage

    def searcher() -> RestorableOptunaSearch:  # its study in a store's journal, as a sweep's is
        return RestorableOptunaSearch(space=DefineByRun(CONDITIONAL), metric="score", mode="max",
                                      sampler=optuna.samplers.RandomSampler(seed=0), fields=CONDITIONAL,
                                      study_name="conditional", storage=journal_storage(str(tmp_path / "store")))

    first = searcher()
    asked = first.suggest("t0")
    assert set(asked) == {"kind", "x", "y"}
    first.on_trial_complete("t0", {"score": 1.0, FINAL: True, "config": asked})
    first.save(str(tmp_path / "searcher.pkl"))
    half = first._ot_study.ask()  # the driver stopped after drawing the parent only
    half.suggest_categorical("kind", ["a", "b"])
    kind = half.params["kind"]

    restored = searcher()
    restored.restore(str(tmp_path / "searcher.pkl"))
    taken = restored.suggest("t1")
    assert restored._ot_trials["t1"]._trial_id == half._trial_id and len(restored._ot_study.trials) == 2
    assert taken["kind"] == kind and set(restored._ot_study.trials[1].params) == {"kind", f"x|kind={kind}",
                                                                                 f"y|kind={kind}"}
    assert CONDITIONAL["x"].case(kind).low <= taken["x"] <= CONDITIONAL["x"].case(kind).high
    restored.on_trial_complete("t7", {"score": 0.5, FINAL: True, "config": {"kind": "b", "x": 0.9, "y": 7}})
    adopted = restored._ot_study.trials[-1]
    assert adopted.params == {"kind": "b", "x|kind=b": 0.9, "y|kind=b": 7} and adopted.state.name == "COMPLETE"


def test_tune_samples_a_conditional_field_from_its_parents_case() -> None:
    """PBT's starting points (Ray Tune's variant generator) draw each conditional field in its parent's case."""
    from ray.tune.search.variant_generator import generate_variants

    variants = [config for _ in range(40) for _, config in generate_variants(to_tune(CONDITIONAL))]
    assert {v["kind"] for v in variants} == {"a", "b"}
    assert all((0.0 <= v["x"] <= 0.2) if v["kind"] == "a" else (0.8 <= v["x"] <= 1.0 and v["y"] in (7, 9))
               for v in variants)


def test_set_values_parse_by_the_config_field_types() -> None:
    shallow = methods.get("shallow_cnn").Config
    assert parse_overrides(["alpha=0.006", "filters=512", "activation=tanh", "pooling=none", "steps=5e2"], shallow) == {
        "alpha": 0.006, "filters": 512, "activation": "tanh", "pooling": "none", "steps": 500
    }
    assert methods.get("shallow_cnn").make_config(parse_overrides(["pooling=none"], shallow)).pooling == "none"
    toy = methods.get("toy").Config  # label: str | None
    assert parse_overrides(["label=none", "kind=b"], toy) == {"label": None, "kind": "b"}
    assert parse_overrides(["label=x"], toy) == {"label": "x"}
    with pytest.raises(AudiostyleError, match="KEY=VALUE"):
        parse_overrides(["alpha"], shallow)
    with pytest.raises(AudiostyleError, match="unknown config key 'nope'"):
        parse_overrides(["nope=1"], shallow)
    for item, message in [("steps=abc", "steps='abc' is not an integer"), ("steps=1.5", "steps='1.5' is not an integer"),
                          ("filters=True", "filters='True' is not an integer"), ("alpha=big", "not a number")]:
        with pytest.raises(AudiostyleError, match=message):
            parse_overrides([item], shallow)


def test_config_values_of_the_wrong_type_or_range_raise_clear_errors() -> None:
    shallow = methods.get("shallow_cnn")
    for values, message in [({"steps": "abc"}, "steps='abc' is not an integer"), ({"steps": 1.5}, "is not an integer"),
                            ({"filters": True}, "filters=True is not an integer"), ({"lr": 0.0}, "lr=0.0 is out of range")]:
        with pytest.raises(AudiostyleError, match=message):
            shallow.make_config(values)
    with pytest.raises(AudiostyleError, match="lr=0.0 is out of range"):
        methods.get("cyclegan").make_config({"lr": 0.0})
    assert shallow.make_config({"steps": 50.0}).steps == 50  # an int-valued float from a store or YAML file


def test_objectives_parse_and_reject_bad_modes() -> None:
    toy = methods.get("toy")
    assert parse_objectives(None, toy.headline) == [Objective("transfer_score", "max")]
    assert parse_objectives(["melody:max", ("timbre_dist", "min")], toy.headline) == list(PARETO_OBJECTIVES)
    assert parse_objectives(["melody", "timbre_dist"], toy.headline) == list(PARETO_OBJECTIVES)  # directions known
    with pytest.raises(AudiostyleError, match="mode"):
        parse_objectives([("fad", "lowest")], toy.headline)


def test_rank_and_pareto_front() -> None:
    trials = pd.DataFrame(
        {
            "trial_id": list("abcde"),
            "status": ["finished", "stopped", "finished", "failed", "finished"],
            "metric.melody": [0.9, 0.5, 0.4, 0.99, 0.8],
            "metric.timbre_dist": [2.0, 1.0, 1.5, 0.1, 2.5],
        }
    )
    ranked = analysis.rank(trials, Objective("timbre_dist", "min"))
    assert list(ranked["trial_id"]) == ["b", "c", "a", "e"]  # failed trials never rank
    front = analysis.pareto_front(trials, PARETO_OBJECTIVES)
    assert sorted(front["trial_id"]) == ["a", "b"]  # c dominated by b, e by a


def test_prepared_data_comes_from_the_cache_the_second_time(tmp_path: Path) -> None:
    toy = methods.get("toy")
    data = demo_dataset(n_melodies=2, seconds=0.5)
    config = toy.make_config({})
    first = prepare_data(toy, data, config, str(tmp_path))
    second = prepare_data(toy, data, config, str(tmp_path))
    assert not first.hit and second.hit
    assert second.data["n_clips"] == len(data.clips)
    np.testing.assert_array_equal(second.data["first"], first.data["first"])
    other = prepare_data(toy, demo_dataset(n_melodies=2, seconds=0.5, seed=1), config, str(tmp_path))
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
    values = load_config_file(str(path))
    assert values == {"alpha": 0.01, "filters": 512, "activation": "tanh"}
    config = methods.get("shallow_cnn").make_config(values)
    assert (config.alpha, config.filters, config.activation) == (0.01, 512, "tanh")
    fixed, start = split_config({**values, "steps": 50}, {"alpha": Float(1e-4, 100.0, log=True)})
    assert fixed == {"filters": 512, "activation": "tanh", "steps": 50} and start == {"alpha": 0.01}
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(AudiostyleError, match="mapping"):
        load_config_file(str(tmp_path / "list.yaml"))
    with pytest.raises(AudiostyleError, match="cannot read config file"):
        load_config_file(str(tmp_path / "missing.yaml"))


def test_sweep_loads_only_the_domains_the_config_uses(tmp_path: Path) -> None:
    from audiostyle.data.synth import render_demo

    root = render_demo(tmp_path / "demo", n_melodies=4, seconds=4.0)
    cyclegan = methods.get("cyclegan")
    config = cyclegan.make_config({"domain_x": "piano", "domain_y": "violin"})
    assert cyclegan.data_domains(config) == ("piano", "violin")
    dataset = load_data(str(root), cache_dir=str(tmp_path / "cache"), domains=cyclegan.data_domains(config))
    assert dataset.domains == ("piano", "violin")
    shallow = methods.get("shallow_cnn")
    assert shallow.data_domains(shallow.make_config()) is None  # unnamed domains: load all, pick two


def test_store_links_the_output_wav_not_the_input_beside_it():
    from audiostyle.sweep._callback import _first

    uris = {n: f"s3://b/{n}" for n in ("a_input.wav", "transfer_x2y_input.wav", "transfer_x2y.wav", "transfer_x2y.png")}
    assert _first(uris, ".wav") == "s3://b/transfer_x2y.wav"
    assert _first({"reconstruction_0_input.wav": "r"}, ".wav") == "r"  # only an input: still linked
    assert _first({"learning_curves.png": "l", "spectrogram.png": "s"}, ".png") == "s"  # the spectrograms


def _plan_from_cli(tmp_path: Path, *argv: str):
    """The plan a sweep script would run with these flags (the toy's script: steps budget 8 → 6 with --smoke)."""
    from audiostyle.sweep._cli import build_parser, settings_from_args
    from audiostyle.sweep._plan import Settings, new_plan

    budget = sweep.Budget(samples=6, steps=8, smoke_samples=2, smoke_steps=6, smoke_overrides={"report_every": 2})
    args = build_parser("toy", budget).parse_args(list(argv))
    settings = settings_from_args(args, budget, "toy", methods.get("toy").default_space())
    return new_plan("toy", Settings(**settings), str(tmp_path))


def test_the_sweep_seed_does_not_redraw_the_data_splits(tmp_path: Path) -> None:
    """Sweeps with different --seed fit, choose and test on the same melodies."""
    from audiostyle.data import load_dataset
    from audiostyle.data.synth import render_demo
    from audiostyle.sweep._plan import Settings
    from audiostyle.sweep._run import _dataset

    root = str(render_demo(tmp_path / "demo", n_melodies=10, seconds=3.5))
    cache = str(tmp_path / "cache")
    splits = lambda d: sorted((c.name, c.split) for c in d.clips)  # noqa: E731
    assert splits(load_dataset(root, seed=3, cache_dir=cache)) != splits(load_dataset(root, cache_dir=cache))
    drawn = [splits(_dataset(_plan_from_cli(tmp_path, "--seed", seed, "--data", root), Settings(), cache))
             for seed in ("0", "3")]
    assert drawn[0] == drawn[1] == splits(load_dataset(root, cache_dir=cache))


def test_the_budget_never_replaces_steps_the_user_fixed(tmp_path: Path) -> None:
    assert _plan_from_cli(tmp_path).budget_steps == 8 and _plan_from_cli(tmp_path, "--smoke").budget_steps == 6
    assert _plan_from_cli(tmp_path, "--smoke", "--set", "steps=50").budget_steps == 50
    (tmp_path / "best.yaml").write_text("steps: 40\nx: 0.3\n")
    plan = _plan_from_cli(tmp_path, "--smoke", "--config", str(tmp_path / "best.yaml"))
    assert plan.budget_steps == 40 and plan.points[0]["x"] == 0.3  # searched x: the first point, not fixed
    assert _plan_from_cli(tmp_path, "--config", str(tmp_path / "best.yaml"), "--set", "steps=20").budget_steps == 20
    assert _plan_from_cli(tmp_path, "--steps", "12").budget_steps == 12
    with pytest.raises(AudiostyleError, match="--steps 12 and steps=50"):
        _plan_from_cli(tmp_path, "--steps", "12", "--set", "steps=50")
    with pytest.raises(AudiostyleError, match="disagree"):
        sweep._plan.new_plan("toy", sweep._plan.Settings(steps=5, overrides={"steps": 7}), str(tmp_path))


def test_resume_reads_the_plan_back_and_refuses_conflicting_flags_listed(tmp_path: Path, capsys) -> None:
    from audiostyle.store import Store
    from audiostyle.sweep._plan import Plan, Settings, resumed_plan

    plan = _plan_from_cli(tmp_path, "--smoke", "--set", "kind=b", "--samples", "3")
    Store(str(tmp_path)).write_sweep(plan.to_manifest())
    back = resumed_plan(Store(str(tmp_path)), "toy", Settings(samples=3, overrides={"kind": "b", "steps": 6}))
    assert back == plan and Plan.from_manifest(plan.to_manifest(), plan.store) == plan
    # the manifest names no path of the store: opened elsewhere, the plan's storage follows the store
    manifest = plan.to_manifest()
    assert (manifest["storage"], manifest["experiment_path"]) == ("_ray", f"_ray/{plan.sweep_id}")
    assert str(tmp_path) not in json.dumps(manifest)
    assert Plan.from_manifest(manifest, "/elsewhere").storage == "/elsewhere/_ray"
    argv = ["--resume", "--store", str(tmp_path), "--samples", "9", "--gpus-per-trial", "1", "--set", "kind=a",
            "--seed", "0"]
    assert sweep.main("toy", "toy", sweep.Budget(), argv=argv) == 2
    message = capsys.readouterr().err
    assert "--samples: asked 9, the sweep ran with 3" in message
    assert "--gpus-per-trial: asked 1.0, the sweep ran with 0.0" in message
    assert "--set/--config kind: asked 'a', the sweep ran with 'b'" in message
    assert "--seed" not in message  # equal to the plan's: compatible


def test_failed_and_stopped_trials_reach_optuna_as_fail_and_pruned() -> None:
    from optuna.trial import TrialState

    from audiostyle.sweep._keys import FINAL, STATUS, STEP, tracked
    from audiostyle.sweep._search import RestorableOptunaSearch

    searcher = RestorableOptunaSearch(space=to_optuna({"x": Float(0.0, 1.0)}), metric=tracked("transfer_score"),
                                      mode="max", sampler=optuna.samplers.RandomSampler(seed=0))
    score = tracked("transfer_score")
    ends = {  # each trial's last result, as the trial function reports it
        "finished": {STEP: 8, score: 0.9, FINAL: True, STATUS: "finished"},
        "failed": {STEP: 3, score: float("nan"), FINAL: True, STATUS: "failed"},
        "failed-old": {STEP: 3, score: 0.7, FINAL: True, STATUS: "failed"},  # last good value carried
        "stopped": {STEP: 2, score: 0.2},
        "ray-error": {STEP: 2, score: 0.5},
    }
    for trial_id, result in ends.items():
        assert searcher.suggest(trial_id) is not None
        searcher.on_trial_result(trial_id, {STEP: 1, score: 0.1, "training_iteration": 1})
        searcher.on_trial_complete(trial_id, result, error=trial_id == "ray-error")
    states = [(t.state, t.values) for t in searcher._ot_study.trials]
    assert states == [(TrialState.COMPLETE, [0.9]), (TrialState.FAIL, None), (TrialState.FAIL, None),
                      (TrialState.PRUNED, [0.1]), (TrialState.FAIL, None)]
    # Optuna gives a pruned trial its last intermediate value (the rung's), not the result it was stopped with
    assert searcher._ot_study.trials[3].intermediate_values == {1: 0.1}


def test_a_resumed_searcher_takes_up_the_stopped_drivers_last_ask_and_writes_only_the_store_it_resumes(
        tmp_path: Path) -> None:
    import shutil

    from optuna.trial import TrialState

    from audiostyle.sweep._keys import FINAL, STATUS, STEP, tracked
    from audiostyle.sweep._search import RestorableOptunaSearch
    from audiostyle.sweep._study import fail_unrun, journal_storage

    def finished(score: float) -> dict:
        return {STEP: 8, tracked("transfer_score"): score, FINAL: True, STATUS: "finished"}

    original, copy = tmp_path / "store", tmp_path / "copy"
    searcher = RestorableOptunaSearch(space=to_optuna({"x": Float(0.0, 1.0)}), metric=tracked("transfer_score"),
                                      mode="max", sampler=optuna.samplers.RandomSampler(seed=0), study_name="killed",
                                      storage=journal_storage(str(original)), store_root=str(original))
    for trial_id in ("done", "running"):
        assert searcher.suggest(trial_id) is not None
    searcher.on_trial_complete("done", finished(0.9))
    (tmp_path / "experiment").mkdir()
    searcher.save_to_dir(str(tmp_path / "experiment"))  # Ray Tune's last snapshot of the searcher
    searcher.on_trial_complete("running", finished(0.5))  # told after the snapshot: the journal has it
    asked = searcher.suggest("asked")  # the driver's last ask, then it was killed
    shutil.copytree(original, copy)

    resumed = RestorableOptunaSearch()
    resumed.relocate(str(copy))  # what --resume --store copy does to the searcher Ray pickled
    resumed.restore_from_dir(str(tmp_path / "experiment"))
    resumed.on_trial_complete("running", finished(0.5))  # re-run from its checkpoint: told twice, no error
    assert resumed.suggest("next") == asked  # the next Ray trial takes up the ask that never ran
    resumed.on_trial_complete("next", finished(0.7))
    assert resumed.suggest("last") is not None
    resumed.on_trial_complete("last", finished(0.8))

    states = {name: [t.state for t in optuna.load_study(study_name="killed", storage=journal_storage(str(root))).trials]
              for name, root in (("copy", copy), ("original", original))}
    assert states["copy"] == [TrialState.COMPLETE] * 4  # one study trial per Ray trial, none left running
    assert states["original"] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.RUNNING]  # untouched
    assert fail_unrun(str(copy), "killed") == 0 and fail_unrun(str(original), "killed") == 1


def _journal_searcher(store: Path, study: str, space: dict | None = None):
    """A seeded random-sampling searcher of ``space`` (default one float ``x``) whose study is ``study`` in
    ``store``'s journal."""
    from audiostyle.sweep._keys import tracked
    from audiostyle.sweep._search import RestorableOptunaSearch
    from audiostyle.sweep._study import journal_storage

    space = space or {"x": Float(0.0, 1.0)}
    return RestorableOptunaSearch(space=to_optuna(space), metric=tracked("transfer_score"), mode="max",
                                  sampler=optuna.samplers.RandomSampler(seed=0), study_name=study,
                                  storage=journal_storage(str(store)), store_root=str(store))


def test_a_torn_snapshot_neither_adds_trials_nor_reruns_a_config(tmp_path: Path) -> None:
    """Ray's trial list saved after its searcher snapshot (a driver killed while S3 uploads): the restored
    generator counts the listed trials as created, and the searcher takes back the one it missed."""
    import json

    from ray.tune.experiment import Trial

    from optuna.trial import TrialState

    from audiostyle.sweep._keys import FINAL, RAY_TRIAL_ID, STATUS, STEP, tracked
    from audiostyle.sweep._search import ResumableSearchGenerator
    from audiostyle.sweep._study import journal_storage

    snapshot = tmp_path / "experiment"
    snapshot.mkdir()
    generator = ResumableSearchGenerator(_journal_searcher(tmp_path / "store", "torn"))
    generator._total_samples, generator._counter = 3, 1  # Ray's count after creating trial "a"
    first = generator.searcher.suggest("a")
    generator.save_to_dir(str(snapshot), session_str="s")  # the searcher's snapshot: one trial
    missed = generator.searcher.suggest("b")  # created and listed by Ray, then the driver was killed
    trials = []
    for trial_id in ("a", "b"):
        trial = Trial("__fake", stub=True, trial_id=trial_id)
        trials.append(list(trial.get_json_state()))
    (snapshot / "experiment_state-2026-12-03_17-00-00.json").write_text(json.dumps({"trial_data": trials}))

    restored = ResumableSearchGenerator(_journal_searcher(tmp_path / "store", "torn"))
    restored._total_samples = 3
    restored.restore_from_dir(str(snapshot))
    assert not restored.is_finished() and restored._counter == 2  # one trial left to create, not two
    restored.searcher.on_trial_complete("b", {STEP: 8, tracked("transfer_score"): 0.5, FINAL: True, STATUS: "finished"})
    assert restored.searcher.suggest("c") is not None
    study = optuna.load_study(study_name="torn", storage=journal_storage(str(tmp_path / "store")))
    # "b" told as its own study trial (not adopted as a copy), "c" a new ask (not "b" taken up again)
    assert [t.user_attrs[RAY_TRIAL_ID] for t in study.trials] == ["a", "b", "c"]
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.COMPLETE, TrialState.RUNNING]
    assert [t.params for t in study.trials[:2]] == [first, missed]


def test_a_searcher_snapshot_newer_than_rays_trial_list_lets_go_of_the_trial_ray_lost(tmp_path: Path) -> None:
    """The other tear: the searcher saved after asking for "b", Ray's trial list without "b". The restored count
    is Ray's, and the next Ray trial takes up "b"'s study trial instead of asking a ninth."""
    import json

    from optuna.trial import TrialState
    from ray.tune.experiment import Trial

    from audiostyle.sweep._keys import FINAL, RAY_TRIAL_ID, STATUS, STEP, tracked
    from audiostyle.sweep._search import ResumableSearchGenerator
    from audiostyle.sweep._study import journal_storage

    snapshot = tmp_path / "experiment"
    snapshot.mkdir()
    generator = ResumableSearchGenerator(_journal_searcher(tmp_path / "store", "newer"))
    generator._total_samples, generator._counter = 3, 2  # Ray's count after creating "a" and "b"
    generator.searcher.suggest("a")
    lost = generator.searcher.suggest("b")
    generator.save_to_dir(str(snapshot), session_str="s")  # the searcher's snapshot holds "a" and "b"
    trial = Trial("__fake", stub=True, trial_id="a")  # Ray's list was saved before "b" was created
    (snapshot / "experiment_state-2026-12-03_17-00-00.json").write_text(json.dumps({"trial_data": [list(trial.get_json_state())]}))

    restored = ResumableSearchGenerator(_journal_searcher(tmp_path / "store", "newer"))
    restored._total_samples = 3
    restored.restore_from_dir(str(snapshot))
    assert restored._counter == 1  # two trials left to create, as Ray holds one
    assert restored.searcher.suggest("c") == lost  # the first new trial runs "b"'s config, in its study trial
    restored.searcher.on_trial_complete("c", {STEP: 8, tracked("transfer_score"): 0.5, FINAL: True, STATUS: "finished"})
    assert restored.searcher.suggest("d") is not None
    study = optuna.load_study(study_name="newer", storage=journal_storage(str(tmp_path / "store")))
    assert [t.user_attrs[RAY_TRIAL_ID] for t in study.trials] == ["a", "c", "d"]
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.COMPLETE, TrialState.RUNNING]


def test_a_trial_asked_half_way_when_the_driver_stopped_is_taken_up_whole(tmp_path: Path) -> None:
    """The driver killed while Optuna wrote a new trial's values (one journal entry each): a RUNNING study trial
    with ``x`` and no ``y`` that no Ray trial holds. The next Ray trial takes it up and draws ``y``, instead of
    asking another trial and leaving that one running for ever."""
    from audiostyle.methods.space import Int
    from audiostyle.sweep._keys import RAY_TRIAL_ID
    from audiostyle.sweep._study import journal_storage

    space = {"x": Float(0.0, 1.0), "y": Int(0, 10)}
    stopped = _journal_searcher(tmp_path / "store", "half", space)
    half = stopped._ot_study.ask()
    half._suggest("x", to_optuna(space)["x"])  # the driver stopped before "y" was written

    config = _journal_searcher(tmp_path / "store", "half", space).suggest("a")
    assert set(config) == {"x", "y"} and config["x"] == half.params["x"] and 0 <= config["y"] <= 10
    study = optuna.load_study(study_name="half", storage=journal_storage(str(tmp_path / "store")))
    assert len(study.trials) == 1 and study.trials[0].user_attrs[RAY_TRIAL_ID] == "a"
    assert study.trials[0].params == config


def test_nsga2_population_is_sized_to_the_budget(tmp_path: Path) -> None:
    from audiostyle.sweep._plan import Settings, new_plan
    from audiostyle.sweep._search import make_searcher, population_size

    assert [population_size(n) for n in (4, 6, 16, 48, 1000)] == [2, 2, 4, 12, 50]
    assert population_size(16, 8) == 8
    with pytest.raises(AudiostyleError, match="at least 2"):
        population_size(16, 1)
    plan = new_plan("toy", Settings(objectives=PARETO_OBJECTIVES, samples=16), str(tmp_path))
    plan.max_concurrent = 2
    sampler = make_searcher(plan).searcher._sampler
    assert isinstance(sampler, optuna.samplers.NSGAIISampler) and sampler._population_size == 4
    plan.population = 6
    assert make_searcher(plan).searcher._sampler._population_size == 6


def test_pareto_asha_stops_dominated_trials_and_keeps_the_front() -> None:
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from audiostyle.sweep._schedule import ParetoASHA, nondominated_ranks

    costs = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [2.0, 2.0], [0.5, 0.5]])
    assert list(nondominated_ranks(costs)) == [0, 0, 1, 2, 0]
    scheduler = ParetoASHA(["cc", "sd"], ["max", "min"], time_attr="step", max_t=19, grace_period=2)
    assert sorted(scheduler.rungs) == [2, 6, 18]
    # (melody max, timbre_dist min) at the first rung; arrival order as listed
    arrivals = {"a": (0.9, 0.5), "b": (0.5, 0.1), "c": (0.4, 0.6), "d": (0.7, 0.3), "e": (0.3, 0.9), "f": (0.95, 0.8)}
    decisions = {t: scheduler.on_trial_result(None, SimpleNamespace(trial_id=t), {"step": 2, "cc": cc, "sd": sd})
                 for t, (cc, sd) in arrivals.items()}
    front = {"a", "b", "d", "f"}  # c is dominated by a, b and d; e by all but f
    assert {t for t, d in decisions.items() if d == TrialScheduler.CONTINUE} == front
    assert decisions["c"] == decisions["e"] == TrialScheduler.STOP
    # between rungs nothing is decided; a NaN (no value yet) never stops a trial
    assert scheduler.on_trial_result(None, SimpleNamespace(trial_id="a"), {"step": 3, "cc": 0.0, "sd": 9.0}) == "CONTINUE"
    assert scheduler.on_trial_result(None, SimpleNamespace(trial_id="g"), {"step": 2, "cc": np.nan, "sd": 1.0}) == "CONTINUE"


def test_pbt_mutates_only_continuous_fields() -> None:
    from audiostyle.sweep._schedule import mutable_space, pbt_mutations

    space = methods.get("cyclegan").default_space()
    mutable = mutable_space(space)
    assert set(mutable) == {"lambda_adv", "lambda_fwd", "lambda_bwd", "lambda_id", "lr"}
    assert set(pbt_mutations(space)) == set(mutable)  # n_blocks, ngf, d_layers, pool_size, ... stay per trial


def test_prepared_data_is_recomputed_when_any_metrics_module_changes(monkeypatch):
    from audiostyle.sweep import _prepare

    method = methods.get("shallow_cnn")
    before = _prepare._code_version(method)
    real = Path.read_bytes

    def edited(path: Path) -> bytes:  # as if the timbre model (a private module of the package) had been edited
        return real(path) + (b"# edited" if path.name == "_timbre.py" else b"")

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert _prepare._code_version(method) != before


def test_a_preset_fixes_its_fields_under_the_users_and_is_stored_with_the_config(tmp_path: Path) -> None:
    toy = methods.get("toy")
    config = toy.make_config({"preset": "small", "steps": 6})
    assert (config.preset, config.y, config.report_every, config.steps) == ("small", 7, 1, 6)  # steps: the user's
    assert toy.make_config().preset == "none" and toy.make_config().y == 2
    plan = _plan_from_cli(tmp_path, "--preset", "small")
    assert plan.overrides["y"] == 7 and plan.overrides["preset"] == "small" and plan.budget_steps == 4
    assert "y" not in plan.space and {"x", "kind"} <= set(plan.space)  # the preset's fields are not searched
    assert _plan_from_cli(tmp_path, "--preset", "small", "--set", "y=3").overrides["y"] == 3
    assert _plan_from_cli(tmp_path, "--preset", "small", "--smoke").overrides["report_every"] == 2  # smoke on top
    api = sweep._plan.new_plan("toy", sweep._plan.Settings(overrides={"preset": "small"}), str(tmp_path))
    assert "y" not in api.space and api.overrides["y"] == 7  # the Python API expands it the same way
    with pytest.raises(AudiostyleError, match="unknown preset 'gpu'; choose one of none, small"):
        _plan_from_cli(tmp_path, "--preset", "gpu")
    with pytest.raises(AudiostyleError, match="shallow_cnn defines no presets"):
        methods.get("shallow_cnn").expand_preset({"preset": "cpu"})


@pytest.mark.parametrize("name", [n for n in methods.BUILTIN if methods.get(n).presets()])
def test_a_sweep_at_each_builtin_preset_searches_its_optimisation(name: str, tmp_path: Path) -> None:
    """A preset fixes a method's size and budget, never all of its space: a sweep at it still searches (wave_vae's
    ``cpu`` preset once fixed lr, beta and everything else, and ``--preset cpu`` said "nothing left to search")."""
    method = methods.get(name)
    for preset in method.presets():
        plan = sweep._plan.new_plan(name, sweep._plan.Settings(overrides={"preset": preset}), str(tmp_path))
        assert plan.space and "lr" in plan.space, (preset, plan.space)


def test_help_lists_the_presets_with_their_values() -> None:
    from audiostyle.cli_help import config_epilog

    toy = methods.get("toy")
    text = config_epilog(toy, toy.default_space())
    assert "presets (--preset NAME):\n  small: y=7, steps=4, report_every=1" in text


def test_a_trial_stopped_at_its_last_report_is_finished_and_short_budgets_report_often(tmp_path: Path) -> None:
    from audiostyle.store import FAILED, FINISHED, STOPPED
    from audiostyle.sweep._callback import status_of
    from audiostyle.sweep._keys import STATUS, STEP
    from audiostyle.sweep._schedule import MIN_REPORTS

    assert status_of({STEP: 40}, budget_steps=40) == FINISHED  # ASHA's verdict came after the budget was spent
    assert status_of({STEP: 30}, budget_steps=40) == STOPPED and status_of(None, 40) == STOPPED
    assert status_of({STEP: 40, STATUS: FAILED}, budget_steps=40) == FAILED
    plan = _plan_from_cli(tmp_path, "--steps", "40")  # the toy reports every 2 steps: often enough
    assert "report_every" not in plan.overrides
    plan = _plan_from_cli(tmp_path, "--steps", "40", "--set", "report_every=20")  # the user's cadence stays
    assert plan.overrides["report_every"] == 20
    cnn = sweep._plan.new_plan("shallow_cnn", sweep._plan.Settings(steps=40), str(tmp_path))
    assert cnn.overrides["report_every"] == 40 // MIN_REPORTS  # its default (50) would report once, at the end
    trained = sweep._plan.new_plan("cyclegan", sweep._plan.Settings(steps=1000), str(tmp_path))
    assert (trained.overrides["report_every"], trained.overrides["checkpoint_every"]) == (250, 250)
    # halving pauses a trial at the report that reaches a rung: every report is a checkpoint to resume from
    asha = sweep._plan.new_plan("spec_gan", sweep._plan.Settings(scheduler="asha"), str(tmp_path))  # saves every 1000
    assert "checkpoint_every" not in asha.overrides
    halving = sweep._plan.new_plan("spec_gan", sweep._plan.Settings(scheduler="halving"), str(tmp_path))
    assert halving.overrides["checkpoint_every"] == 200 and "report_every" not in halving.overrides
    with pytest.raises(AudiostyleError, match="scheduler='halving' ranks trials on one objective"):
        sweep._plan.new_plan("toy", sweep._plan.Settings(scheduler="halving", objectives=["melody:max",
                                                                                           "timbre_dist:min"]), str(tmp_path))
