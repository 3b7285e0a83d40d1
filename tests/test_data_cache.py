"""The feature cache: hit, miss, invalidation on changed files or parameters, atomic and whole entries."""

from __future__ import annotations

import os

import numpy as np
import pytest

from audiostyle import fsio
from audiostyle.data import FeatureCache, load_dataset
from tests.fixtures.data import fingerprint, tone, write_audio


def test_get_or_compute_hits_after_the_first_call(tmp_path):
    cache = FeatureCache(str(tmp_path / "c"))
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "names": np.array(["a", "b"])}

    key = {"source": "abc", "n_fft": 2048}
    first = cache.get_or_compute(key, compute)
    second = cache.get_or_compute(dict(reversed(list(key.items()))), compute)  # key order does not matter
    assert len(calls) == 1 and (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(first["x"], second["x"])
    assert second["names"].tolist() == ["a", "b"]
    cache.get_or_compute({"source": "abc", "n_fft": 1024}, compute)  # a changed parameter recomputes
    assert len(calls) == 2 and cache.misses == 2
    assert FeatureCache(str(tmp_path / "c")).get(key) is not None  # persists across instances


def test_failed_compute_writes_nothing_and_damaged_entries_recompute(tmp_path, caplog):
    cache = FeatureCache(str(tmp_path))

    def boom():
        raise RuntimeError("feature extraction failed")

    with pytest.raises(RuntimeError):
        cache.get_or_compute({"k": 1}, boom)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    cache.get_or_compute({"k": 1}, lambda: {"x": np.ones(3)})
    entry = cache.path({"k": 1})
    assert os.path.exists(entry) and not list(tmp_path.rglob("*.tmp"))
    with open(entry, "r+b") as f:  # simulate a damaged entry (e.g. a disk error)
        f.truncate(10)
    out = cache.get_or_compute({"k": 1}, lambda: {"x": np.zeros(3)})
    assert out["x"].tolist() == [0, 0, 0] and "unreadable" in caplog.text


def test_atomic_write_replaces_whole_files(tmp_path):
    url = str(tmp_path / "deep" / "f.bin")
    fsio.atomic_write_bytes(url, b"one")
    fsio.atomic_write_bytes(url, b"two!")
    assert open(url, "rb").read() == b"two!" and fsio.exists(url)
    assert os.listdir(tmp_path / "deep") == ["f.bin"]


def test_load_dataset_reuses_decoded_clips_until_a_file_changes(tmp_path):
    data = tmp_path / "data"
    for d, f in (("low", 220), ("high", 880)):
        for i in range(2):
            write_audio(data / d / f"{i}.wav", tone(f + 10 * i, 1.0))
    cache = FeatureCache(str(tmp_path / "cache"))
    first = load_dataset(data, clip_seconds=1.0, cache_dir=cache)
    assert (cache.hits, cache.misses) == (0, 2)
    second = load_dataset(data, clip_seconds=1.0, cache_dir=cache)
    assert (cache.hits, cache.misses) == (2, 2) and second.fingerprint == first.fingerprint
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(first.clips, second.clips))

    before = fingerprint(str(data))
    write_audio(data / "high" / "1.wav", tone(990, 1.2))  # changed content, size and mtime
    assert fingerprint(str(data)) != before
    third = load_dataset(data, clip_seconds=1.0, cache_dir=cache)
    assert (cache.hits, cache.misses) == (3, 3)  # only the changed domain is decoded again
    assert third.fingerprint != first.fingerprint
    assert not np.array_equal(third.select("high")[1].audio, first.select("high")[1].audio)
    load_dataset(data, clip_seconds=0.5, cache_dir=cache)  # a changed parameter recomputes everything
    assert cache.misses == 5


@pytest.mark.slow
def test_demo_source_renders_once_into_the_cache(tmp_path):
    ds = load_dataset("demo", domains=["piano", "flute"], cache_dir=tmp_path)
    assert ds.paired and ds.domains == ("flute", "piano") and len(ds.clips) == 2 * 32
    assert all(c.audio.shape == (6 * 22050,) for c in ds.clips)
    demo_dirs = [p for p in tmp_path.iterdir() if p.name.startswith("demo-")]
    assert len(demo_dirs) == 1 and not [p for p in tmp_path.iterdir() if p.name.startswith(".demo")]
    mtime = (demo_dirs[0] / "piano" / "m000.wav").stat().st_mtime
    again = load_dataset("demo", domains=["piano"], cache_dir=tmp_path)
    assert (demo_dirs[0] / "piano" / "m000.wav").stat().st_mtime == mtime  # not rendered again
    assert again.select("piano")[0].pair_key == "m000"
