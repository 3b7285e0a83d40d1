"""The embedded demo set: deterministic, paired, and a meaningful benchmark (timbre separable, melody shared)."""

from __future__ import annotations

import itertools

import librosa
import numpy as np
import pytest

from audiostyle import audio
from audiostyle.data import load_dataset, synth
from audiostyle.errors import AudiostyleError


@pytest.fixture(scope="module")
def bench():
    """16 melodies x 4 instruments, half the melodies held out (as val)."""
    return synth.demo_dataset(n_melodies=16, seconds=3.0, val_fraction=0.5, test_fraction=0.0, seed=1)


def test_demo_shapes_pairs_and_splits(demo):
    assert demo.domains == tuple(sorted(synth.INSTRUMENTS)) and demo.paired and demo.sr == 22050
    assert len(demo.clips) == 8 * 4
    for c in demo.clips:
        assert c.audio.dtype == np.float32 and c.audio.shape == (3 * 22050,)
        assert 0.85 < np.abs(c.audio).max() <= 0.9 + 1e-6  # peak-normalised
        assert c.name == f"{c.domain}/{c.pair_key}"
    splits = {(c.pair_key, c.split) for c in demo.clips}
    assert len(splits) == 8  # every melody has one split on every instrument
    assert sorted(s for _, s in splits) == ["test"] * 2 + ["train"] * 4 + ["val"] * 2  # 25 % val, 25 % test
    for split in ("val", "test"):
        piano = demo.select("piano", split)[0]
        flute = demo.counterpart(piano, "flute")
        assert flute.pair_key == piano.pair_key == piano.group and flute.split == split
    with pytest.raises(AudiostyleError, match="split='valid' is not supported"):
        demo.select("piano", "valid")


def test_demo_is_deterministic_under_seed():
    a = synth.demo_dataset(n_melodies=2, seconds=1.0, seed=5)
    b = synth.demo_dataset(n_melodies=2, seconds=1.0, seed=5)
    c = synth.demo_dataset(n_melodies=2, seconds=1.0, seed=6)
    assert all(np.array_equal(x.audio, y.audio) for x, y in zip(a.clips, b.clips))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert not np.array_equal(a.clips[0].audio, c.clips[0].audio)


def _mfcc_stats(y: np.ndarray, sr: int) -> np.ndarray:
    m = audio.mfcc(y, sr, n_mfcc=20)
    return np.concatenate([m.mean(axis=1), m.std(axis=1)])


def test_mfcc_statistics_tell_instruments_apart_on_held_out_melodies(bench):
    train, val = bench.select(split="train"), bench.select(split="val")
    assert {c.pair_key for c in train}.isdisjoint({c.pair_key for c in val})
    X = np.stack([_mfcc_stats(c.audio, c.sr) for c in train])
    Xv = np.stack([_mfcc_stats(c.audio, c.sr) for c in val])
    mu, sd = X.mean(0), X.std(0) + 1e-9
    X, Xv = (X - mu) / sd, (Xv - mu) / sd
    centroids = np.stack([X[[c.domain == d for c in train]].mean(0) for d in bench.domains])
    pred = np.argmin(((Xv[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = np.mean([bench.domains[p] == c.domain for p, c in zip(pred, val)])
    assert accuracy > 0.9, accuracy


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_chroma_follows_the_melody_not_the_instrument(bench):
    chroma = {c.name: librosa.feature.chroma_cqt(y=c.audio, sr=c.sr, hop_length=512) for c in bench.clips}
    melodies = sorted({c.pair_key for c in bench.clips})
    same = [_corr(chroma[f"{a}/{m}"], chroma[f"{b}/{m}"])
            for m in melodies for a, b in itertools.combinations(synth.INSTRUMENTS, 2)]
    diff = [_corr(chroma[f"{i}/{m1}"], chroma[f"{i}/{m2}"])
            for i in synth.INSTRUMENTS for m1, m2 in itertools.combinations(melodies, 2)]
    assert np.mean(same) > 0.8, np.mean(same)
    assert np.mean(diff) < 0.3, np.mean(diff)


def test_render_demo_writes_a_paired_tree_the_loader_reads(demo_dir):
    assert sorted(p.name for p in demo_dir.iterdir() if p.is_dir()) == sorted(synth.INSTRUMENTS)
    assert (demo_dir / synth.PAIRED_MARKER).exists()
    ds = load_dataset(demo_dir, clip_seconds=3.0)
    assert ds.paired and len(ds.clips) == 6 * 4 and ds.domains == tuple(sorted(synth.INSTRUMENTS))
    mem = synth.demo_dataset(n_melodies=6, seconds=3.0)
    by_name = {c.name: c for c in mem.clips}
    for c in ds.clips:
        assert np.abs(c.audio - by_name[c.name].audio).max() < 1e-4  # 16-bit PCM of the same rendering
    assert len({(c.pair_key, c.split) for c in ds.clips}) == 6  # paired split: per melody
    assert {c.split for c in ds.clips} == {"train", "val", "test"}


def test_cli_renders_and_prints(tmp_path, capsys):
    assert synth.main(["--out", str(tmp_path / "d"), "--melodies", "1", "--seconds", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 clips" in out and str(tmp_path / "d") in out
    assert len(list((tmp_path / "d").glob("*/m000.wav"))) == 4
    with pytest.raises(SystemExit) as e:
        synth.main(["--help"])
    assert e.value.code == 0


def test_bad_demo_parameters_raise():
    with pytest.raises(AudiostyleError, match="oboe"):
        synth.demo_dataset(instruments=("oboe",))
    with pytest.raises(AudiostyleError, match="seconds"):
        synth.demo_dataset(seconds=0.0)
