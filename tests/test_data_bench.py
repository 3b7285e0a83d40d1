"""The built-in benchmark through the real FluidSynth and soundfont: timbre differs, pitch is shared, both layouts
read back as paired, rendered once, clear errors without a synthesiser or soundfont."""

from __future__ import annotations

import itertools
import re
import shutil
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from audiostyle import audio
from audiostyle.data import FeatureCache, bench, builtin, load_dataset
from audiostyle.data.layouts import IRMAS_DIR, PAIRED_MARKER, list_source
from audiostyle.errors import AudiostyleError

SMALL = ["--melodies", "3", "--instruments", "piano,violin"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """3 melodies x piano, violin in the folder layout, written by the CLI."""
    out = tmp_path_factory.mktemp("bench") / "folder"
    assert bench.main(["--out", str(out), *SMALL]) == 0
    return out


@pytest.fixture(scope="module")
def loaded(folder):
    return load_dataset(folder, clip_seconds=6.0, val_fraction=0.0, test_fraction=0.0)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_melodies_are_seeded_in_range_and_varied():
    tunes = bench.melodies()
    assert len(tunes) == bench.N_MELODIES == 32 and bench.melodies(2) == tunes[:2]  # a subset is a prefix
    assert bench.melodies(1, seed=1) != tunes[:1]
    low, high = bench.PITCH_RANGE
    assert all(i.low <= low < high <= i.high for i in bench.INSTRUMENTS) and len(bench.INSTRUMENTS) >= 8
    notes = [n for t in tunes for n in t]
    assert all(low <= n.pitch <= high and 0 < n.velocity <= 1 for n in notes)
    assert all(0 <= n.start < n.start + n.dur <= bench.MELODY_SECONDS + 1e-9 for n in notes)
    with_chords = [t for t in tunes if len({n.start for n in t}) < len(t)]
    assert 4 <= len(with_chords) <= 28  # some melodies have chords, not all
    registers = [np.mean([n.pitch for n in t]) for t in tunes]
    levels = [np.mean([n.velocity for n in t]) for t in tunes]
    onset_gaps = [np.median(np.diff(sorted({n.start for n in t}))) for t in tunes]
    assert np.ptp(registers) > 8 and np.ptp(levels) > 0.3 and max(onset_gaps) > 2 * min(onset_gaps)


def test_files_end_where_the_tails_fade_and_differ_in_length(folder):
    lengths = {p.relative_to(folder).as_posix(): sf.info(p).duration for p in sorted(folder.glob("*/*.wav"))}
    assert sorted(lengths) == [f"{d}/m00{i}.wav" for d in ("piano", "violin") for i in range(3)]
    assert all(bench.MELODY_SECONDS < s <= bench.MELODY_SECONDS + bench.TAIL_SECONDS for s in lengths.values())
    assert len({round(s, 3) for s in lengths.values()}) > 3  # release tails differ by instrument and melody
    assert all(sf.info(p).channels == 2 for p in folder.glob("*/*.wav"))


def test_instruments_sound_different_and_share_the_melody(loaded):
    assert loaded.paired and loaded.domains == ("piano", "violin") and len(loaded.clips) == 6
    clips = {(c.domain, c.pair_key): c.audio for c in loaded.clips}
    chroma = {k: librosa.feature.chroma_cqt(y=y, sr=loaded.sr, hop_length=512) for k, y in clips.items()}
    melodies = sorted({m for _, m in clips})
    same_melody = [_corr(chroma["piano", m], chroma["violin", m]) for m in melodies]
    same_instrument = [_corr(chroma[d, a], chroma[d, b]) for d in loaded.domains
                       for a, b in itertools.combinations(melodies, 2)]
    assert min(same_melody) > 0.5 and min(same_melody) > max(same_instrument) + 0.2, (same_melody, same_instrument)

    def timbre(y: np.ndarray) -> np.ndarray:
        """MFCC 1-12 means and the mean log spectral flatness over the frames with sound."""
        spec = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
        rms = librosa.feature.rms(S=spec)[0]
        active = rms > 0.05 * rms.max()
        mfcc = librosa.feature.mfcc(S=librosa.power_to_db(librosa.feature.melspectrogram(S=spec**2, sr=loaded.sr)),
                                    n_mfcc=13)[1:, active]
        flatness = np.log(librosa.feature.spectral_flatness(S=spec)[0, active])
        return np.append(mfcc.mean(axis=1), flatness.mean())

    feats = {k: timbre(y) for k, y in clips.items()}
    pairs = {"across": [(("piano", m), ("violin", m)) for m in melodies],
             "within": [((d, a), (d, b)) for d in loaded.domains for a, b in itertools.combinations(melodies, 2)]}
    mfcc = {k: [np.linalg.norm(feats[a][:-1] - feats[b][:-1]) for a, b in v] for k, v in pairs.items()}
    flat = {k: [abs(feats[a][-1] - feats[b][-1]) for a, b in v] for k, v in pairs.items()}
    assert np.median(mfcc["across"]) > 1.3 * np.median(mfcc["within"]), mfcc  # timbre moves more than the melody
    assert min(flat["across"]) > max(flat["within"]) + 1.0, flat  # bowed noise vs clean struck partials


def test_irmas_layout_reads_back_paired_with_the_same_audio(folder, loaded, tmp_path):
    assert bench.main(["--out", str(tmp_path), "--layout", "irmas", *SMALL]) == 0
    assert (tmp_path / IRMAS_DIR / PAIRED_MARKER).exists()
    listing = list_source(str(tmp_path))
    assert listing.layout == "irmas" and listing.paired and listing.domains == ("pia", "vio")
    irmas = load_dataset(tmp_path, domains=["piano", "violin"], clip_seconds=6.0, val_fraction=0.0,
                         test_fraction=0.0)
    assert irmas.paired and [c.pair_key for c in irmas.select("vio")] == ["m000", "m001", "m002"]
    assert irmas.counterpart(irmas.select("pia")[1], "vio").name == "vio/m001"
    for a, b in zip(irmas.clips, loaded.clips):  # the rendering is deterministic
        assert a.pair_key == b.pair_key and np.abs(a.audio - b.audio).max() < 1e-4


def test_splits_are_by_melody_and_fixed_under_the_seed(folder):
    a = load_dataset(folder, clip_seconds=6.0, val_fraction=0.34, test_fraction=0.34, seed=4)
    assert {c.split for c in a.clips} == {"train", "val", "test"}
    assert all(a.counterpart(c, "violin").split == c.split for c in a.select("piano"))
    b = load_dataset(folder, clip_seconds=6.0, val_fraction=0.34, test_fraction=0.34, seed=4)
    assert [(c.name, c.split) for c in a.clips] == [(c.name, c.split) for c in b.clips]


def test_bench_root_renders_once_then_loads_from_the_cache(tmp_path):
    kwargs = dict(n_melodies=1, names=["piano", "cello"])
    root = builtin.bench_root(str(tmp_path), **kwargs)
    assert root.parent == tmp_path and root.name.startswith(f"bench-v{bench.BENCH_VERSION}-sr22050-")
    mtime = (root / "cello" / "m000.wav").stat().st_mtime_ns
    copy = tmp_path / "renamed.sf3"  # the same soundfont under another name: the same render
    shutil.copy(bench.DEFAULT_SOUNDFONT, copy)
    assert builtin.bench_root(str(tmp_path), soundfont=copy, **kwargs) == root
    assert (root / "cello" / "m000.wav").stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bench")] == []
    cache = FeatureCache(str(tmp_path / "features"))
    first = load_dataset(root, cache_dir=cache)
    second = load_dataset(root, cache_dir=cache)
    assert (cache.misses, cache.hits) == (2, 2) and first.fingerprint == second.fingerprint


def test_missing_soundfont_or_fluidsynth_names_the_fix(tmp_path, monkeypatch):
    fix = r"apt-get install fluidsynth musescore-general-soundfont-small.*--soundfont"
    with pytest.raises(AudiostyleError, match=rf"soundfont {tmp_path}/none.sf2 does not exist.*{fix}"):
        bench.render_bench(tmp_path / "out", soundfont=tmp_path / "none.sf2")
    monkeypatch.setenv(bench.SOUNDFONT_ENV, str(tmp_path / "env.sf3"))
    with pytest.raises(AudiostyleError, match=rf"env.sf3 does not exist.*{fix}"):
        load_dataset("bench", cache_dir=tmp_path / "cache")
    (tmp_path / "notes.txt").write_text("not a soundfont")
    with pytest.raises(AudiostyleError, match=rf"notes.txt is not a .sf2/.sf3 file.*{fix}"):
        bench.render_bench(tmp_path / "out", soundfont=tmp_path / "notes.txt")
    monkeypatch.delenv(bench.SOUNDFONT_ENV)
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without the fluidsynth program
    with pytest.raises(AudiostyleError, match=rf"fluidsynth program is not on PATH.*{fix}"):
        bench.render_bench(tmp_path / "out", n_melodies=1, names=["piano"])
    assert not (tmp_path / "out").exists()
    assert bench.main(["--out", str(tmp_path / "cli"), "--instruments", "oboe"]) == 2


def test_cli_help_and_the_makefile_installs_the_packages(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--help"])
    assert e.value.code == 0 and "--soundfont" in capsys.readouterr().out
    for name, path in bench.SOUNDFONTS.items():  # the three sources by name, installed by `make setup`
        assert bench.find_soundfont(name) == Path(path)
    makefile = (ROOT / "Makefile").read_text()
    assert set(bench.DEBIAN_PACKAGES) <= set(re.search(r"^DEBIAN_PACKAGES := (.*)$", makefile, re.M).group(1).split())


@pytest.mark.slow
def test_load_bench_renders_the_whole_set_once(tmp_path):
    ds = load_dataset("bench", cache_dir=tmp_path)
    assert ds.paired and ds.domains == tuple(sorted(bench.NAMES)) and len(ds.clips) == 32 * 9  # one 6 s clip each
    assert {m: len(ds.select(split=m)) // 9 for m in ("train", "val", "test")} == {"train": 20, "val": 6, "test": 6}
    for c in ds.select("piano", "test"):
        assert all(ds.counterpart(c, d).split == "test" for d in ds.domains)
    again = load_dataset("bench", cache_dir=tmp_path)
    assert [c.name for c in again.clips] == [c.name for c in ds.clips]
