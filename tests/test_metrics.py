"""The common metrics on the demo set: melody, timbre, classifier with reject, paired distance, partial targets."""

from __future__ import annotations

import itertools
import math
import os
import pickle
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import mir_eval
import numpy as np
import pytest

from audiostyle import audio, calibrate, metrics
from audiostyle.data.dataset import AudioDataset, Clip
from audiostyle.errors import AudiostyleError
from audiostyle.metrics import _features, _reference

# On test_calibrate.py's worker under `pytest -n` (see there): the benchmark's sets are built once.
pytestmark = pytest.mark.xdist_group("bench_sets")


@pytest.fixture(scope="module")
def reference(demo: AudioDataset) -> metrics.Reference:
    return metrics.build_reference(demo)


@pytest.fixture(scope="module")
def by_key(demo: AudioDataset) -> dict[tuple[str, str], np.ndarray]:
    return {(c.domain, c.pair_key): c.audio for c in demo.clips}


@pytest.fixture(scope="module")
def feats(demo: AudioDataset) -> dict[tuple[str, str], metrics.ClipFeatures]:
    return {(c.domain, c.pair_key): metrics.cached_features(c.audio, c.sr) for c in demo.clips}


def _val_keys(demo: AudioDataset) -> list[str]:
    return sorted({c.pair_key for c in demo.select(split="val")})


def test_identical_audio_scores_perfectly(demo, reference, by_key):
    y = by_key["violin", _val_keys(demo)[0]]
    out = metrics.evaluate([y], [y], demo.sr, reference, "violin", true_targets=[y])
    assert set(out) == set(metrics.COMMON_METRICS)
    for name in ("melody", "pitch_acc", "chroma_sim", "onset_f1", "paired_frac"):
        assert out[name] == pytest.approx(1.0, abs=1e-6), name
    assert out["lsd_db"] == pytest.approx(0.0, abs=1e-9)
    assert out["target_prob"] > 0.5 and out["timbre_dist"] < 2.0
    assert out["transfer_score"] == pytest.approx(metrics.headline(out))
    assert out["transfer_score"] > 0.8


def test_pitch_accuracy_is_high_for_a_rerendering_and_low_for_another_melody(demo, feats):
    keys = sorted({c.pair_key for c in demo.clips})
    same = [metrics.pitch_accuracy(feats[b, k], feats[a, k]) for k in keys[:4] for a, b in
            itertools.permutations(("piano", "flute", "guitar"), 2)]
    other = [metrics.pitch_accuracy(feats["piano", k2], feats["piano", k1]) for k1, k2 in zip(keys, keys[1:])]
    assert np.mean(same) > 0.8 and min(same) > 0.5
    assert np.mean(other) < 0.25


def test_pitch_accuracy_is_mirex_raw_pitch_accuracy(demo, feats):
    k = _val_keys(demo)[0]
    out, ref = feats["violin", k], feats["piano", k]
    (f_out, v_out), (f_ref, v_ref) = metrics.pitch_track(out), metrics.pitch_track(ref)
    # mir_eval counts an unvoiced estimate with a pitch guess as a hit; audiostyle counts unvoiced output frames as
    # misses: give mir_eval no guess there (f0 0).
    est = np.where(v_out, f_out, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_v, ref_c, est_v, est_c = mir_eval.melody.to_cent_voicing(
            np.arange(f_ref.size) * 1.0, np.where(v_ref, f_ref, 0.0), np.arange(est.size) * 1.0, est)
        rpa = mir_eval.melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance=metrics.CENT_TOLERANCE)
    assert metrics.pitch_accuracy(out, ref) == pytest.approx(rpa, abs=0.02)
    import librosa

    octave_up = metrics.clip_features(librosa.effects.pitch_shift(ref.audio, sr=metrics.METRIC_SR, n_steps=12),
                                      metrics.METRIC_SR)
    assert metrics.pitch_accuracy(octave_up, ref) < 0.2  # octave errors are misses


def test_onsets_and_chroma_follow_the_melody(demo, feats):
    keys = sorted({c.pair_key for c in demo.clips})
    same = [metrics.melody_metrics(feats["guitar", k], feats["piano", k]) for k in keys]
    other = [metrics.melody_metrics(feats["guitar", k2], feats["piano", k1]) for k1, k2 in zip(keys, keys[1:])]
    for name in ("chroma_sim", "onset_f1", "melody"):
        assert np.mean([s[name] for s in same]) > np.mean([o[name] for o in other]) + 0.3, name


