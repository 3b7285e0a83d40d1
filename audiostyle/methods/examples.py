"""A trial's listening examples: each output beside its inputs and true target, and one figure of them all.

Every method writes its artifacts through :func:`write_examples`, so a trial's folder reads the same whatever
the method: per example (a transferred pair, a direction, a generated sample) the wavs are named so that they
sort together, ``<stem>_<role>.wav`` for the roles in :data:`ROLES` it has::

    clip0_content.wav  clip0_output.wav  clip0_style.wav  clip0_target.wav  clip1_…
    spectrogram.png    examples.json

``spectrogram.png`` (:data:`FIGURE`) has a row per example and a panel per role: time in seconds, frequency in
Hz on a log axis, a dB colour bar (``librosa.display.specshow``). ``examples.json`` (:data:`INDEX`) names the
clips each example was made from (``{"clip0": {"content": "piano_03", "style": "violin_05", ...}}``); the store
row carries it as ``artifact.clips``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

ROLES = ("content", "style", "output", "target")
"""The roles of an example's audio, in the figure's column order."""
FIGURE = "spectrogram.png"
INDEX = "examples.json"
FIGURE_FFT = 2048
"""The figure's STFT size at 22050 Hz; other rates scale it (the window stays about 93 ms), hop a quarter."""
DB_RANGE = 80.0
"""The figure's colour scale spans the loudest bin's level down to this many dB below it."""


@dataclass
class Example:
    """One example: its output and (when the method has them) its content, style and true target.

    Attributes
    ----------
    stem : str
        The file names' prefix (``clip0``, ``x2y``, ``sample0``).
    audio : dict
        ``{role: waveform (samples,)}`` for the roles of :data:`ROLES` it has.
    clips : dict
        ``{role: clip name}`` of the dataset clips behind the inputs (may be empty).
    """

    stem: str
    audio: dict[str, np.ndarray]
    clips: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, stem: str, output: np.ndarray, *, content: np.ndarray | None = None, style: np.ndarray | None = None,
           target: np.ndarray | None = None, clips: Mapping[str, str | None] | None = None) -> "Example":
        """An example from its waveforms (the ``None`` ones left out) and its clip names."""
        given = {"content": content, "style": style, "output": output, "target": target}
        return cls(stem, {r: np.asarray(given[r], dtype=np.float32).reshape(-1) for r in ROLES if given[r] is not None},
                   {r: str(n) for r, n in (clips or {}).items() if n is not None})

    def wav_name(self, role: str) -> str:
        """``<stem>_<role>.wav``."""
        return f"{self.stem}_{role}.wav"


def parse_wav_name(name: str) -> tuple[str, str] | None:
    """``(stem, role)`` of a file named by :meth:`Example.wav_name`, else None."""
    stem, _, rest = Path(name).name.rpartition("_")
    role, dot, suffix = rest.partition(".")
    return (stem, role) if stem and role in ROLES and dot and suffix == "wav" else None


def write_examples(out_dir: str | Path, examples: Sequence[Example], sr: int, title: str = "") -> Path:
    """Write every example's wavs (16-bit PCM, clipped to ±1), :data:`INDEX` and :data:`FIGURE`; the figure's path."""
    import soundfile as sf

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for example in examples:
        for role, y in example.audio.items():
            sf.write(out_dir / example.wav_name(role), np.clip(y, -1.0, 1.0), sr, subtype="PCM_16")
    (out_dir / INDEX).write_text(json.dumps({e.stem: e.clips for e in examples}, indent=1, sort_keys=True))
    fig = figure(examples, sr, title)
    fig.savefig(out_dir / FIGURE, dpi=80)
    return out_dir / FIGURE


def figure(examples: Sequence[Example], sr: int, title: str = ""):
    """A row per example, a column per role any example has: dB spectrograms on a log-frequency axis."""
    import librosa
    import librosa.display
    from matplotlib.figure import Figure

    roles = [r for r in ROLES if any(r in e.audio for e in examples)]
    n_fft = figure_fft(sr)
    fig = Figure(figsize=(3.6 * len(roles) + 1, 2.8 * len(examples) + 0.6), layout="constrained")
    axes = fig.subplots(len(examples), len(roles), squeeze=False, sharey=True)
    for row, example in zip(axes, examples):
        for ax, role in zip(row, roles):
            if role not in example.audio:
                ax.set_axis_off()
                continue
            db = librosa.amplitude_to_db(np.abs(librosa.stft(example.audio[role], n_fft=n_fft, hop_length=n_fft // 4)),
                                         ref=np.max, top_db=DB_RANGE)
            image = librosa.display.specshow(db, sr=sr, n_fft=n_fft, hop_length=n_fft // 4, x_axis="s", y_axis="log",
                                             ax=ax, cmap="magma", vmin=-DB_RANGE, vmax=0.0)
            name = example.clips.get(role)
            ax.set_title(f"{example.stem} {role}" + (f": {name}" if name else ""), fontsize=9)
            fig.colorbar(image, ax=ax, format="%+2.0f dB")
    if title:
        fig.suptitle(title)
    return fig


def figure_fft(sr: int) -> int:
    """The figure's STFT size at ``sr``: :data:`FIGURE_FFT` scaled to the rate, a power of two (256 at 3150 Hz)."""
    return int(2 ** round(np.log2(FIGURE_FFT * sr / 22050)))


def clips_of(index_text: str | bytes | None) -> str | None:
    """The store row's ``artifact.clips``: the :data:`INDEX` file's JSON, compact, or None without one."""
    if not index_text:
        return None
    return json.dumps(json.loads(index_text), sort_keys=True, separators=(",", ":"))
