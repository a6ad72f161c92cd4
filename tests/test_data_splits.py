"""``skcream.data.splits.stratified_holdout``: the validation share ``skcream train`` holds out."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skcream.data.splits import stratified_holdout


def test_hand_computed_split():
    labels = ["a"] * 10 + ["b"] * 5 + ["c"]  # c has one image: never held out
    train, held = stratified_holdout(labels, 0.2, random_state=0)
    counts = Counter(labels[i] for i in held)
    assert counts == {"a": 2, "b": 1}  # round(0.2 * 10) = 2, round(0.2 * 5) = 1
    assert 15 in train
    again = stratified_holdout(labels, 0.2, random_state=0)
    assert all(np.array_equal(x, y) for x, y in zip((train, held), again))
    other = stratified_holdout(labels, 0.2, random_state=1)[1]
    assert not np.array_equal(other, held)  # the seed picks which


def test_zero_fraction_holds_out_nothing():
    train, held = stratified_holdout([0, 1, 0, 1], 0.0)
    assert held.size == 0 and train.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, True])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"fraction must be a number in \[0, 1\)"):
        stratified_holdout([0, 1], fraction)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=80),
       st.floats(0.01, 0.99), st.integers(0, 2**31))
def test_partition_and_per_class_counts(labels, fraction, seed):
    train, held = stratified_holdout(np.asarray(labels), fraction, random_state=seed)
    assert sorted(train.tolist() + held.tolist()) == list(range(len(labels)))
    total = Counter(labels)
    out = Counter(labels[i] for i in held)
    for c, n_c in total.items():
        if n_c < 2:
            assert out[c] == 0
        else:  # round(f * n_c), at least one, never the last image of the class
            assert out[c] == min(max(int(np.floor(fraction * n_c + 0.5)), 1), n_c - 1)
