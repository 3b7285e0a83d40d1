"""The common metrics on the demo set: perfect scores for identical audio, content vs timbre, classifier, cache."""

from __future__ import annotations

import itertools
import math
import pickle
import socket

import numpy as np
import pytest

from audiostyle import metrics
from audiostyle.data.dataset import AudioDataset, Clip
from audiostyle.errors import AudiostyleError


@pytest.fixture(scope="module")
def reference(demo: AudioDataset) -> metrics.Reference:
    return metrics.build_reference(demo)


@pytest.fixture(scope="module")
def by_key(demo: AudioDataset) -> dict[tuple[str, str], np.ndarray]:
    return {(c.domain, c.pair_key): c.audio for c in demo.clips}


@pytest.fixture(scope="module")
def feats(demo: AudioDataset) -> dict[tuple[str, str], metrics.ClipFeatures]:
    return {(c.domain, c.pair_key): metrics.clip_features(c.audio, c.sr) for c in demo.clips}


def test_identical_audio_scores_perfectly(demo, reference, by_key):
    y = by_key["violin", "m001"]
    out = metrics.evaluate([y], [y], demo.sr, reference, "violin", styles=[y], true_targets=[y])
    assert set(out) == set(metrics.COMMON_METRICS)
    assert out["content_corr"] == pytest.approx(1.0, abs=1e-6)
    assert out["style_dist"] == pytest.approx(0.0, abs=1e-9)
    assert out["lsd_db"] == pytest.approx(0.0, abs=1e-9)
    assert out["target_prob"] > 0.9
    assert out["transfer_score"] == pytest.approx(math.sqrt(out["target_prob"]), rel=1e-6)


def test_other_sample_rate_is_resampled_to_the_metric_rate(by_key):
    import librosa

    y = by_key["flute", "m002"]
    y16 = librosa.resample(y, orig_sr=22050, target_sr=16000)
    assert metrics.content_correlation(y16, y16, sr=16000) == pytest.approx(1.0, abs=1e-6)
    # The same clip at two rates lands in the same feature space: content nearly identical.
    assert metrics.content_correlation(y16, metrics.clip_features(y, 22050), sr=16000) > 0.9


def test_same_melody_on_two_instruments_keeps_content_but_not_style(demo, reference, feats):
    keys = sorted({c.pair_key for c in demo.clips})
    same_melody = [(feats[a, k], feats[b, k]) for k in keys for a, b in itertools.combinations(demo.domains, 2)]
    same_inst = [(feats[d, k1], feats[d, k2]) for d in demo.domains for k1, k2 in itertools.combinations(keys, 2)]

    content_sm = np.mean([metrics.content_correlation(a, b) for a, b in same_melody])
    content_si = np.mean([metrics.content_correlation(a, b) for a, b in same_inst])
    style_sm = np.mean([metrics.style_distance(a, reference, style=b) for a, b in same_melody])
    style_si = np.mean([metrics.style_distance(a, reference, style=b) for a, b in same_inst])
    # Melody kept across instruments, lost across melodies.
    assert content_sm > 0.6
    assert content_si < 0.2
    # Timbre: one instrument is near itself whatever the melody, two instruments are far apart.
    assert style_sm > 1.8 * style_si
    # The per-idea parts agree with their mean.
    a, b = same_melody[0]
    assert metrics.content_correlation(a, b) == pytest.approx(
        0.5 * (metrics.chroma_correlation(a, b) + metrics.onset_correlation(a, b))
    )


def test_classifier_is_accurate_on_held_out_clips(demo, reference, by_key):
    val = demo.select(split="val")
    assert val, "the demo set has held-out melodies"
    assert reference.holdout_accuracy >= 0.9
    probs = [metrics.target_probability(c.audio, reference, c.domain) for c in val]
    assert np.mean(probs) > 0.7
    assert all(0.0 <= p <= 1.0 for p in probs)


def test_fad_of_held_out_sets_is_smallest_for_their_own_domain(demo, reference):
    for domain in demo.domains:
        val = [c.audio for c in demo.select(domain, "val")]
        fads = {t: metrics.evaluate(val, val, demo.sr, reference, t)["fad"] for t in demo.domains}
        assert min(fads, key=fads.get) == domain, fads


def test_frechet_distance_basics():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 5))
    mu, cov = a.mean(0), np.cov(a, rowvar=False)
    for mode in ("shrunk", "full", "diag"):
        assert metrics.frechet_distance(mu, cov, mu, cov, cov=mode) == pytest.approx(0.0, abs=1e-9)
    # A pure mean shift of 3 in one coordinate costs 9.
    assert metrics.frechet_distance(mu, cov, mu + np.eye(5)[0] * 3, cov, cov="full") == pytest.approx(9.0)
    with pytest.raises(AudiostyleError, match="cov"):
        metrics.frechet_distance(mu, cov, mu, cov, cov="bogus")  # type: ignore[arg-type]


def test_unpaired_lsd_is_nan_and_domain_mean_style(demo, reference, by_key):
    y = by_key["piano", "m003"]
    out = metrics.evaluate([y, y], [y, y], demo.sr, reference, "guitar")
    assert math.isnan(out["lsd_db"])
    assert out["style_dist"] == pytest.approx(metrics.style_distance(y, reference, target_domain="guitar"))
    assert out["style_dist"] > metrics.style_distance(y, reference, target_domain="piano")
    assert out["target_prob"] < 0.5


def test_lsd_grows_with_spectral_difference(by_key):
    y = by_key["guitar", "m000"]
    rng = np.random.default_rng(1)
    slightly = y + 0.001 * rng.standard_normal(y.size).astype(np.float32)
    assert 0 < metrics.log_spectral_distance(slightly, y) < metrics.log_spectral_distance(by_key["piano", "m000"], y)


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


def test_reference_is_cached_by_content_and_never_touches_the_network(demo, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("metrics tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(metrics, "_MEMO", {})  # forget references built by other tests in this process
    first = metrics.build_reference(demo, cache_dir=tmp_path)
    files = list(tmp_path.glob("reference-*.pkl"))
    assert len(files) == 1
    # The cache file is what a second call returns (a marked copy proves it was read, not refitted).
    cached = pickle.loads(files[0].read_bytes())
    cached.holdout_accuracy = -1.0
    files[0].write_bytes(pickle.dumps(cached))
    monkeypatch.setattr(metrics, "_MEMO", {})
    assert metrics.build_reference(demo, cache_dir=tmp_path).holdout_accuracy == -1.0
    np.testing.assert_array_equal(cached.weights, first.weights)
    # Within a process the same content gives the same object without touching the disk.
    assert metrics.build_reference(demo) is metrics.build_reference(demo)
    # Other content, other key.
    changed = AudioDataset([*demo.clips[:-1], Clip(**{**demo.clips[-1].__dict__, "audio": demo.clips[-1].audio * 0.5})],
                           demo.sr)
    assert metrics.dataset_hash(changed) != first.dataset_hash
    metrics.build_reference(changed, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("reference-*.pkl"))) == 2
    # Picklable as a whole (it travels through Ray's object store).
    assert pickle.loads(pickle.dumps(first)).domains == demo.domains
