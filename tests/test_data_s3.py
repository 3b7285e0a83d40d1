"""Data sources and the feature cache on ``s3://``, against a real S3 API server (moto) on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest

from audiostyle import audio, fsio
from audiostyle.data import FeatureCache, load_dataset
from audiostyle.errors import AudiostyleError
from tests.fixtures.data import fingerprint

pytestmark = pytest.mark.slow


def _upload(local_root, url: str) -> None:
    for p in sorted(local_root.rglob("*")):
        if p.is_file():
            fsio.atomic_write_bytes(fsio.join(url, p.relative_to(local_root).as_posix()), p.read_bytes())


def test_fsio_round_trip_and_endpoint(s3_bucket):
    url = fsio.join(s3_bucket, "a", "b.bin")
    assert not fsio.exists(url)
    fsio.atomic_write_bytes(url, b"hello")
    assert fsio.exists(url)
    with fsio.open(url, "rb") as f:
        assert f.read() == b"hello"
    fs, path = fsio.filesystem(url)
    assert path == url[len("s3://"):] and "127.0.0.1" in fsio.storage_options(url)["client_kwargs"]["endpoint_url"]


def test_folder_layout_from_s3_matches_local_and_caches_on_s3(s3_bucket, demo_dir):
    url = fsio.join(s3_bucket, "demo")
    _upload(demo_dir, url)
    local = load_dataset(demo_dir, domains=["guitar", "flute"], clip_seconds=3.0)
    cache = FeatureCache(fsio.join(s3_bucket, "cache"))
    remote = load_dataset(url, domains=["guitar", "flute"], clip_seconds=3.0, cache_dir=cache)
    assert remote.paired and [c.name for c in remote.clips] == [c.name for c in local.clips]
    assert [c.split for c in remote.clips] == [c.split for c in local.clips]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(local.clips, remote.clips))
    assert (cache.hits, cache.misses) == (0, 2)
    again = load_dataset(url, domains=["guitar", "flute"], clip_seconds=3.0, cache_dir=cache)
    assert (cache.hits, cache.misses) == (2, 2) and again.fingerprint == remote.fingerprint

    before = fingerprint(url)  # ETags change when an object's content changes
    fsio.atomic_write_bytes(fsio.join(url, "flute", "m000.wav"), (demo_dir / "flute" / "m001.wav").read_bytes())
    assert fingerprint(url) != before
    changed = load_dataset(url, domains=["guitar", "flute"], clip_seconds=3.0, cache_dir=cache)
    assert (cache.hits, cache.misses) == (3, 3)
    assert np.array_equal(changed.select("flute")[0].audio, local.select("flute")[1].audio)


def test_gtzan_on_s3_and_audio_load(s3_bucket, demo_dir):
    url = fsio.join(s3_bucket, "gtzan", "genres_original", "jazz", "jazz.00000.wav")
    fsio.atomic_write_bytes(url, (demo_dir / "piano" / "m000.wav").read_bytes())
    y = audio.load(url, sr=22050)
    assert y.shape == (3 * 22050,) and np.abs(y).max() > 0.5
    ds = load_dataset(fsio.join(s3_bucket, "gtzan"), clip_seconds=1.0)
    assert ds.domains == ("jazz",) and len(ds.clips) == 3


def test_missing_s3_paths_raise(s3_bucket):
    with pytest.raises(AudiostyleError, match=r"s3://.*/nothing-here does not exist"):
        load_dataset(fsio.join(s3_bucket, "nothing-here"))
    with pytest.raises(AudiostyleError, match="does not exist"):
        audio.load(fsio.join(s3_bucket, "missing.wav"))
