"""memlab.iar.analyze.scores and the entropy law: entropies, edit-distance scores, and fits on hand-made data."""

import math

import numpy as np
import pytest

from memlab.iar.analyze.entropy import group_table, linear_fit, score_bins
from memlab.iar.analyze.scores import (compressed_ratio, edit_distance, edit_score, entropy_of_counts,
                                       group_entropy, token_entropy)


def test_entropy_of_a_constant_sequence_is_0_and_of_a_uniform_one_log_v():
    V = 16
    const = np.full((1, 32), 5)
    uniform = np.tile(np.arange(V), 2)[None]  # every code twice
    assert token_entropy(const, V)[0] == 0.0
    assert token_entropy(uniform, V)[0] == pytest.approx(math.log(V))
    half = np.array([[0, 0, 0, 1]])  # p = 3/4, 1/4
    assert token_entropy(half, V)[0] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_group_entropy_pools_the_tokens_of_a_group():
    tokens = np.array([[0, 0, 1, 1],    # group a: alone each has entropy log 2, pooled {0,1,2,3} -> log 4
                       [2, 2, 3, 3],
                       [5, 5, 5, 5],    # group b: both constant on the same code -> 0
                       [5, 5, 5, 5],
                       [6, 6, 6, 6]])   # group c: one constant row -> 0
    groups = np.array(["a", "a", "b", "b", "c"])
    ent = group_entropy(tokens, groups, vocab=8)
    assert ent["a"] == pytest.approx(math.log(4))
    assert ent["b"] == 0.0 and ent["c"] == 0.0
    assert token_entropy(tokens[:2], 8) == pytest.approx([math.log(2)] * 2)  # per image less than pooled
    assert entropy_of_counts(np.array([0, 0])) == 0.0


def test_edit_score_is_1_for_an_exact_continuation_and_0_for_a_disjoint_one():
    true = np.array([[1, 2, 3, 4, 5, 6]])
    assert edit_score(true, true)[0] == 1.0
    assert edit_score(true + 10, true)[0] == 0.0  # shares no token: every position substituted
    shifted = np.array([[9, 1, 2, 3, 4, 5]])  # one insertion and one deletion: distance 2, not 6
    assert edit_distance(shifted, true)[0] == 2
    assert edit_score(shifted, true)[0] == pytest.approx(1 - 2 / 6)
    # the classic: kitten -> sitting is 3 (rows of unequal length)
    a, b = np.frombuffer(b"kitten", np.uint8)[None], np.frombuffer(b"sitting", np.uint8)[None]
    assert edit_distance(a, b)[0] == 3
    # vectorized rows are independent
    both = edit_distance(np.r_[true, true + 10], np.r_[true, true])
    assert both.tolist() == [0, 6]


def test_linear_fit_recovers_a_planted_law_and_bins_cover_0_to_1():
    rng = np.random.default_rng(0)
    ent = rng.uniform(1, 4, 50)
    slope, icpt, r = linear_fit(ent, 0.9 - 0.2 * ent)
    assert slope == pytest.approx(-0.2) and icpt == pytest.approx(0.9) and r == pytest.approx(-1.0)
    assert math.isnan(linear_fit(ent, np.ones(50))[2])  # a constant score has no correlation
    assert score_bins(np.array([0.0, 0.05, 0.1, 0.99, 1.0]), 10).tolist() == [0, 0, 1, 9, 9]


def test_group_table_keeps_bins_with_enough_images():
    tokens = np.array([[0, 1], [2, 3], [4, 4], [4, 5]])
    scores = np.array([0.05, 0.08, 0.95, 1.0])
    g = group_table(tokens, scores, vocab=8, n_bins=10, min_bin=2)
    assert g["bin"].tolist() == [0, 9] and g["n_images"].tolist() == [2, 2]
    assert g["group_entropy"].tolist() == pytest.approx([math.log(4), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))])
    assert g["score"].tolist() == pytest.approx([0.065, 0.975])
    assert group_table(tokens, scores, 8, 10, min_bin=3).empty


def test_compressed_ratio_is_smaller_for_repetitive_sequences():
    rng = np.random.default_rng(0)
    rep, rand = np.zeros((1, 256), int), rng.integers(0, 256, (1, 256))
    assert compressed_ratio(rep)[0] < 0.2 < compressed_ratio(rand)[0]


def test_group_of_k_pools_k_images_per_bin():
    # bin 0: four images on four disjoint pairs of codes; bin 9: two constant images on one code
    tokens = np.array([[0, 1], [2, 3], [4, 5], [6, 7], [8, 8], [8, 8]])
    scores = np.array([0.0, 0.01, 0.02, 0.03, 1.0, 1.0])
    all_pooled = group_table(tokens, scores, vocab=16, n_bins=10, min_bin=2)
    assert all_pooled["group_entropy"].tolist() == pytest.approx([math.log(8), 0.0])
    two = group_table(tokens, scores, vocab=16, n_bins=10, min_bin=2, size=2)
    assert two["group_entropy"].tolist() == pytest.approx([math.log(4), 0.0])  # any two disjoint images: 4 codes
    assert two["n_images"].tolist() == [4, 2]
    assert group_table(tokens, scores, 16, 10, min_bin=1, size=3)["bin"].tolist() == [0]  # bin 9 has only 2


def test_half_samples_draw_half_the_rows_without_replacement():
    from memlab.iar.analyze.context import bootstrap_many

    x = np.arange(40)
    unique_share = lambda v: len(np.unique(v)) / 40  # noqa: E731
    lo, hi = bootstrap_many(unique_share, (x,), 50, 0.95, np.random.default_rng(0), half=True)
    assert lo[0] == hi[0] == 0.5
    lo, hi = bootstrap_many(unique_share, (x,), 50, 0.95, np.random.default_rng(0))
    assert 0.5 < lo[0] < hi[0] < 0.8  # with replacement: about 63% of the rows are distinct