def test_melody_is_the_pitch_line_a_second_melody_costs_it_and_an_equaliser_does_not(demo, by_key):
    """A 50/50 mix with another melody keeps much of the content's chroma but breaks its pitch line; equalising the
    content toward another instrument moves its chroma (the partials' weights) but keeps the line."""
    keys = sorted({c.pair_key for c in demo.clips})
    eq, mixed = [], []
    for k1, k2 in zip(keys[:4], keys[1:5]):
        content, style = by_key["piano", k1], by_key["violin", k2]
        n = min(len(content), len(style))
        c = metrics.clip_features(content, demo.sr)
        eq.append(metrics.melody_metrics(metrics.clip_features(audio.eq_match(content, style, demo.sr),
                                                               demo.sr), c))
        mixed.append(metrics.melody_metrics(metrics.clip_features(0.5 * (content[:n] + style[:n]), demo.sr), c))
    for row in eq + mixed:
        assert row["melody"] == row["pitch_acc"]
    assert np.mean([r["melody"] for r in eq]) > np.mean([r["melody"] for r in mixed]) + 0.2
    assert np.mean([r["melody"] for r in eq]) > 0.8
    noise = metrics.clip_features(np.random.default_rng(0).standard_normal(demo.sr * 3) * 0.1, demo.sr)
    unpitched = metrics.melody_metrics(noise, noise)  # no pitch track: the chroma stands in
    assert math.isnan(unpitched["pitch_acc"]) and unpitched["melody"] == pytest.approx(unpitched["chroma_sim"])


@pytest.fixture(scope="module", params=["demo_set", "bench_set"])
def built_in(request) -> tuple[AudioDataset, metrics.Reference]:
    """The two built-in sets (20 train melodies each) and their references."""
    dataset = request.getfixturevalue(request.param)
    return dataset, metrics.build_reference(dataset)


def test_timbre_distance_tells_instruments_apart_whatever_the_melody(built_in):
    dataset, reference = built_in
    held = dataset.select(split="test")
    stats = np.stack([metrics.timbre_stats(metrics.clip_features(c.audio, c.sr)) for c in held])
    dist = reference.timbre.distances(stats)
    own = dist[np.arange(len(held)), [reference.domain_index(c.domain) for c in held]]
    assert np.mean(own) < 1.5 and np.mean(dist) > 2.5 * np.mean(own)
    assert all(d == c.domain for d, c in zip(np.array(reference.domains)[dist.argmin(axis=1)], held))


def test_relative_distance_is_one_for_the_content_and_zero_for_the_target(demo, by_key):
    k = _val_keys(demo)[0]
    c, t = (metrics.clip_features(by_key[d, k], demo.sr) for d in ("piano", "violin"))
    mix = metrics.clip_features(0.5 * (by_key["piano", k] + by_key["violin", k]), demo.sr)
    assert metrics.relative_distance(c, c, t) == pytest.approx(1.0)
    assert metrics.relative_distance(t, c, t) == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < metrics.relative_distance(mix, c, t) < 1.0


