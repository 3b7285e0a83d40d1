"""Configs screened before they cost a trial: the shallow CNN's costly draws and clip-length misfits, and the
searcher telling Optuna a screened proposal failed without launching it."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from audiostyle import methods
from audiostyle.methods.space import draw
from audiostyle.methods.shallow_cnn import multiply_adds
from audiostyle.sweep._screen import MAX_COST_RATIO, ConfigScreen

SIX_SECONDS = {"samples": 6 * 22050, "pairs": 3}


@pytest.fixture(scope="module")
def cnn_screen() -> ConfigScreen:
    m = methods.get("shallow_cnn")
    return ConfigScreen.build(m, {}, m.default_space(), SIX_SECONDS, asked=m.best_known())


def test_no_default_shallow_cnn_draw_that_passes_costs_over_ten_times_the_median(cnn_screen: ConfigScreen) -> None:
    m, rng = methods.get("shallow_cnn"), np.random.default_rng(1)
    frames = 1 + SIX_SECONDS["samples"] // m.make_config().hop_length
    passed, refused = [], []
    for _ in range(400):
        params = draw(m.default_space(), rng)
        (refused if cnn_screen(params) else passed).append(params)
    costs = [multiply_adds(m.make_config(p), frames) * 3 for p in passed]
    assert max(costs) <= MAX_COST_RATIO * cnn_screen.median_cost
    assert len(refused) > 20 and len(passed) > 200  # the costly tail goes, most of the space stays
    teraflop = {"conv": "2d", "filters": 4096, "width": 22, "optimizer": "sgd", "layers": 1, "pooling": "none"}
    assert "the median cost per step of the space" in cnn_screen(teraflop)
    assert all(cnn_screen(p) is None for p in m.best_known())  # the reports' configs: asked for, never screened


def test_a_config_whose_widths_do_not_fit_the_clips_is_screened() -> None:
    m = methods.get("shallow_cnn")
    short = ConfigScreen.build(m, {}, m.default_space(), {"samples": 22050 // 2, "pairs": 1})  # half a second
    assert "frames are too few for 2 layer(s) of width 30 with pooling" in short(
        {"layers": 2, "width": 30, "pooling": "max", "conv": "1d", "filters": 128})
    assert short({"layers": 1, "width": 5, "pooling": "none", "conv": "1d", "filters": 128}) is None


def test_the_searcher_tells_optuna_a_screened_proposal_failed_and_launches_another(tmp_path) -> None:
    from audiostyle.sweep._search import SCREENED, RestorableOptunaSearch

    searcher = RestorableOptunaSearch(
        space={"x": optuna.distributions.FloatDistribution(0, 1),
                "k": optuna.distributions.CategoricalDistribution(["a", "b"])},
        metric="score", mode="max", sampler=optuna.samplers.RandomSampler(seed=0),
        screen=lambda p: "too big" if p["x"] > 0.3 else None)
    launched = [searcher.suggest(f"t{i}") for i in range(5)]
    assert all(p["x"] <= 0.3 for p in launched)
    trials = searcher._ot_study.trials
    screened = [t for t in trials if SCREENED in t.user_attrs]
    assert screened and all(t.state == optuna.trial.TrialState.FAIL and t.params["x"] > 0.3 for t in screened)
    assert len(trials) == len(screened) + 5
