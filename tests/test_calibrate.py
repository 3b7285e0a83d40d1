"""The calibration rule on a few directions of the demo set and of the benchmark through each of its three
soundfonts, the headline along content -> target interpolations, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audiostyle import audio, calibrate, metrics
from audiostyle.data.dataset import AudioDataset
from audiostyle.errors import AudiostyleError

# The built-in benchmark's sets render (~1 min per soundfont) and fit their references once per test worker:
# under `pytest -n` these modules share one worker (`--dist loadgroup`, the Makefile), so they are built once.
pytestmark = pytest.mark.xdist_group("bench_sets")


@pytest.fixture(scope="module")
def reference(demo: AudioDataset) -> metrics.Reference:
    return metrics.build_reference(demo)


# Per built-in set: a sustained and a plucked target, the closest timbres, and the pairs that failed before
# (the demo's violin -> plucked mix; the benchmark's flute + hiss read as a cello); the benchmark through its other
# two soundfonts, each with its own references (TimGM6mb: another sample library; OPL3: FM synthesis, whose piano
# rings into a flute's pauses, and whose cello and violin share one static envelope: fad needed the envelope's
# movement to tell them apart). The tabled directions are in benchmarks/results/calibration.md
# (benchmarks/bench_calibration.py).
@pytest.mark.parametrize("data,content,style", [
    ("demo_set", "piano", "violin"), ("demo_set", "flute", "violin"), ("demo_set", "violin", "guitar"),
    ("bench_set", "piano", "violin"), ("bench_set", "flute", "cello"), ("bench_set", "guitar_nylon", "trumpet"),
    ("bench_set", "clarinet", "saxophone"),
    ("bench_timgm6mb_set", "piano", "violin"), ("bench_timgm6mb_set", "cello", "saxophone"),
    ("bench_opl3_set", "piano", "violin"), ("bench_opl3_set", "flute", "piano"), ("bench_opl3_set", "cello", "violin"),
])
def test_the_rule_holds(request, data, content, style):
    dataset = request.getfixturevalue(data)
    result = calibrate.calibrate(dataset, content, style, melodies=3)
    assert result.split == "test" and len(result.melodies) == 3
    assert result.violations == [], calibrate.format_table(result)
    h = {a: row[metrics.HEADLINE] for a, row in result.rows.items()}
    assert max(h, key=h.get) == "target" and h["target"] > h["mix"] > h["copy_content"]
    assert all(h[a] < calibrate.DEGENERATE_THRESHOLD for a in calibrate.DEGENERATE)


# Across sources: TimGM6mb and OPL3 scored in the timbre space fitted on MuseScore General's train split, their own
# train clips locating the instruments in it (calibration.md tables 24 directions of each): a sustained, a plucked
# and a wind target, the closest pair, and the pair whose fad check failed with MFCC 1-19 frames.
@pytest.mark.parametrize("data,content,style", [
    ("bench_timgm6mb_set", "piano", "violin"), ("bench_timgm6mb_set", "guitar_nylon", "guitar_electric"),
    ("bench_opl3_set", "cello", "saxophone"), ("bench_opl3_set", "guitar_nylon", "guitar_electric"),
    ("bench_opl3_set", "guitar_nylon", "clarinet"),
])
def test_the_rule_holds_across_sources(request, bench_set, data, content, style):
    dataset = request.getfixturevalue(data)
    reference = metrics.build_reference(dataset, space_from=bench_set)
    assert reference.space_hash == metrics.build_reference(bench_set).dataset_hash
    result = calibrate.calibrate(dataset, content, style, reference=reference, melodies=3)
    assert result.violations == [], calibrate.format_table(result)


ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.mark.parametrize("data,content,style", [
    ("demo_set", "piano", "violin"), ("bench_set", "piano", "violin"), ("bench_set", "violin", "cello"),
    ("bench_set", "flute", "clarinet"), ("bench_timgm6mb_set", "piano", "violin"),
    ("bench_opl3_set", "piano", "violin"),
])
def test_headline_grades_partial_transfer(request, data, content, style):
    """Magnitude-spectrum interpolation content -> true target: the headline and timbre_shift rise at every step."""
    dataset = request.getfixturevalue(data)
    reference = metrics.build_reference(dataset)
    triples = calibrate.calibration_pairs(dataset, content, style, "test", 2)
    rows = [metrics.evaluate([calibrate.interpolate(c.audio, t.audio, a) for c, t, _ in triples],
                             [c.audio for c, _, _ in triples], dataset.sr, reference, style,
                             true_targets=[t.audio for _, t, _ in triples]) for a in ALPHAS]
    h = [r[metrics.HEADLINE] for r in rows]
    shift = [r["timbre_shift"] for r in rows]
    assert all(b > a for a, b in zip(h, h[1:])), h
    assert all(b >= a for a, b in zip(shift, shift[1:])) and shift[0] < 0.01 and shift[-1] > 0.9, shift
    assert h[2] > 2 * h[0] and h[-1] > 0.85


def test_interpolation_ends_at_its_inputs(demo):
    c, t = demo.clips[0].audio, demo.clips[1].audio
    n = min(len(c), len(t))
    np.testing.assert_allclose(calibrate.interpolate(c, t, 0.0), c[:n], atol=1e-4)
    np.testing.assert_allclose(calibrate.interpolate(c, t, 1.0), t[:n], atol=1e-4)
    with pytest.raises(AudiostyleError, match="alpha=1.5"):
        calibrate.interpolate(c, t, 1.5)


def test_anchors_are_what_they_say(demo):
    c, t, s = (demo.clips[i].audio for i in range(3))
    a = calibrate.make_anchors(c, t, s, demo.sr)
    assert tuple(a) == calibrate.ANCHORS and all(y.shape == c.shape and y.dtype == np.float32 for y in a.values())
    rms = lambda y: float(np.sqrt(np.mean(y.astype(np.float64) ** 2)))  # noqa: E731
    for colour in calibrate.NOISE_COLOURS:
        for snr in calibrate.SNRS_DB:
            assert 20 * np.log10(rms(c) / rms(a[f"{colour}_{snr}db"] - c)) == pytest.approx(snr, abs=0.01)
    # brown noise falls 6 dB an octave more than pink, pink 3 dB more than white (1-2 kHz against 4-8 kHz)
    band = lambda y, lo, hi: float(np.mean(np.abs(np.fft.rfft(y.astype(np.float64)))[  # noqa: E731
        int(lo * y.size / demo.sr):int(hi * y.size / demo.sr)] ** 2))
    slope = {k: 10 * np.log10(band(a[f"{k}_10db"] - c, 1000, 2000) / band(a[f"{k}_10db"] - c, 4000, 8000))
             for k in calibrate.NOISE_COLOURS}
    assert slope["white"] == pytest.approx(0, abs=1) and slope["pink"] == pytest.approx(6, abs=1.5)
    assert slope["brown"] == pytest.approx(12, abs=2)
    # the equaliser-type anchors move the long-term spectrum (1/3 octave) most of the way to the style clip's
    def smooth(y):  # the shape of the smoothed long-term spectrum (dB, level removed), 100 Hz - 5 kHz
        smoothing = audio.octave_smoothing(np.fft.rfftfreq(calibrate.ANCHOR_FFT, 1 / demo.sr), 1 / 3)
        power = (np.abs(audio.stft(y, calibrate.ANCHOR_STFT)) ** 2).mean(axis=1)
        db = 10 * np.log10((smoothing @ power)[10:500] + 1e-12)
        return db - db.mean()

    before = np.abs(smooth(c) - smooth(s)).mean()
    assert np.abs(smooth(a["eq_match"]) - smooth(s)).mean() < 0.25 * before
    assert np.abs(smooth(a["envelope"]) - smooth(s)).mean() < 0.75 * before
    # an equaliser's range: content 60 dB down above 2 kHz is raised there by EQ_MAX_DB, not by the 60 dB it lacks
    above = np.fft.rfftfreq(c.size, 1 / demo.sr) >= 2000
    dull = np.fft.irfft(np.fft.rfft(c) * np.where(above, 1e-3, 1.0), c.size).astype(np.float32)
    gain = 10 * np.log10(band(audio.eq_match(dull, s, demo.sr), 4000, 8000) / band(dull, 4000, 8000))
    assert audio.EQ_MAX_DB - 3 <= gain <= audio.EQ_MAX_DB + 3
    for it in calibrate.GRIFFIN_LIM_ITERS:  # the content's magnitude, its phase rebuilt
        mag = [np.abs(audio.stft(y, calibrate.ANCHOR_STFT)) for y in (a[f"griffin_lim_{it}"], c)]
        assert np.abs(mag[0] - mag[1]).sum() < 0.5 * mag[1].sum()
    assert 20 * np.log10(rms(a["quiet_noise"])) == pytest.approx(calibrate.QUIET_DBFS, abs=0.01)
    np.testing.assert_array_equal(a["reversed"], t[::-1])
    assert not a["silence"].any()


def test_check_rule_names_what_fails(demo, reference):
    rows = calibrate.calibrate(demo, "piano", "violin", reference=reference).rows
    rows["copy_content"] = {**rows["copy_content"], metrics.HEADLINE: 2.0}
    bad = calibrate.check_rule(rows)
    assert any("copy_content" in b and "ranks first" in b for b in bad)
    assert any("degenerate copy_content" in b for b in bad)


def test_silence_kept_is_judged_by_the_content_not_the_target(demo, reference):
    """A target instrument that rings into the content's pauses (a piano's release after a flute's note) is not a
    drone; pause anchors louder there than the content are what ``silence_kept`` must reject."""
    rows = calibrate.calibrate(demo, "piano", "violin", reference=reference).rows
    ringing = {**rows, "target": {**rows["target"], "silence_kept": -20.0}}
    assert not any(b.startswith("silence_kept") for b in calibrate.check_rule(ringing))
    filled = {**rows, "copy_content": {**rows["copy_content"], "silence_kept": -10.0}}
    assert any(b.startswith("silence_kept: copy_content") and "pause_hum" in b for b in calibrate.check_rule(filled))


def test_errors(demo, reference):
    with pytest.raises(AudiostyleError, match="two different"):
        calibrate.calibrate(demo, "piano", "piano", reference=reference)


def test_cli_help_and_json(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        calibrate.main(["--help"])
    assert exit_.value.code == 0 and "--content" in capsys.readouterr().out
    code = calibrate.main(["--data", "demo", "--content", "guitar", "--style", "flute", "--melodies", "1",
                           "--format", "json", "--cache", str(tmp_path)])
    payload = json.loads(capsys.readouterr().out)
    assert code == (0 if not payload["violations"] else 1)
    assert set(payload["rows"]) == set(calibrate.ANCHORS) and payload["seconds_per_output"] > 0
    assert calibrate.main(["--data", "demo", "--content", "tuba", "--style", "flute", "--cache", str(tmp_path)]) == 2


def test_cli_fits_the_references_on_another_dataset(capsys, tmp_path):
    """--fit-data: the demo set scored in the timbre space fitted on a smaller demo set's train split (the same
    domains); a fit set without the target domain is a user error naming it."""
    from audiostyle.data import synth

    fit_dir = synth.render_demo(tmp_path / "fit", n_melodies=10, seconds=6.0)
    code = calibrate.main(["--data", "demo", "--fit-data", str(fit_dir), "--content", "piano", "--style", "violin",
                           "--melodies", "1", "--format", "json", "--cache", str(tmp_path)])
    payload = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and set(payload["rows"]) == set(calibrate.ANCHORS)
    assert payload["rows"]["target"][metrics.HEADLINE] > payload["rows"]["copy_content"][metrics.HEADLINE]
    for d in ("flute", "guitar"):
        for f in (fit_dir / d).glob("*"):
            f.unlink()
        (fit_dir / d).rmdir()
    code = calibrate.main(["--data", "demo", "--fit-data", str(fit_dir), "--content", "piano", "--style", "flute",
                           "--melodies", "1", "--cache", str(tmp_path)])
    assert code == 2 and "'flute' is not in the metrics reference" in capsys.readouterr().err

