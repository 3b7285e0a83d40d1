"""The built-in paired benchmark: seeded melodies written as MIDI, rendered on nine sampled instruments.

Every melody is played on every instrument of :data:`INSTRUMENTS` (General MIDI programs) by the FluidSynth
command-line synthesiser through a SoundFont (default: MuseScore General, Debian package
``musescore-general-soundfont-small``; the other named sources of :data:`SOUNDFONTS`, ``timgm6mb`` and ``opl3``;
any ``.sf2``/``.sf3`` with ``soundfont=`` / ``--soundfont`` / ``$AUDIOSTYLE_SOUNDFONT``), so every transfer between
two instruments has a true target.

Melodies (:func:`melodies`, fixed under :data:`BENCH_SEED`): :func:`audiostyle.data.synth.melody` with a random
register (a 12–17 semitone window), tempo (beat 0.15–0.45 s), note lengths (½–3 beats, then a legato factor
0.55–1), dynamics (a per-melody level, ±0.15 per note) and, in about four melodies in ten, chords (triads on about
a third of the notes). Every pitch lies in :data:`PITCH_RANGE`, the range all nine instruments play, so one melody
has the same pitches on every instrument. Onsets fill :data:`MELODY_SECONDS`; each file ends when the instrument's
release and the soundfont's reverb have faded (files of one melody differ in length, as real recordings do).

Splits are the loader's (:mod:`audiostyle.data.splits`), by melody: with ``load_dataset("bench")``'s defaults the
32 melodies give 20 train, 6 val and 6 test melodies under ``seed=0``.

``python -m audiostyle.data.bench --out DIR [--layout folder|irmas] [--soundfont PATH]`` writes the set as
``DIR/<instrument>/<melody>.wav`` or ``DIR/IRMAS-TrainingData/<code>/<melody>.wav``, with the paired marker.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import mido
import numpy as np

from audiostyle.data.layouts import IRMAS_DIR, PAIRED_MARKER
from audiostyle.data.synth import PEAK, Note, melody, melody_name
from audiostyle.errors import AudiostyleError, check_choice, check_range

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Instrument:
    """A benchmark instrument: domain ``name``, General MIDI ``program`` (0-based), ``irmas`` code, and the
    sounding MIDI pitch range ``low``–``high`` it plays (inclusive)."""

    name: str
    program: int
    irmas: str
    low: int
    high: int


INSTRUMENTS: tuple[Instrument, ...] = (
    Instrument("piano", 0, "pia", 21, 108),  # Acoustic Grand Piano
    Instrument("guitar_nylon", 24, "gac", 40, 83),  # Acoustic Guitar (nylon)
    Instrument("guitar_electric", 27, "gel", 40, 86),  # Electric Guitar (clean)
    Instrument("violin", 40, "vio", 55, 103),
    Instrument("cello", 42, "cel", 36, 81),
    Instrument("flute", 73, "flu", 60, 96),
    Instrument("clarinet", 71, "cla", 50, 94),
    Instrument("saxophone", 65, "sax", 49, 80),  # Alto Sax, sounding pitch
    Instrument("trumpet", 56, "tru", 52, 84),  # B♭ trumpet, sounding pitch
)
NAMES: tuple[str, ...] = tuple(i.name for i in INSTRUMENTS)
#: The pitches every instrument plays (C4–G♯5): every melody stays in it.
PITCH_RANGE: tuple[int, int] = (max(i.low for i in INSTRUMENTS), min(i.high for i in INSTRUMENTS))
N_MELODIES = 32
#: Onsets of a melody lie in [0, MELODY_SECONDS); notes are cut at it; the release and reverb ring on.
MELODY_SECONDS = 4.5
#: Room left after each melody for its release and reverb, s; a file ends where its sound has faded.
TAIL_SECONDS = 2.0
#: A file ends at its last sample above this level relative to its peak, dB.
TAIL_FLOOR_DB = -60.0
BENCH_SEED = 0
#: Bump when the melodies or the rendering change, so cached benchmark renders are rebuilt.
BENCH_VERSION = 1
DEBIAN_PACKAGES: tuple[str, ...] = ("fluidsynth", "musescore-general-soundfont-small", "timgm6mb-soundfont",
                                    "opl3-soundfont")
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"
#: The benchmark's recording sources by name (``soundfont="timgm6mb"``): MuseScore General (sampled, the default),
#: TimGM6mb (a small sampled General MIDI set) and the OPL3 FM soundfont (synthesised: an unlike source), so that
#: references fitted on one source can be scored on another (``python -m audiostyle.calibrate --fit-soundfont``).
SOUNDFONTS: dict[str, str] = {
    "musescore": DEFAULT_SOUNDFONT,
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "opl3": "/usr/share/sounds/sf2/OPL-3_FM_128M.sf2",
}
SOUNDFONT_ENV = "AUDIOSTYLE_SOUNDFONT"
LAYOUTS = ("folder", "irmas")
_GAIN = 0.5  # FluidSynth's master gain (default 0.2 is quiet); files are peak-normalised afterwards
_TICKS_PER_BEAT = 960
_TEMPO = 500_000  # µs per MIDI beat: 120 bpm, one tick ≈ 0.52 ms
_FIX = (
    f"Install FluidSynth and the benchmark's soundfonts (sudo apt-get install {' '.join(DEBIAN_PACKAGES)}; "
    f"`make setup` does it as root), or give any .sf2/.sf3 with --soundfont PATH (soundfont=, ${SOUNDFONT_ENV})."
)


def melodies(n_melodies: int = N_MELODIES, seed: int = BENCH_SEED) -> list[list[Note]]:
    """The benchmark's melodies: melody ``i`` depends on ``(seed, i)`` only (a subset is a prefix of the set).

    Returns
    -------
    list of list of Note
        Onsets and durations in s, MIDI pitches in :data:`PITCH_RANGE`, velocities in (0, 1].
    """
    check_range("n_melodies", n_melodies, 1, 10_000)
    out = []
    for i in range(n_melodies):
        rng = np.random.default_rng([seed, i, 11])
        span = int(rng.integers(12, 18))
        low = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] - span + 1))
        level = float(rng.uniform(0.35, 0.85))
        legato = float(rng.uniform(0.55, 1.0))
        chords = 0.3 if rng.random() < 0.4 else 0.0
        notes = melody(rng, MELODY_SECONDS, pitch_range=(low, low + span), beat_range=(0.15, 0.45),
                       beats=(0.5, 1, 1, 1.5, 2, 3), velocity_range=(level - 0.15, level + 0.15), chord_prob=chords)
        out.append([dataclasses.replace(n, dur=min(n.dur * legato, MELODY_SECONDS - n.start)) for n in notes])
    return out


def instruments(names: Sequence[str] | None = None) -> list[Instrument]:
    """The :class:`Instrument` of each name (None: all, in :data:`INSTRUMENTS` order)."""
    if names is None:
        return list(INSTRUMENTS)
    for n in names:
        check_choice("instrument", n, NAMES)
    return [i for i in INSTRUMENTS if i.name in names]


def find_soundfont(soundfont: str | os.PathLike | None = None) -> Path:
    """``soundfont`` (a path or a name of :data:`SOUNDFONTS`), else ``$AUDIOSTYLE_SOUNDFONT``, else
    :data:`DEFAULT_SOUNDFONT`, checked to be a readable ``.sf2``/``.sf3`` file.

    Raises
    ------
    AudiostyleError
        No such file, or not a SoundFont; the message names the Debian packages and ``--soundfont``.
    """
    chosen = str(soundfont or os.environ.get(SOUNDFONT_ENV) or DEFAULT_SOUNDFONT)
    path = Path(SOUNDFONTS.get(chosen, chosen))
    if not path.is_file():
        raise AudiostyleError(f"soundfont {path} does not exist: the benchmark renders its instruments with one. {_FIX}")
    if path.suffix.lower() not in (".sf2", ".sf3"):
        raise AudiostyleError(f"soundfont {path} is not a .sf2/.sf3 file. {_FIX}")
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":  # FluidSynth would fall back to its default font silently
        raise AudiostyleError(f"soundfont {path} is not a SoundFont (no RIFF sfbk header). {_FIX}")
    return path


def _fluidsynth() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise AudiostyleError(f"the fluidsynth program is not on PATH: the benchmark renders its MIDI with it. {_FIX}")
    return exe


def soundfont_digest(path: Path) -> str:
    """SHA-256 of the soundfont's bytes (a renamed copy renders the same; an edited one does not)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _midi(tunes: Sequence[Sequence[Note]], program: int, slot: float) -> mido.MidiFile:
    """One MIDI file playing ``tunes[i]`` from ``i · slot`` s on channel 0 with ``program``."""
    ticks = _TICKS_PER_BEAT * 1e6 / _TEMPO  # per second
    events = []  # (tick, 0 = off before 1 = on at the same tick, pitch, velocity)
    for i, notes in enumerate(tunes):
        for n in notes:
            on = int(round((i * slot + n.start) * ticks))
            events.append((on, 1, n.pitch, int(np.clip(round(n.velocity * 127), 1, 127))))
            events.append((max(on + 1, int(round((i * slot + n.start + n.dur) * ticks))), 0, n.pitch, 0))
    events.append((int(round(len(tunes) * slot * ticks)), 0, 0, 0))  # the last slot's tail is rendered too
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=_TEMPO), mido.Message("program_change", program=program)])
    now = 0
    for tick, on, pitch, velocity in sorted(events):
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=pitch, velocity=velocity, time=tick - now))
        now = tick
    out = mido.MidiFile(ticks_per_beat=_TICKS_PER_BEAT)
    out.tracks.append(track)
    return out


