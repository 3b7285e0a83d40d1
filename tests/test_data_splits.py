"""Train / val / test splits by group: the documented counts, disjoint, stable under the seed, few groups."""

from __future__ import annotations

import pytest

from audiostyle.data.splits import SPLITS, assign_splits
from audiostyle.errors import AudiostyleError

MELODIES = [f"m{i:03d}" for i in range(32)]


def test_fractions_of_groups_are_held_out_disjointly_and_stably():
    split = assign_splits(MELODIES + MELODIES[:5], 0.2, 0.2, seed=0)  # duplicates: clips of one melody
    assert sorted(split) == MELODIES and set(split.values()) == set(SPLITS)
    by = {s: {g for g, v in split.items() if v == s} for s in SPLITS}
    assert (len(by["train"]), len(by["val"]), len(by["test"])) == (20, 6, 6)  # round(32 · 0.2) = 6
    assert assign_splits(reversed(MELODIES), 0.2, 0.2, seed=0) == split  # order does not matter
    other = assign_splits(MELODIES, 0.2, 0.2, seed=1)
    assert other != split and sorted(other.values()) == sorted(split.values())
    # A group's rank does not depend on the others: adding eight melodies keeps (here) every val melody in val.
    more = assign_splits(MELODIES + [f"m{i:03d}" for i in range(32, 40)], 0.2, 0.2, seed=0)
    assert by["val"] <= {g for g, v in more.items() if v == "val"}


def test_few_groups_keep_one_for_training_and_val_before_test():
    assert assign_splits(["a"], 0.2, 0.2, 0) == {"a": "train"}
    assert sorted(assign_splits(["a", "b"], 0.2, 0.2, 0).values()) == ["train", "val"]
    assert sorted(assign_splits(["a", "b", "c"], 0.1, 0.1, 0).values()) == ["test", "train", "val"]
    assert set(assign_splits(MELODIES, 0.0, 0.0, 0).values()) == {"train"}
    assert set(assign_splits(MELODIES, 0.0, 0.25, 0).values()) == {"train", "test"}


def test_bad_fractions_raise():
    with pytest.raises(AudiostyleError, match="test_fraction=-0.1 is out of range"):
        assign_splits(MELODIES, 0.2, -0.1, 0)
    with pytest.raises(AudiostyleError, match=r"val_fraction \+ test_fraction = 0.95"):
        assign_splits(MELODIES, 0.5, 0.45, 0)
