"""The in-memory dataset every source returns and every method's ``prepare`` receives."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from audiostyle.data.splits import SPLITS
from audiostyle.errors import AudiostyleError, check_choice


def clip_key(group: str, index: int) -> str:
    """Identifier of clip ``index`` (0-based) cut from ``group`` (a file stem or melody id).

    ``"m022"`` for the first clip, ``"m022#1"``, ``"m022#2"``, … for the next ones: the key depends on the stem and
    the clip's position only, never on how many clips a file gave, so clip k of stem s in one domain has the same
    key as clip k of stem s in every other domain (a longer file only adds keys that have no partner).
    """
    return group if index == 0 else f"{group}#{index}"


@dataclass(frozen=True)
class Clip:
    """One mono clip of one domain.

    Attributes
    ----------
    domain : str
        Domain (instrument, genre) name, e.g. ``"piano"``.
    name : str
        Stable identifier within the dataset: ``"<domain>/<clip_key(group, index)>"``, e.g. ``"piano/m003"``,
        ``"piano/m003#1"`` (the second clip cut from a long file).
    audio : np.ndarray
        Waveform, float32, shape ``(samples,)``, in [-1, 1].
    sr : int
        Sample rate in Hz.
    split : str
        ``"train"``, ``"val"`` or ``"test"``, by group, deterministic under the dataset's seed
        (:mod:`audiostyle.data.splits`).
    pair_key : str or None
        On paired data, :func:`clip_key` of the clip: clips with the same ``pair_key`` render the same content
        (the same stretch of one melody) in different domains. ``None`` for unpaired data.
    group : str
        The melody or file stem the clip was cut from (``""`` when unknown); every clip of a group shares a split,
        and two clips of one group share content even when their ``pair_key`` differs.
    """

    domain: str
    name: str
    audio: np.ndarray
    sr: int
    split: str = "train"
    pair_key: str | None = None
    group: str = ""


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
        """True when every clip has a ``pair_key`` (a paired source). A clip may still lack a :meth:`counterpart` in
        some domain (the extra clips of a longer file): draw scored clips through :meth:`prefer_paired`."""
        return bool(self.clips) and all(c.pair_key is not None for c in self.clips)

    def select(self, domain: str | None = None, split: str | None = None) -> list[Clip]:
        """Clips of ``domain`` (any when None) in ``split`` (``"train"``, ``"val"``, ``"test"``; any when None), in a
        stable order."""
        if split is not None:
            check_choice("split", split, SPLITS)
        if domain is not None and domain not in self.domains:
            raise AudiostyleError(
                f"unknown domain {domain!r} in {self.source or 'dataset'}: found {', '.join(self.domains) or 'none'}. "
                "Pick one of those names (folder names of the dataset)."
            )
        return [c for c in self.clips if (domain is None or c.domain == domain) and (split is None or c.split == split)]

    def counterpart(self, clip: Clip, domain: str) -> Clip | None:
        """The clip rendering ``clip``'s content in ``domain`` (same ``pair_key``), else None.

        None on unpaired data, and for a trailing clip of a file longer than its partner in ``domain``.
        """
        if clip.pair_key is None:
            return None
        for c in self.clips:
            if c.domain == domain and c.pair_key == clip.pair_key:
                return c
        return None

    def prefer_paired(self, clips: list[Clip], domain: str) -> list[Clip]:
        """The clips of ``clips`` that have a :meth:`counterpart` in ``domain``, or ``clips`` when none has one.

        Methods draw the clips they score from this, so that one unpaired clip (a long file's tail) does not leave a
        whole batch without true targets.
        """
        return [c for c in clips if self.counterpart(c, domain) is not None] or clips
