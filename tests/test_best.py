"""``python -m audiostyle.best``: ranking, filters, formats, export, render, and every clear error."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from audiostyle import analysis, best, methods
from audiostyle.audio import resample
from audiostyle.errors import AudiostyleError
from audiostyle.data import synth
from audiostyle.methods.base import TrialContext
from audiostyle.store import Store

UNET_TINY = {
    "steps": 4, "batch_size": 2, "report_every": 2, "checkpoint_every": 2, "n_mels": 64, "n_fft": 1024,
    "patch_frames": 32, "base_channels": 4, "max_channels": 8, "n_down": 2, "latent_channels": 4,
    "critic_hidden": 8, "val_clips": 1, "griffin_lim_iters": 2, "domain_x": "guitar", "domain_y": "violin",
}


def run_best(*args: str) -> tuple[int, str, str]:
    """``best.main`` in this process; (exit status, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = best.main(list(args))
    return code, out.getvalue(), err.getvalue()


def _row(i: int, score: float, *, sweep: str = "s1", status: str = "finished", **extra) -> dict:
    return {
        "trial_id": f"t{i}", "sweep_id": sweep, "method": "unet", "status": status,
        "error": "FloatingPointError: loss is nan at step 3" if status == "failed" else None,
        "steps": 100, "device": "cpu", "seed": 0, "wall_s": 1.0,
        "config": {"lr": 1e-3 * (i + 1), "critic_weight": float(10 * i + 1), "recon_loss": "l1" if i % 2 else "l2"},
        "metrics": {"transfer_score": score, "melody": 0.1 * i, "timbre_dist": 5.0 - i % 3, "fad": 10.0 + i},
        "artifact.dir": f"/x/t{i}", "artifact.audio": f"/x/t{i}/transfer.wav",
        "objective.metric": "transfer_score", "objective.mode": "max", **extra,
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Hand-written rows of unet: sweep s1 (single objective) and s2 (melody vs timbre_dist)."""
    s = Store(tmp_path / "results")
    scores = [0.30, 0.55, 0.10, 0.55, float("nan")]
    for i, score in enumerate(scores):
        s.write_trial(_row(i, score, status="failed" if np.isnan(score) else "finished"))
    s.write_trial(_row(5, 0.9, status="stopped"))
    s.write_trial(_row(6, 0.2, sweep="s2"))
    s.write_trial(_row(7, 0.1, sweep="s2"))
    s.write_trial(_row(8, 0.4, sweep="s2", **{"metrics": {"transfer_score": 0.4, "melody": 0.05, "timbre_dist": 1.0}}))
    s.write_sweep({"method": "unet", "sweep_id": "s1", "objectives": [{"metric": "transfer_score", "mode": "max"}]})
    s.write_sweep({"method": "unet", "sweep_id": "s2", "objectives": [
        {"metric": "melody", "mode": "max"}, {"metric": "timbre_dist", "mode": "min"}]})
    return s


def test_ranking_by_headline_and_filters(store: Store) -> None:
    sel = best.select(store, "unet")
    assert sel.objective.metric == "transfer_score" and sel.objective.mode == "max"
    # stopped trials count (valid metrics), failed ones do not; ties broken by trial id
    assert list(sel.ranked["trial_id"]) == ["t5", "t1", "t3", "t8", "t0", "t6", "t2", "t7"]
    assert list(best.select(store, "unet", sweep="s2").ranked["trial_id"]) == ["t8", "t6", "t7"]
    by_fad = best.select(store, "unet", metric="fad")  # a common metric: its own direction (min)
    assert by_fad.objective.mode == "min" and by_fad.best["trial_id"] == "t0"
    assert best.select(store, "unet", metric="fad", mode="max").best["trial_id"] == "t7"


def test_sweeps_scored_with_an_older_metrics_version_are_not_ranked_against_newer_ones(tmp_path: Path) -> None:
    s = Store(tmp_path / "results")
    s.write_trial(_row(0, 0.9, sweep="before"))  # written before the version was recorded: the highest score
    s.write_trial(_row(1, 0.8, sweep="old", metrics_version=8))
    s.write_trial(_row(2, 0.4, sweep="new", metrics_version=9))
    s.write_trial(_row(3, 0.3, sweep="new", metrics_version=9))
    sel = best.select(s, "unet")
    assert list(sel.ranked["trial_id"]) == ["t2", "t3"] and sel.left_out == {"before": None, "old": 8}
    code, out, _ = run_best("--method", "unet", "--store", s.root, "--top", "3")
    assert code == 0 and "unet trial by transfer_score (max): t2 of sweep new" in out
    assert "older metrics version, not comparable with v9: before (unrecorded), old (v8)" in out
    code, out, _ = run_best("--method", "unet", "--store", s.root, "--format", "json")
    payload = json.loads(out)
    assert payload["best"]["metrics_version"] == 9 and payload["left_out"] == {"before": None, "old": 8}
    assert best.select(s, "unet", sweep="old").best["trial_id"] == "t1"  # one sweep alone is ranked as it is
    assert list(analysis.best_per_method(s.trials())["trial_id"]) == ["t2"]  # the notebooks' winners too
    s.write_trial(_row(4, float("nan"), sweep="newer", status="failed", metrics_version=10))
    sel = best.select(s, "unet")  # a newer version that only failed hides nothing
    assert sel.best["trial_id"] == "t2" and sel.left_out == {"before": None, "old": 8}


def test_mode_alone_keeps_the_headline_and_refuses_to_flip_it(store: Store) -> None:
    assert best.select(store, "unet", mode="max").best["trial_id"] == "t5"  # agrees with the headline: the same
    code, out, err = run_best("--method", "unet", "--store", store.root, "--mode", "min")
    assert code == 2 and out == ""
    assert "--mode min contradicts unet's headline metric transfer_score" in err and "--metric NAME" in err
    code, out, _ = run_best("--method", "unet", "--store", store.root, "--metric", "fad", "--mode", "min")
    assert code == 0 and "by fad (min): t0" in out


def test_help_states_each_default_once_and_none_for_required_flags() -> None:
    text = best.parser().format_help()
    assert "(default: None)" not in text and "(default: 0)" in text  # --seed's 0 is a default worth stating
    method = " ".join(text.split("--method METHOD", 2)[2].split("--store")[0].split())
    assert "default" not in method  # required: no default


def test_pareto_front_of_a_multi_objective_sweep(store: Store) -> None:
    sel = best.select(store, "unet")
    assert set(sel.pareto) == {"s2"}
    # s2: t6 (cc .6, sd 5), t7 (cc .7, sd 4), t8 (cc .05, sd 1): t6 is dominated by t7
    assert list(sel.pareto["s2"]["trial_id"]) == ["t7", "t8"]
    code, out, _ = run_best("--method", "unet", "--store", store.root)
    assert code == 0 and "Pareto front of sweep s2 over melody (max), timbre_dist (min): 2 trial(s)" in out


def test_table_json_yaml_formats(store: Store) -> None:
    code, out, err = run_best("--method", "unet", "--store", store.root, "--top", "3")
    assert code == 0, err
    assert "Best unet trial by transfer_score (max): t5 of sweep s1 (stopped" in out
    assert "lr: 0.006" in out and "transfer_score: 0.9" in out and "audio: /x/t5/transfer.wav" in out
    assert "Top 3 of 8 usable trials:" in out
    code, out, _ = run_best("--method", "unet", "--store", store.root, "--top", "2", "--format", "json")
    payload = json.loads(out)
    assert payload["best"]["trial_id"] == "t5" and [t["trial_id"] for t in payload["top"]] == ["t5", "t1"]
    assert payload["best"]["config"] == {"lr": pytest.approx(0.006), "critic_weight": 51.0, "recon_loss": "l1"}
    assert payload["best"]["metrics"]["transfer_score"] == 0.9
    assert [t["trial_id"] for t in payload["pareto"]["s2"]["trials"]] == ["t7", "t8"]
    code, out, _ = run_best("--method", "unet", "--store", store.root, "--sweep", "s1", "--format", "yaml")
    payload = yaml.safe_load(out)
    assert payload["best"]["sweep_id"] == "s1" and "pareto" not in payload and "top" not in payload


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_export_loads_back_into_make_config(store: Store, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"best{suffix}"
    code, _, err = run_best("--method", "unet", "--store", store.root, "--export", str(path))
    assert code == 0 and str(path) in err
    loaded = yaml.safe_load(path.read_text()) if suffix == ".yaml" else json.loads(path.read_text())
    config = methods.get("unet").make_config(loaded)
    assert (config.lr, config.critic_weight, config.recon_loss) == (pytest.approx(0.006), 51.0, "l1")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "nope"], "unknown method 'nope': choose one of"),
        (["--method", "unet", "--metric", "bogus"], "metric 'bogus' is not in the store for unet: choose one of fad, melody, timbre_dist, transfer_score"),
        (["--method", "unet", "--sweep", "zz"], "unet has no sweep 'zz'"),
        (["--method", "segnet"], "has no trials of 'segnet'; it has trials of: unet"),
        (["--method", "unet", "--top", "0"], "--top=0 must be at least 1"),
        (["--method", "unet", "--render", "x.wav"], "--render IN.wav and --out OUT.wav go together"),
    ],
)
def test_clear_errors(store: Store, args: list[str], message: str) -> None:
    code, out, err = run_best(*args, "--store", store.root)
    assert code == 2 and out == ""
    assert message in err, err


def test_empty_or_missing_store_and_no_finished_trial(tmp_path: Path) -> None:
    code, _, err = run_best("--method", "unet", "--store", str(tmp_path / "missing"))
    assert code == 2 and "holds no trials (missing or empty)" in err and "sweeps/unet.py --smoke" in err
    s = Store(tmp_path / "failed")
    s.write_trial(_row(0, float("nan"), status="failed"))
    code, _, err = run_best("--method", "unet", "--store", s.root)
    assert code == 2 and "no finished trial of unet" in err and "{'failed': 1}" in err and "loss is nan" in err


def test_help_and_console_script() -> None:
    proc = subprocess.run([sys.executable, "-m", "audiostyle.best", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--render IN.wav" in proc.stdout and "--export FILE" in proc.stdout


# -- real trials: render ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Two real (tiny) unet trials on the demo set, stored the way a sweep stores them."""
    root = tmp_path_factory.mktemp("trained")
    store = Store(root / "results")
    method = methods.get("unet")
    dataset = synth.demo_dataset()
    data = method.prepare(dataset, method.make_config(UNET_TINY))
    for i, lr in enumerate([1e-3, 3e-3]):
        config = method.make_config({**UNET_TINY, "lr": lr})
        work = root / f"work{i}"
        ctx = TrialContext(artifact_dir=work, seed=i)
        final = method.train(config, data, ctx)
        torch.save(ctx.last_state, work / "checkpoint.pt")
        uris = store.put_artifacts("unet", "real", f"r{i}", work)
        store.write_trial(
            {"trial_id": f"r{i}", "sweep_id": "real", "method": "unet", "status": "finished", "steps": 4,
             "device": "cpu", "seed": i, "config": dataclasses.asdict(config), "metrics": final,
             "artifact.dir": store.artifact_dir("unet", "real", f"r{i}"), "artifact.audio": uris["x2y_output.wav"],
             "artifact.checkpoint": uris["checkpoint.pt"], "objective.metric": "transfer_score", "objective.mode": "max"},
            ctx.history,
        )
    return store


@pytest.mark.slow
def test_render_with_the_winners_checkpoint(trained_store: Store, tmp_path: Path) -> None:
    content = synth.demo_dataset().select("guitar", "val")[0]
    in_wav = tmp_path / "in.wav"
    sf.write(in_wav, content.audio[: int(1.7 * content.sr)], content.sr)
    out_wav = tmp_path / "out" / "rendered.wav"
    code, out, err = run_best("--method", "unet", "--store", trained_store.root, "--render", str(in_wav), "--out", str(out_wav))
    assert code == 0, err
    winner = best.select(trained_store, "unet").best["trial_id"]
    assert f": {winner} of sweep real" in out
    y, sr = sf.read(out_wav, dtype="float32")
    x, sr_in = sf.read(in_wav, dtype="float32")
    assert sr == sr_in and y.shape == x.shape and np.isfinite(y).all() and np.abs(y).max() > 0


@pytest.mark.slow
def test_render_writes_at_the_inputs_rate_or_sr_in_either_direction(trained_store: Store, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    content = synth.demo_dataset().select("guitar", "val")[0]
    in_wav = tmp_path / "in16k.wav"
    sf.write(in_wav, resample(content.audio[: content.sr], content.sr, 16000), 16000)
    unet = type(methods.get("unet"))
    asked: list[tuple[int, str]] = []
    transfer = unet.transfer

    def spy(self, config, state, audio, sr, direction="x2y", **kw):
        asked.append((sr, direction))
        return transfer(self, config, state, audio, sr, direction, **kw)

    monkeypatch.setattr(unet, "transfer", spy)
    rendered = {}
    for args, name in (((), "default"), (("--direction", "y2x"), "y2x"), (("--sr", "8000"), "8k")):
        out_wav = tmp_path / f"{name}.wav"
        code, _, err = run_best("--method", "unet", "--store", trained_store.root, "--render", str(in_wav),
                                "--out", str(out_wav), *args)
        assert code == 0, err
        rendered[name] = sf.read(out_wav, dtype="float32")
    assert asked == [(16000, "x2y"), (16000, "y2x"), (8000, "x2y")]  # the method resamples to its own rate inside
    assert rendered["default"][1] == rendered["y2x"][1] == 16000 and rendered["8k"][1] == 8000
    assert rendered["default"][0].shape == (16000,) and rendered["8k"][0].shape == (8000,)
    with pytest.raises(AudiostyleError, match="--direction is for the domain-pair methods"):
        best.render_audio(trained_store, pd.Series({"trial_id": "t"}), "shallow_cnn", str(in_wav), "o.wav",
                          direction="y2x")


@pytest.mark.slow
def test_render_errors(trained_store: Store, tmp_path: Path) -> None:
    code, _, err = run_best("--method", "unet", "--store", trained_store.root, "--render", str(tmp_path / "none.wav"),
                            "--out", str(tmp_path / "o.wav"))
    assert code == 2 and "does not exist" in err
    s = Store(tmp_path / "nockpt")
    s.write_trial(_row(0, 0.5))
    sf.write(tmp_path / "in.wav", np.zeros(2205, np.float32), 22050)
    code, _, err = run_best("--method", "unet", "--store", s.root, "--render", str(tmp_path / "in.wav"), "--out", str(tmp_path / "o.wav"))
    assert code == 2 and "has no checkpoint to render with" in err
