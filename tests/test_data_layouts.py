"""Data sources from fixture trees the tests write: GTZAN (new and old), IRMAS, folder per domain; pairing of real
files of different lengths; bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from audiostyle import methods
from audiostyle.data import load_dataset
from audiostyle.data.layouts import PAIRED_MARKER, list_source
from audiostyle.errors import AudiostyleError
from tests.fixtures.data import tone, write_audio

SR = 22050


def _tree(root: Path, files: dict[str, tuple[float, float]], sr: int = SR, channels: int = 1) -> Path:
    """Write ``{relative path: (frequency Hz, seconds)}`` as tones under ``root``."""
    for rel, (freq, seconds) in files.items():
        write_audio(root / rel, tone(freq, seconds, sr, channels), sr)
    return root


def test_gtzan_layout_cuts_long_files_into_clips(tmp_path):
    files = {f"Data/genres_original/{g}/{g}.0000{i}.wav": (200 + 50 * i, 2.2) for g in ("jazz", "classical")
             for i in range(4)}
    files["Data/images_original/jazz/jazz00000.wav"] = (100, 1.0)  # not under genres_original: ignored
    _tree(tmp_path, files)
    ds = load_dataset(tmp_path, clip_seconds=1.0, val_fraction=0.25, test_fraction=0.25, seed=3)
    assert ds.domains == ("classical", "jazz") and not ds.paired
    assert len(ds.select("jazz")) == 4 * 2  # 2.2 s → two 1 s clips (0.2 s tail dropped)
    assert {c.name for c in ds.select("jazz")} >= {"jazz/jazz.00000", "jazz/jazz.00000#1"}
    assert {c.group for c in ds.select("jazz")} == {f"jazz.0000{i}" for i in range(4)}
    assert all(c.audio.shape == (SR,) and c.pair_key is None for c in ds.clips)
    for g in ds.domains:  # one of four files per genre in val, one in test; clips of one file share a split
        files_split = {(c.group, c.split) for c in ds.select(g)}
        assert len(files_split) == 4 and sorted(s for _, s in files_split) == ["test", "train", "train", "val"]
    again = load_dataset(tmp_path, clip_seconds=1.0, val_fraction=0.25, test_fraction=0.25, seed=3)
    assert [c.split for c in again.clips] == [c.split for c in ds.clips] and again.fingerprint == ds.fingerprint
    assert load_dataset(tmp_path / "Data" / "genres_original", domains=["jazz"], clip_seconds=1.0).domains == ("jazz",)


def test_old_gtzan_au_files(tmp_path):
    _tree(tmp_path, {f"genres/{g}/{g}.0000{i}.au": (300, 1.0) for g in ("blues", "rock") for i in range(2)})
    listing = list_source(str(tmp_path))
    assert listing.layout == "gtzan" and listing.domains == ("blues", "rock")
    ds = load_dataset(tmp_path, domains=["rock"], clip_seconds=1.0)
    assert len(ds.clips) == 2 and ds.clips[0].name == "rock/rock.00000"


def test_irmas_codes_and_name_aliases(tmp_path):
    _tree(
        tmp_path,
        {f"IRMAS-TrainingData/{code}/{i:03d}__[{code}][nod][cla]0{i}__1.wav": (f, 1.0)
         for code, f in (("pia", 262), ("gel", 330), ("vio", 440)) for i in range(3)},
        sr=44100, channels=2,  # IRMAS is 44.1 kHz stereo
    )
    ds = load_dataset(tmp_path, domains=["piano", "gel"], clip_seconds=1.0)
    assert ds.domains == ("gel", "pia") and len(ds.clips) == 6
    assert all(c.audio.shape == (SR,) for c in ds.clips)
    spec = np.abs(np.fft.rfft(ds.select("pia")[0].audio))
    assert abs(np.argmax(spec) - 262) <= 2  # 1 s clip: bins are 1 Hz; resampled and mixed to mono correctly
    with pytest.raises(AudiostyleError, match=r"unknown domain 'oboe'.*pia \(piano\)"):
        load_dataset(tmp_path, domains=["oboe"], clip_seconds=1.0)


def test_folder_layout_mixed_formats(tmp_path):
    _tree(tmp_path, {"cats/a.wav": (400, 1.0), "cats/b.flac": (410, 1.0), "dogs/c.ogg": (200, 1.0),
                     "dogs/d.au": (210, 1.0)})
    (tmp_path / "README.txt").write_text("not audio")
    (tmp_path / "dogs" / "notes.txt").write_text("not audio")
    ds = load_dataset(tmp_path, clip_seconds=1.0, val_fraction=0.0, test_fraction=0.0)
    assert ds.domains == ("cats", "dogs") and [c.name for c in ds.select("dogs")] == ["dogs/c", "dogs/d"]
    assert all(c.split == "train" for c in ds.clips)


def test_corrupt_silent_and_short_files_are_skipped_with_one_warning(tmp_path, caplog):
    _tree(tmp_path, {"a/good.wav": (300, 1.0), "a/short.wav": (300, 0.2), "b/good.wav": (500, 1.0)})
    (tmp_path / "a" / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    write_audio(tmp_path / "b" / "silent.wav", np.zeros(SR, np.float32))
    with caplog.at_level(logging.WARNING, logger="audiostyle"):
        ds = load_dataset(tmp_path, clip_seconds=1.0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert "skipped 3 unusable" in msg
    assert "broken.wav (cannot decode" in msg and "silent.wav (silent)" in msg and "short.wav (too short" in msg
    assert [c.name for c in ds.clips] == ["a/good", "b/good"]


def test_domain_without_usable_audio_raises(tmp_path):
    _tree(tmp_path, {"a/good.wav": (300, 1.0)})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "broken.flac").write_bytes(b"fLaC nonsense")
    with pytest.raises(AudiostyleError, match=r"domain 'b' in .* no usable audio: 1 audio file\(s\) found, 1 unusable"):
        load_dataset(tmp_path, clip_seconds=1.0)
    (tmp_path / "b" / "broken.flac").unlink()
    with pytest.raises(AudiostyleError, match=r"domain 'b'.*0 audio file"):
        load_dataset(tmp_path, clip_seconds=1.0)
    assert load_dataset(tmp_path, domains=["a"], clip_seconds=1.0).domains == ("a",)


def test_missing_path_and_unknown_layouts_raise(tmp_path):
    with pytest.raises(AudiostyleError, match=r"nowhere does not exist.*'demo'"):
        load_dataset(tmp_path / "nowhere")
    _tree(tmp_path / "flat", {"x.wav": (300, 1.0)})
    with pytest.raises(AudiostyleError, match=r"cannot tell the layout of .*flat: found x.wav.*<domain>"):
        load_dataset(tmp_path / "flat")
    with pytest.raises(AudiostyleError, match=r"not a GTZAN folder: found x.wav"):
        load_dataset(tmp_path / "flat", layout="gtzan")
    with pytest.raises(AudiostyleError, match="layout='mp3s' is not supported"):
        load_dataset(tmp_path / "flat", layout="mp3s")
    with pytest.raises(AudiostyleError, match="val_fraction"):
        load_dataset(tmp_path / "flat", val_fraction=1.5)
    with pytest.raises(AudiostyleError, match=r"val_fraction \+ test_fraction = 1 leaves too little"):
        load_dataset(tmp_path / "flat", val_fraction=0.5, test_fraction=0.5)


def _paired_tree(root: Path, files: dict[str, tuple[float, float, float, int, int]]) -> Path:
    """Write ``{relative path: (frequency Hz, seconds of tone, seconds of silent lead-in, sample rate, channels)}``
    and the paired marker."""
    for rel, (freq, seconds, lead, sr, channels) in files.items():
        y = tone(freq, seconds, sr, channels)
        pad = np.zeros((int(round(lead * sr)),) + y.shape[1:], np.float32)
        write_audio(root / rel, np.concatenate([pad, y]), sr)
    (root / PAIRED_MARKER).write_text('{"paired": true}')
    return root


def _peak_hz(y: np.ndarray) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(y))) * SR / y.size)


def test_clip_k_of_a_stem_pairs_with_clip_k_in_every_domain_and_extra_clips_are_unpaired(tmp_path):
    # Files of one melody differ in length (release tails, padding), rate, channels and lead-in, as real ones do:
    # piano m022 gives two 1 s clips (1.6 s), violin m022 one (1.4 s: the 0.4 s tail is dropped), and cello m022
    # (44.1 kHz stereo, 0.2 s silent lead-in, 2.6 s in all) three (its 0.6 s tail is padded).
    _paired_tree(tmp_path, {
        "piano/m022.wav": (262, 1.6, 0.0, SR, 1), "violin/m022.wav": (440, 1.4, 0.0, SR, 1),
        "cello/m022.wav": (131, 2.4, 0.2, 44100, 2),
        "piano/m023.wav": (294, 1.0, 0.0, SR, 1), "violin/m023.wav": (494, 1.0, 0.0, SR, 1),
        "cello/m023.wav": (147, 1.0, 0.0, 44100, 2),
    })
    ds = load_dataset(tmp_path, clip_seconds=1.0, val_fraction=0.0, test_fraction=0.5)
    assert ds.paired
    assert [c.pair_key for c in ds.select("piano")] == ["m022", "m022#1", "m023"]
    assert [c.pair_key for c in ds.select("violin")] == ["m022", "m023"]
    assert [c.name for c in ds.select("cello")] == ["cello/m022", "cello/m022#1", "cello/m022#2", "cello/m023"]
    piano = {c.pair_key: c for c in ds.select("piano")}
    violin, cello = ds.counterpart(piano["m022"], "violin"), ds.counterpart(piano["m022#1"], "cello")
    assert violin.name == "violin/m022" and abs(_peak_hz(violin.audio) - 440) < 3
    assert cello.name == "cello/m022#1" and abs(_peak_hz(cello.audio) - 131) < 3  # stereo 44.1 kHz → mono 22.05
    assert np.abs(ds.select("cello")[0].audio[: int(0.2 * SR)]).max() < 1e-3  # lead-in kept, as before
    assert ds.counterpart(piano["m022#1"], "violin") is None  # the piano's extra clip has no violin partner
    assert ds.counterpart(ds.select("cello")[2], "piano") is None
    assert [c.name for c in ds.prefer_paired(ds.select("piano"), "violin")] == ["piano/m022", "piano/m023"]
    assert ds.prefer_paired(ds.select("cello")[2:3], "violin") == ds.select("cello")[2:3]  # none paired: all
    splits = {(c.group, c.split) for c in ds.clips}  # a melody has one split in every domain: one train, one test
    assert len(splits) == 2 and {s for _, s in splits} == {"train", "test"}


def test_shallow_cnn_takes_contents_with_true_targets_when_a_file_is_longer(tmp_path):
    # The failure the issue reported: one piano file longer than its violin counterpart left the whole batch without
    # true targets. Now the unpaired extra clip is not drawn as content, and the style is always another melody.
    _paired_tree(tmp_path, {f"{d}/m{i:03d}.wav": (f * 2 ** (i / 12), 1.6 if (d, i) == ("piano", 2) else 1.2, 0.0,
                                                    SR, 1)
                            for d, f in (("piano", 262), ("violin", 440)) for i in range(4)})
    ds = load_dataset(tmp_path, clip_seconds=1.0, val_fraction=0.75, test_fraction=0.0)  # 3 of 4 melodies scored
    assert len(ds.select("piano")) == 5 and len(ds.select("violin")) == 4
    method = methods.get("shallow_cnn")
    data = method.prepare(ds, method.make_config({"content_domain": "piano", "style_domain": "violin", "pairs": 3,
                                                  "max_seconds": 1.0}))
    assert len(data.targets) == len(data.contents) and all(t is not None for t in data.targets)
    for (content, style), target in zip(data.names, data.targets):
        truth = ds.counterpart(next(c for c in ds.clips if c.name == content), "violin")
        np.testing.assert_array_equal(target, truth.audio)
        assert content.split("/")[1].split("#")[0] != style.split("/")[1].split("#")[0]
