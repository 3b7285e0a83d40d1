"""Train / validation / test splits by group (melody, file stem), deterministic under a seed.

The rule every source uses (the demo set, the benchmark, GTZAN, IRMAS, users' folders): groups are ranked by
``sha256("<seed>:<group>")``; the first ``round(n · val_fraction)`` are ``"val"``, the next
``round(n · test_fraction)`` are ``"test"``, the rest ``"train"``. With two or more groups, a non-zero fraction gets
at least one group, and at least one group stays in train (validation before test when groups are few: two groups
give train + val). A group's rank does not depend on the other groups, so adding files moves few groups.

Methods train on ``"train"``, sweeps score on ``"val"``, final scores use ``"test"`` groups never trained on.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from audiostyle.errors import AudiostyleError, check_range

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Most of the groups a split may take (val + test together), so that something is left to train on.
MAX_HELD_OUT = 0.9


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Raise :class:`AudiostyleError` unless both fractions and their sum lie in ``[0, MAX_HELD_OUT]``."""
    check_range("val_fraction", val_fraction, 0.0, MAX_HELD_OUT)
    check_range("test_fraction", test_fraction, 0.0, MAX_HELD_OUT)
    if val_fraction + test_fraction > MAX_HELD_OUT:
        raise AudiostyleError(
            f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves too little to train on: "
            f"keep the sum at most {MAX_HELD_OUT:g}."
        )


def _count(n: int, fraction: float, room: int) -> int:
    """``round(n · fraction)``, at least 1 when ``fraction > 0`` and ``n > 1``, at most ``room``."""
    k = int(round(n * fraction))
    if fraction > 0 and n > 1:
        k = max(k, 1)
    return max(0, min(k, room))


def assign_splits(groups: Iterable[str], val_fraction: float, test_fraction: float, seed: int) -> dict[str, str]:
    """The split of every group under the module's rule.

    Parameters
    ----------
    groups : iterable of str
        Group names (duplicates are fine), e.g. melody ids ``"m000"`` or file stems.
    val_fraction, test_fraction : float
        Fractions of the groups held out as ``"val"`` and ``"test"``; see :func:`check_fractions`.
    seed : int
        Seed of the ranking.

    Returns
    -------
    dict of str to str
        Group → ``"train"``, ``"val"`` or ``"test"``.
    """
    check_fractions(val_fraction, test_fraction)
    ranked = sorted(set(groups), key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())
    n = len(ranked)
    n_val = _count(n, val_fraction, n - 1)
    n_test = _count(n, test_fraction, n - 1 - n_val)
    return {g: "val" if i < n_val else "test" if i < n_val + n_test else "train" for i, g in enumerate(ranked)}
