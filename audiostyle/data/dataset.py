"""The in-memory dataset every source returns and every method's ``prepare`` receives."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from audiostyle.errors import AudiostyleError


@dataclass(frozen=True)
class Clip:
    """One mono clip of one domain.

    Attributes
    ----------
    domain : str
        Domain (instrument, genre) name, e.g. ``"piano"``.
    name : str
        Stable identifier within the dataset, e.g. ``"piano/m003"`` or a file stem plus clip index.
    audio : np.ndarray
        Waveform, float32, shape ``(samples,)``, in [-1, 1].
    sr : int
        Sample rate in Hz.
    split : str
        ``"train"`` or ``"val"`` (deterministic under the dataset's seed).
    pair_key : str or None
        Clips with the same ``pair_key`` render the same content (melody) in different domains
        (the synthetic demo set); ``None`` for unpaired data.
    """

    domain: str
    name: str
    audio: np.ndarray
    sr: int
    split: str = "train"
    pair_key: str | None = None


@dataclass
class AudioDataset:
    """Clips of several domains at one sample rate.

    Attributes
    ----------
    clips : list of Clip
    sr : int
        Sample rate of every clip, Hz.
    source : str
        Where the clips came from (path, ``s3://`` URL or ``"demo"``), for the record.
    fingerprint : str
        Hash of the source contents (file names, sizes, mtimes/ETags) and of the loading parameters (sample rate,
        clip length, split); ``""`` when unknown. Put it in feature-cache keys
        (:class:`audiostyle.data.cache.FeatureCache`) so a changed file recomputes.
    """

    clips: list[Clip]
    sr: int
    source: str = ""
    fingerprint: str = ""
    domains: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.domains = tuple(sorted({c.domain for c in self.clips}))

    @property
    def paired(self) -> bool:
        """True when every clip has a ``pair_key`` (a true target exists for every transfer)."""
        return bool(self.clips) and all(c.pair_key is not None for c in self.clips)

    def select(self, domain: str | None = None, split: str | None = None) -> list[Clip]:
        """Clips of ``domain`` (any when None) in ``split`` (any when None), in a stable order."""
        if domain is not None and domain not in self.domains:
            raise AudiostyleError(
                f"unknown domain {domain!r} in {self.source or 'dataset'}: found {', '.join(self.domains) or 'none'}. "
                "Pick one of those names (folder names of the dataset)."
            )
        return [c for c in self.clips if (domain is None or c.domain == domain) and (split is None or c.split == split)]

    def counterpart(self, clip: Clip, domain: str) -> Clip | None:
        """The clip rendering ``clip``'s content in ``domain`` (paired data), else None."""
        if clip.pair_key is None:
            return None
        for c in self.clips:
            if c.domain == domain and c.pair_key == clip.pair_key:
                return c
        return None