def test_classifier_is_accurate_on_held_out_clips_and_not_confident_on_noise(built_in):
    dataset, reference = built_in
    assert reference.holdout_accuracy >= 0.9
    probs = [metrics.target_probability(c.audio, reference, c.domain, c.sr) for c in dataset.select(split="test")]
    assert np.mean(probs) > 0.6
    rng = np.random.default_rng(0)
    n = 3 * dataset.sr
    white = rng.standard_normal(n).astype(np.float32)
    pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(np.arange(1, n // 2 + 2)), n).astype(np.float32)
    for name, y in {"white": 0.3 * white, "pink": 0.3 * pink / np.abs(pink).max(), "silence": np.zeros(n, np.float32),
                    "quiet noise": 1e-3 * white}.items():
        for domain in dataset.domains:
            assert metrics.target_probability(y, reference, domain, dataset.sr) < 0.05, (name, domain)


def test_a_timbre_space_fitted_on_one_library_names_anothers_instruments_once_they_are_located_in_it(
        bench_set, bench_opl3_set):
    """MuseScore General's reference moved whole names few of the OPL3 renders' instruments (each library's
    instruments sit elsewhere); with its space kept and the OPL3 train clips locating the instruments
    (``space_from``), at least 9 in 10, and the space itself (whitening, spreads, radii) is MuseScore General's."""
    whole = metrics.build_reference(bench_set)
    anchored = metrics.build_reference(bench_opl3_set, space_from=bench_set)
    assert anchored.space_hash == whole.dataset_hash and anchored.dataset_hash not in (
        whole.dataset_hash, metrics.dataset_hash(bench_opl3_set))
    for name in ("whitening", "mean", "domain_rms", "domain_std", "discriminant_rms", "discriminant_std"):
        np.testing.assert_array_equal(getattr(anchored.timbre, name), getattr(whole.timbre, name))
    held = [c for c in bench_opl3_set.clips if c.split != "train"]
    stats = np.stack([metrics.timbre_stats(metrics.clip_features(c.audio, c.sr)) for c in held])

    def accuracy(reference: metrics.Reference) -> float:
        guess = np.array(reference.domains)[reference.timbre.distances(stats).argmin(axis=1)]
        return float(np.mean([g == c.domain for g, c in zip(guess, held)]))

    assert accuracy(whole) < 0.6
    assert accuracy(anchored) == pytest.approx(anchored.holdout_accuracy) and anchored.holdout_accuracy >= 0.9


def test_a_reference_fit_is_the_same_whatever_the_blas_thread_count(demo, tmp_path, monkeypatch):
    """Tests run BLAS on one thread, a sweep's driver on two: summed in another order, the float32 features
    differed in the last digits and the whitening amplified it (0.1-0.2 in a matrix element), so processes fitted
    and cached different references. The fit now pins its BLAS to one thread: a 2-thread process fits this one."""
    monkeypatch.setattr(_reference, "_MEMO", {})
    here = metrics.build_reference(demo, cache_dir=tmp_path / "here")
    script = ("import pickle, sys; from audiostyle import metrics; from audiostyle.data import synth; "
              "pickle.dump(metrics.build_reference(synth.demo_dataset(), cache_dir=sys.argv[1]), open(sys.argv[2], 'wb'))")
    env = {**os.environ, **{var: "2" for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "there"), str(tmp_path / "ref.pkl")], env=env,
                   check=True, cwd=Path(__file__).resolve().parents[1])
    with open(tmp_path / "ref.pkl", "rb") as fh:
        there = pickle.load(fh)
    assert there.dataset_hash == here.dataset_hash
    np.testing.assert_array_equal(there.timbre.whitening, here.timbre.whitening)
    np.testing.assert_array_equal(there.timbre.centres, here.timbre.centres)
    assert pickle.dumps(there) == pickle.dumps(here)


def test_references_see_the_train_split_only(demo, tmp_path, monkeypatch):
    # Both fitted here, not read from the memo or a cache: this test checks that the val clips are unused.
    monkeypatch.setattr(_reference, "_MEMO", {})
    val = {c.name for c in demo.select(split="val")}
    changed = AudioDataset([Clip(**{**c.__dict__, "audio": c.audio[::-1].copy()}) if c.name in val else c
                            for c in demo.clips], demo.sr)
    reference, other = (metrics.build_reference(d, cache_dir=tmp_path) for d in (demo, changed))
    assert other.dataset_hash != reference.dataset_hash
    np.testing.assert_allclose(other.timbre.whitening, reference.timbre.whitening)
    np.testing.assert_allclose(other.frame_mean["piano"], reference.frame_mean["piano"])


def test_partial_true_targets_score_the_others_and_say_so(demo, reference, by_key, caplog):
    k1, k2 = _val_keys(demo)[:2]
    outs = [by_key["violin", k1], by_key["violin", k2]]
    contents = [by_key["piano", k1], by_key["piano", k2]]
    full = metrics.evaluate(outs, contents, demo.sr, reference, "violin", true_targets=outs)
    half = metrics.evaluate(outs, contents, demo.sr, reference, "violin", true_targets=[outs[0], None])
    none = metrics.evaluate(outs, contents, demo.sr, reference, "violin")
    assert half["paired_frac"] == 0.5 and "no true target" in caplog.text
    assert all(math.isfinite(half[k]) for k in metrics.METRIC_DIRECTIONS)
    assert half["lsd_db"] == pytest.approx(0.0, abs=1e-9)
    # The melody of an output with a true target is scored against the better of the content and the target (here the
    # output itself): the pitch tracker hears the piano and the violin renderings of one melody differently.
    assert none["melody"] < half["melody"] < full["melody"] == pytest.approx(1.0)
    # Unpaired: melody and timbre alone.
    assert none["paired_frac"] == 0.0 and math.isnan(none["lsd_db"])
    parts = metrics.headline_parts(none)
    assert none["transfer_score"] == pytest.approx(math.sqrt(parts["melody"] * parts["timbre"]))


def test_headline_grades_timbre_without_a_cliff_at_no_move():
    """Copying the content < halfway < the target; a 2 % timbre move that loses melody and distance does not
    outrank copying (a floor under the cube root gave it 2.3x copy-content's score), and the score rises with the
    shift at every step."""
    copy = metrics.headline({"melody": 1.0, "timbre_shift": 0.0, "lsd_rel": 1.0})
    nudged_worse = metrics.headline({"melody": 0.95, "timbre_shift": 0.02, "lsd_rel": 1.2})
    halfway = metrics.headline({"melody": 0.95, "timbre_shift": 0.5, "lsd_rel": 0.5})
    target = metrics.headline({"melody": 0.93, "timbre_shift": 1.0, "lsd_rel": 0.0})
    assert nudged_worse < copy < halfway < target
    along = [metrics.headline({"melody": 1.0, "timbre_shift": s, "lsd_rel": 1.0}) for s in np.linspace(0, 1, 21)]
    assert np.all(np.diff(along) > 0) and along[1] / along[0] < 1.5  # the 1e-3 floor: 3.7


def test_generated_samples_have_no_melody_columns(demo, reference, by_key):
    out = metrics.evaluate([by_key["violin", "m000"]], None, demo.sr, reference, "violin")
    assert all(math.isnan(out[k]) for k in (*metrics.MELODY_METRICS, metrics.HEADLINE))
    assert math.isfinite(out["fad"]) and math.isfinite(out["target_prob"])


def test_fad_of_held_out_sets_is_smallest_for_their_own_domain(demo, reference):
    for domain in demo.domains:
        val = [c.audio for c in demo.select(domain, "val")]
        fads = {t: metrics.evaluate(val, None, demo.sr, reference, t)["fad"] for t in demo.domains}
        assert min(fads, key=fads.get) == domain, fads


def test_frechet_distance_basics():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 5))
    mu, cov = a.mean(0), np.cov(a, rowvar=False)
    for mode in ("shrunk", "full", "diag"):
        assert metrics.frechet_distance(mu, cov, mu, cov, cov=mode) == pytest.approx(0.0, abs=1e-9)
    assert metrics.frechet_distance(mu, cov, mu + np.eye(5)[0] * 3, cov, cov="full") == pytest.approx(9.0)
    with pytest.raises(AudiostyleError, match="cov"):
        metrics.frechet_distance(mu, cov, mu, cov, cov="bogus")  # type: ignore[arg-type]