def _trim(y: np.ndarray) -> np.ndarray:
    """``y (samples, channels)`` up to its last sample above :data:`TAIL_FLOOR_DB` re its peak, peak-normalised."""
    level = np.abs(y).max(axis=1)
    peak = level.max()
    if peak == 0:
        return y
    end = int(np.flatnonzero(level > peak * 10 ** (TAIL_FLOOR_DB / 20))[-1]) + 1
    return (y[:end] * (PEAK / peak)).astype(np.float32)


def render_instrument(
    tunes: Sequence[Sequence[Note]], instrument: Instrument, sr: int, soundfont: Path
) -> list[np.ndarray]:
    """Render every melody of ``tunes`` on ``instrument`` in one FluidSynth run.

    Returns
    -------
    list of np.ndarray
        One float32 ``(samples, 2)`` stereo rendering per melody, from its first onset to where its tail fades,
        peak-normalised to :data:`audiostyle.data.synth.PEAK`.

    Raises
    ------
    AudiostyleError
        No ``fluidsynth`` on PATH, or FluidSynth failed (its message is quoted).
    """
    import soundfile as sf

    exe = _fluidsynth()
    slot = MELODY_SECONDS + TAIL_SECONDS
    with tempfile.TemporaryDirectory(prefix="audiostyle-bench-") as tmp:
        mid, wav = Path(tmp) / "tunes.mid", Path(tmp) / "tunes.wav"
        _midi(tunes, instrument.program, slot).save(mid)
        cmd = [exe, "-ni", "-q", "-o", "synth.dynamic-sample-loading=1", "-g", str(_GAIN), "-r", str(sr),
               "-O", "float", "-T", "wav", "-F", str(wav), str(soundfont), str(mid)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not wav.exists():
            raise AudiostyleError(
                f"fluidsynth could not render {instrument.name} with {soundfont} (exit {done.returncode}: "
                f"{(done.stderr or done.stdout).strip()[-300:]}). Check that the soundfont is a valid .sf2/.sf3. {_FIX}"
            )
        y, _ = sf.read(wav, dtype="float32", always_2d=True)
    n = int(round(slot * sr))
    return [_trim(y[i * n : (i + 1) * n]) for i in range(len(tunes))]


def render_bench(
    root: str | Path,
    layout: str = "folder",
    *,
    n_melodies: int = N_MELODIES,
    names: Sequence[str] | None = None,
    sr: int = 22050,
    soundfont: str | os.PathLike | None = None,
    workers: int | None = None,
) -> Path:
    """Write the benchmark as 16-bit stereo wav files plus the paired marker.

    Parameters
    ----------
    root : str or Path
        Output folder (created); files of the same names are replaced.
    layout : str
        ``"folder"``: ``root/<instrument>/<melody>.wav``; ``"irmas"``: ``root/IRMAS-TrainingData/<code>/<melody>.wav``
        (codes :attr:`Instrument.irmas`, e.g. ``pia``, ``vio``). :mod:`audiostyle.data.layouts` reads both as paired.
    n_melodies : int
        The first ``n_melodies`` of :func:`melodies` (stems ``m000``, ``m001``, …).
    names : sequence of str or None
        Instruments (:data:`NAMES`); None = all nine.
    sr : int
        Sample rate of the rendering, Hz.
    soundfont : str, PathLike or None
        See :func:`find_soundfont`.
    workers : int or None
        FluidSynth processes at once (default: one per CPU core, at most one per instrument).

    Returns
    -------
    Path
        The folder holding the domain folders and the marker (``root``, or ``root/IRMAS-TrainingData``).

    Raises
    ------
    AudiostyleError
        Bad parameters, no FluidSynth or no soundfont (the message names the Debian packages and ``--soundfont``).
    """
    import soundfile as sf

    check_choice("layout", layout, LAYOUTS)
    check_range("sr", sr, 8000, 96_000, fix="Use a sample rate such as 22050.")
    if Path(root).exists() and not Path(root).is_dir():
        raise AudiostyleError(f"--out {root} is a file: the benchmark is written as a folder. Give a folder path.")
    chosen = instruments(names)
    font = find_soundfont(soundfont)
    _fluidsynth()
    tunes = melodies(n_melodies)
    base = Path(root) / IRMAS_DIR if layout == "irmas" else Path(root)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers or min(len(chosen), os.cpu_count() or 1)) as pool:
        renders = list(pool.map(lambda inst: render_instrument(tunes, inst, sr, font), chosen))
    for inst, audio in zip(chosen, renders):
        folder = base / (inst.irmas if layout == "irmas" else inst.name)
        folder.mkdir(parents=True, exist_ok=True)
        for i, y in enumerate(audio):
            sf.write(folder / f"{melody_name(i)}.wav", y, sr, subtype="PCM_16")
    meta = {"paired": True, "benchmark": "audiostyle.data.bench", "version": BENCH_VERSION, "layout": layout,
            "n_melodies": n_melodies, "seed": BENCH_SEED, "sr": sr, "soundfont": font.name,
            "instruments": {i.irmas if layout == "irmas" else i.name: dataclasses.asdict(i) for i in chosen}}
    (base / PAIRED_MARKER).write_text(json.dumps(meta, indent=2))
    log.info("rendered benchmark: %d melodies x %d instruments into %s in %.1f s", n_melodies, len(chosen), base,
             time.perf_counter() - t0)
    return base


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write the benchmark to a folder and print what it made."""
    p = argparse.ArgumentParser(
        prog="audiostyle-bench",
        description="Write the paired benchmark: seeded MIDI melodies rendered by FluidSynth on "
        f"{len(INSTRUMENTS)} sampled instruments ({', '.join(NAMES)}), every melody on every instrument.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--layout", choices=LAYOUTS, default="folder",
                   help="folder: <out>/<instrument>/<melody>.wav; irmas: <out>/IRMAS-TrainingData/<code>/<melody>.wav")
    p.add_argument("--soundfont", default=None,
                   help=f".sf2/.sf3 to render with, or a source name ({', '.join(SOUNDFONTS)}); None = "
                        f"${SOUNDFONT_ENV}, else {DEFAULT_SOUNDFONT}")
    p.add_argument("--melodies", type=int, default=N_MELODIES, help="number of melodies")
    p.add_argument("--instruments", default=",".join(NAMES), help="comma-separated instrument names")
    p.add_argument("--sr", type=int, default=22050, help="sample rate, Hz")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    try:
        base = render_bench(args.out, args.layout, n_melodies=args.melodies, names=args.instruments.split(","),
                            sr=args.sr, soundfont=args.soundfont)
    except AudiostyleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    files = sorted(base.glob("*/*.wav"))
    domains = sorted({f.parent.name for f in files})
    print(f"audiostyle benchmark: {len(files)} files ({args.melodies} melodies x {len(domains)} instruments: "
          f"{', '.join(domains)}), {args.layout} layout, {args.sr} Hz, in {time.perf_counter() - t0:.1f} s")
    print(f"written to {base.resolve()}")
    print(f"load it with: audiostyle.data.load_dataset({str(Path(args.out))!r})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
