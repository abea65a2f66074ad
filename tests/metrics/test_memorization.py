import numpy as np
import pytest

import synthetic
from memlab.errors import UsageError
from memlab.metrics.memorization import bootstrap_interval, memorization_ratio, memorized, nearest_two
from memlab.metrics.mixture import gmm_diagnostics, template_diagnostics


def test_nearest_two_matches_brute_force():
    rng = np.random.default_rng(0)
    pts, s = rng.normal(size=(40, 7)), rng.normal(size=(30, 7))
    d1, d2, idx = nearest_two(s, pts, chunk=7)  # chunking must not change anything
    full = np.linalg.norm(s[:, None] - pts[None], axis=-1)
    srt = np.sort(full, axis=1)
    np.testing.assert_allclose(d1, srt[:, 0], atol=1e-9)
    np.testing.assert_allclose(d2, srt[:, 1], atol=1e-9)
    np.testing.assert_array_equal(idx, full.argmin(1))


def test_memorized_rule_d1_below_third_of_d2():
    pts = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    samples = np.array([[0.1, 0.0],    # d1 0.1, d2 9.9: memorized, nearest 0
                        [5.0, 0.0],    # midway: d1 = d2
                        [2.4, 0.0],    # d1 2.4 < 7.6/3 = 2.53: memorized
                        [2.6, 0.0],    # d1 2.6 > 7.4/3: not
                        [10.0, 0.05]])
    flags, idx = memorized(samples, pts)
    np.testing.assert_array_equal(flags, [True, False, True, False, True])
    np.testing.assert_array_equal(idx, [0, 0, 0, 0, 1])
    assert memorized(samples, pts, threshold=0.2)[0].tolist() == [True, False, False, False, True]
    with pytest.raises(UsageError, match="threshold"):
        memorized(samples, pts, threshold=1.5)


def test_ratio_and_bootstrap_interval_cover_binomial_truth():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(50, 5)) * 10
    copies = pts[rng.integers(0, 50, 300)] + 1e-3 * rng.normal(size=(300, 5))
    fresh = rng.normal(size=(700, 5)) * 10
    out = memorization_ratio(np.concatenate([copies, fresh]), pts, n_boot=500)
    lo, hi = out["interval"]
    assert abs(out["memorization_ratio"] - 0.3) < 0.03  # a few fresh points land close to a training point
    assert lo < out["memorization_ratio"] < hi
    # the 95% interval of a binomial fraction of 1000 is about +-1.96 sqrt(p(1-p)/n) = +-0.028
    assert 0.035 < hi - lo < 0.08
    assert len(out["nearest_index"]) == 1000


def test_two_level_bootstrap_widens_with_seed_spread():
    same = np.tile(np.r_[np.ones(50), np.zeros(50)], (4, 1))  # every seed at 0.5
    spread = np.stack([np.ones(100), np.zeros(100), np.ones(100), np.zeros(100)])  # seeds at 1, 0, 1, 0
    w_same = np.diff(bootstrap_interval(same, 400))[0]
    w_spread = np.diff(bootstrap_interval(spread, 400))[0]
    assert w_spread > 5 * w_same
    assert bootstrap_interval(np.ones(20)) == [1.0, 1.0]


def test_gmm_diagnostics_classifies_means():
    ds = synthetic.make_gmm(dim=20, components=3, n_train=30, n_test=5, seed=0)
    mu = ds.truth.means_KxD
    learned = np.vstack([mu + 0.05,  # at the true means
                         ds.train_NxD[:2] + 1e-3,  # on training points
                         [np.full(20, 50.0)]])  # far from everything
    out = gmm_diagnostics(learned, 0.7, ds.train_NxD, ds.truth)
    assert (out["near_true_mean"], out["near_training_point"], out["neither"]) == (3, 2, 1)
    assert out["learned_variance"] == 0.7 and out["n_components"] == 6


def test_template_diagnostics_classifies_templates():
    ds = synthetic.make_templates(components=3, n_train=20, n_test=5, colour_variance=1.0, height=6, width=6,
                                  colour_means=np.full((3, 3), 2.0), seed=0)
    t = ds.truth
    x = ds.train_NxD[0].reshape(3, -1)
    rank1_template = x[np.argmax(np.abs(x).sum(1))]
    temps = np.vstack([t.templates_KxP, rank1_template / rank1_template.max(), np.random.default_rng(0).uniform(size=36)])
    colours = np.vstack([t.colour_means_KxC, x[:, np.argmax(rank1_template)] , np.ones(3)])
    out = template_diagnostics(temps, colours, 0.5, ds.train_NxD, t)
    assert out["near_true_mean"] == 3 and out["near_training_point"] == 1 and out["neither"] == 1