def test_lsd_ignores_gain_and_grows_with_spectral_difference(by_key):
    y = metrics.clip_features(by_key["guitar", "m000"], 22050)
    quieter = metrics.clip_features(0.1 * by_key["guitar", "m000"], 22050)
    rng = np.random.default_rng(1)
    noisy = metrics.clip_features(by_key["guitar", "m000"] + 1e-4 * rng.standard_normal(y.audio.size).astype(
        np.float32), 22050)
    other = metrics.clip_features(by_key["piano", "m000"], 22050)
    assert metrics.log_mel_distance(quieter, y) == pytest.approx(0.0, abs=1e-3)
    assert 0 < metrics.log_mel_distance(noisy, y) < metrics.log_mel_distance(other, y)


@pytest.mark.parametrize("content,style", [("piano", "violin"), ("flute", "violin"), ("guitar", "flute")])
def test_noise_never_brings_the_content_closer_to_a_breathy_or_bowed_target(demo, by_key, content, style):
    """Hiss fills the valleys between a bowed target's partials; under the per-frame mask floor it still costs."""
    rng = np.random.default_rng(0)
    for key in _val_keys(demo)[:2]:
        c, t = by_key[content, key], by_key[style, key]
        n = min(c.size, t.size)
        c, t = c[:n], t[:n]
        white = rng.standard_normal(n).astype(np.float32)
        pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(np.arange(1, n // 2 + 2)), n).astype(np.float32)
        fc, ft = metrics.clip_features(c, demo.sr), metrics.clip_features(t, demo.sr)
        rms = float(np.sqrt(np.mean(c**2)))
        for noise, snr in ((white, 30), (white, 20), (pink, 20)):
            noisy = c + noise * rms / float(np.sqrt(np.mean(noise**2))) * 10 ** (-snr / 20)
            rel = metrics.relative_distance(metrics.clip_features(noisy, demo.sr), fc, ft)
            assert rel > 1.1, (key, snr, rel)


def test_silence_kept_reads_a_drone_in_the_pauses(demo, by_key):
    playing = by_key["violin", _val_keys(demo)[0]][: 2 * demo.sr]
    content = np.concatenate([playing, np.zeros(demo.sr, np.float32)])  # 2 s of playing, 1 s pause
    fc = metrics.clip_features(content, demo.sr)
    anchors = calibrate.make_anchors(content, content, content, demo.sr)
    kept = {name: metrics.silence_level(metrics.clip_features(anchors[name], demo.sr), fc)
            for name in ("copy_content", "pause_hum", "pause_noise", "silence")}
    assert kept["copy_content"] < -70 and kept["silence"] == _features.POWER_FLOOR_DB
    assert -40 < kept["pause_hum"] < 0 and -40 < kept["pause_noise"] < 0
    gate = calibrate.pauses(content)
    assert gate[np.abs(content) > 0.1 * np.abs(content).max()].max() == 0  # never where the content plays
    assert gate[int(2.3 * demo.sr):].min() == pytest.approx(1.0)
    steady = metrics.clip_features(0.3 * np.sin(2 * np.pi * 440 * np.arange(2 * demo.sr) / demo.sr), demo.sr)
    assert math.isnan(metrics.silence_level(fc, steady))  # a content without pauses: undefined


def test_every_metric_has_a_direction():
    assert set(metrics.METRIC_DIRECTIONS.values()) <= {"max", "min"}
    assert metrics.HEADLINE in metrics.METRIC_DIRECTIONS and metrics.METRIC_DIRECTIONS[metrics.HEADLINE] == "max"
    assert set(metrics.COMMON_METRICS) == set(metrics.METRIC_DIRECTIONS) | set(metrics.DIAGNOSTICS)


def test_bad_inputs_raise_clear_errors(demo, reference, by_key):
    y = by_key["piano", "m000"]
    with pytest.raises(AudiostyleError, match="tuba"):
        metrics.evaluate([y], [y], demo.sr, reference, "tuba")
    with pytest.raises(AudiostyleError, match="one content clip per output"):
        metrics.evaluate([y, y], [y], demo.sr, reference, "piano")
    with pytest.raises(AudiostyleError, match="true_targets"):
        metrics.evaluate([y], [y], demo.sr, reference, "piano", true_targets=[y, y])
    with pytest.raises(AudiostyleError, match="NaN"):
        metrics.clip_features(np.full(4000, np.nan, dtype=np.float32), demo.sr)
    with pytest.raises(AudiostyleError, match="mono"):
        metrics.clip_features(np.zeros((2, 4000), dtype=np.float32), demo.sr)
    one = AudioDataset([Clip("piano", "p", y, demo.sr)], demo.sr)
    with pytest.raises(AudiostyleError, match="two domains"):
        metrics.build_reference(one)
    no_train = AudioDataset([Clip(c.domain, c.name, c.audio, c.sr, "val", c.pair_key) for c in demo.clips], demo.sr)
    with pytest.raises(AudiostyleError, match="train"):
        metrics.build_reference(no_train)


def test_reference_is_cached_in_the_data_cache_by_default(demo, tmp_path, monkeypatch):
    """Without ``cache_dir`` every process of a sweep shares one fit: it lands in ``$AUDIOSTYLE_CACHE/references``,
    and an unwritable cache only costs the file."""
    ref = metrics.build_reference(demo)
    monkeypatch.setenv("AUDIOSTYLE_CACHE", str(tmp_path))
    assert metrics.build_reference(demo) is ref
    files = list((tmp_path / "references").glob("reference-*.pkl"))
    assert len(files) == 1 and pickle.loads(files[0].read_bytes()).dataset_hash == ref.dataset_hash
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("AUDIOSTYLE_CACHE", str(blocked))
    assert metrics.build_reference(demo) is ref


def test_reference_is_cached_by_content_and_never_touches_the_network(demo, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("metrics tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(_reference, "_MEMO", {})  # forget references built by other tests in this process
    first = metrics.build_reference(demo, cache_dir=tmp_path)
    files = list(tmp_path.glob("reference-*.pkl"))
    assert len(files) == 1
    # The cache file is what a second call returns (a marked copy proves it was read, not refitted).
    cached = pickle.loads(files[0].read_bytes())
    cached.holdout_accuracy = -1.0
    files[0].write_bytes(pickle.dumps(cached))
    monkeypatch.setattr(_reference, "_MEMO", {})
    assert metrics.build_reference(demo, cache_dir=tmp_path).holdout_accuracy == -1.0
    np.testing.assert_array_equal(cached.timbre.whitening, first.timbre.whitening)
    assert metrics.build_reference(demo) is metrics.build_reference(demo)
    changed = AudioDataset([*demo.clips[:-1], Clip(**{**demo.clips[-1].__dict__, "audio": demo.clips[-1].audio * 0.5})],
                           demo.sr)
    assert metrics.dataset_hash(changed) != first.dataset_hash
    metrics.build_reference(changed, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("reference-*.pkl"))) == 2
    assert pickle.loads(pickle.dumps(first)).domains == demo.domains
